// Command pool is the Go peer of bench/pool_noop.c (`scripts/bench run`):
// the Go worker-pool idiom doing the same work as belt's pool.  A jobs
// channel (buffered like belt's shared job channel: 64 per worker), N
// goroutines that receive a job, "run" it (a noop: the result is the job's
// id and ok) and send the result on a results channel buffered for every
// job (Go has no unbounded channel; belt's results channel is unbounded).
// The main goroutine submits --jobs jobs (ids 1..N), closes the jobs
// channel, then receives every result and checks it (each id exactly once).
//
// Goroutines run on runtime.GOMAXPROCS's default (every CPU).  The clock
// runs from the first send to the last result received; making the
// channels and starting the goroutines are outside it.  Prints one CSV line
// without a header:  go,<workers>,<jobs>,<seconds>,<jobs per second>
// Exit status 0, or 1 on a wrong result.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"time"
)

type job struct {
	id int
}

type result struct {
	id int
	ok bool
}

func worker(jobs <-chan job, results chan<- result, wg *sync.WaitGroup) {
	defer wg.Done()
	for j := range jobs {
		results <- result{id: j.id, ok: true}
	}
}

func main() {
	n := flag.Int("jobs", 1000000, "jobs to run")
	workers := flag.Int("workers", 4, "worker goroutines")
	flag.Parse()
	if *n < 1 || *workers < 1 || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}

	jobs := make(chan job, 64**workers)
	results := make(chan result, *n)
	seen := make([]bool, *n+1)
	var wg sync.WaitGroup
	wg.Add(*workers)
	for w := 0; w < *workers; w++ {
		go worker(jobs, results, &wg)
	}

	start := time.Now()
	for i := 1; i <= *n; i++ {
		jobs <- job{id: i}
	}
	close(jobs)
	bad := 0
	for i := 0; i < *n; i++ {
		r := <-results
		if !r.ok || r.id < 1 || r.id > *n || seen[r.id] {
			bad++
		} else {
			seen[r.id] = true
		}
	}
	secs := time.Since(start).Seconds()
	wg.Wait()

	if bad != 0 {
		fmt.Fprintf(os.Stderr, "go pool: %d wrong results\n", bad)
		os.Exit(1)
	}
	fmt.Printf("go,%d,%d,%.6f,%.0f\n", *workers, *n, secs, float64(*n)/secs)
}
