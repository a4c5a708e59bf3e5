// Command poolsq is the Go peer of bench/pool_fn.c (`scripts/bench pool`):
// the Go worker-pool idiom computing i*i for i in 1..N.  A producer
// goroutine sends the jobs (the numbers) on a jobs channel buffered like
// belt's shared job channel (64 per worker) and closes it; W worker
// goroutines receive a number and send its square on a results channel of
// capacity 1024; the main goroutine receives N results and sums them
// (uint64, wrapping), then checks the sum against the same sum computed in
// a plain loop.
//
// Goroutines run on runtime.GOMAXPROCS's default (every CPU).  The clock
// runs from starting the producer to the last result summed; making the
// channels and starting the workers are outside it.  Prints one CSV line
// without a header:  go,<workers>,<jobs>,<seconds>,<jobs per second>
// Exit status 0, 1 on a wrong sum, 2 on a bad argument.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func worker(jobs <-chan uint64, results chan<- uint64) {
	for i := range jobs {
		results <- i * i
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

	jobs := make(chan uint64, 64**workers)
	results := make(chan uint64, 1024)
	for w := 0; w < *workers; w++ {
		go worker(jobs, results)
	}

	start := time.Now()
	go func() {
		for i := 1; i <= *n; i++ {
			jobs <- uint64(i)
		}
		close(jobs)
	}()
	var sum uint64
	for i := 0; i < *n; i++ {
		sum += <-results
	}
	secs := time.Since(start).Seconds()

	var want uint64
	for i := uint64(1); i <= uint64(*n); i++ {
		want += i * i
	}
	if sum != want {
		fmt.Fprintf(os.Stderr, "go poolsq: sum %d, want %d\n", sum, want)
		os.Exit(1)
	}
	fmt.Printf("go,%d,%d,%.6f,%.0f\n", *workers, *n, secs, float64(*n)/secs)
}
