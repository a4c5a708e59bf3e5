// Command chan is the Go peer of `belt bench chan`: the same benchmark
// matrix (crossbeam-channel's benchmarks/ folder: seq, spsc, mpsc, mpmc,
// select_rx, select_both with 4 threads per side, one-word messages, at
// capacities 0, 1, N = messages and "unbounded"), doing the same work the
// same way, and printing the same `case,cap,seconds` CSV.
//
// Go has no unbounded channel: as in crossbeam's go.go, the unbounded column
// is "n/a" (make(chan, N) is already the "N" column).
// Goroutines run on runtime.GOMAXPROCS's default (every CPU).
//
// Each case starts its goroutines, waits until all have checked in, then
// opens the start gate and reads the (monotonic) clock; it stops the clock
// when every goroutine has finished.  Senders close a channel when its last
// sender is done; receivers receive until closed.  A message is
// sender<<40 | sequence; receivers count, sum and check per-(channel, sender)
// order, and the totals must match exactly or the program exits 1.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const threads = 4
const seqShift = 40
const seqMask = (uint64(1) << seqShift) - 1

var caseNames = []string{"seq", "spsc", "mpsc", "mpmc", "select_rx", "select_both"}
var capNames = []string{"0", "1", "N", "unbounded"}

type tally struct {
	count, sum, reordered, badSender uint64
	next                             [threads][threads]uint64
}

func (t *tally) add(ch int, m uint64) {
	sender, seq := m>>seqShift, m&seqMask
	if sender >= threads {
		t.badSender++
		return
	}
	if seq < t.next[ch][sender] {
		t.reordered++
	}
	t.next[ch][sender] = seq + 1
	t.count++
	t.sum += seq
}

func (t *tally) merge(o *tally) {
	t.count += o.count
	t.sum += o.sum
	t.reordered += o.reordered
	t.badSender += o.badSender
}

func msg(sender int, seq int) uint64 { return uint64(sender)<<seqShift | uint64(seq) }

// run is one case's goroutines: add them with spawn, then time() them.
type run struct {
	ready, done sync.WaitGroup
	start       chan struct{}
	mu          sync.Mutex
	total       tally
}

func newRun() *run { return &run{start: make(chan struct{})} }

func (r *run) spawn(f func(t *tally)) {
	r.ready.Add(1)
	r.done.Add(1)
	go func() {
		var t tally
		r.ready.Done()
		<-r.start
		f(&t)
		r.mu.Lock()
		r.total.merge(&t)
		r.mu.Unlock()
		r.done.Done()
	}()
}

func (r *run) time() float64 {
	r.ready.Wait()
	t0 := time.Now()
	close(r.start)
	r.done.Wait()
	return time.Since(t0).Seconds()
}

// closer returns a function that closes c when called the n-th time (the
// last sender is done).
func closer(c chan uint64, n int32) func() {
	left := n
	return func() {
		if atomic.AddInt32(&left, -1) == 0 {
			close(c)
		}
	}
}

func sender(c chan uint64, id, n int, done func()) func(*tally) {
	return func(*tally) {
		for i := 0; i < n; i++ {
			c <- msg(id, i)
		}
		done()
	}
}

func receiver(c chan uint64) func(*tally) {
	return func(t *tally) {
		for m := range c {
			t.add(0, m)
		}
	}
}

func makeChans(k, capacity int) []chan uint64 {
	cs := make([]chan uint64, k)
	for i := range cs {
		cs[i] = make(chan uint64, capacity)
	}
	return cs
}

// selectRecv receives from the 4 channels until all are closed; a closed
// channel's case is switched off by setting it to nil.
func selectRecv(cs []chan uint64) func(*tally) {
	return func(t *tally) {
		c0, c1, c2, c3 := cs[0], cs[1], cs[2], cs[3]
		for open := threads; open > 0; {
			var m uint64
			var ok bool
			var idx int
			select {
			case m, ok = <-c0:
				idx = 0
				if !ok {
					c0 = nil
				}
			case m, ok = <-c1:
				idx = 1
				if !ok {
					c1 = nil
				}
			case m, ok = <-c2:
				idx = 2
				if !ok {
					c2 = nil
				}
			case m, ok = <-c3:
				idx = 3
				if !ok {
					c3 = nil
				}
			}
			if ok {
				t.add(idx, m)
			} else {
				open--
			}
		}
	}
}

func selectSend(cs []chan uint64, id, n int, done []func()) func(*tally) {
	return func(*tally) {
		c0, c1, c2, c3 := cs[0], cs[1], cs[2], cs[3]
		for i := 0; i < n; i++ {
			m := msg(id, i)
			select {
			case c0 <- m:
			case c1 <- m:
			case c2 <- m:
			case c3 <- m:
			}
		}
		for _, d := range done {
			d()
		}
	}
}

// runCase returns the seconds taken and the tally, and the number of
// senders and messages per sender to check it against.
func runCase(name string, capacity, messages int) (float64, tally, int, int) {
	per := messages / threads
	r := newRun()
	switch name {
	case "seq":
		c := make(chan uint64, capacity)
		var t tally
		t0 := time.Now()
		for i := 0; i < messages; i++ {
			c <- msg(0, i)
		}
		for i := 0; i < messages; i++ {
			t.add(0, <-c)
		}
		secs := time.Since(t0).Seconds()
		if len(c) != 0 {
			t.count += uint64(len(c)) // left over: reported as duplicates
		}
		return secs, t, 1, messages
	case "spsc":
		c := make(chan uint64, capacity)
		r.spawn(sender(c, 0, messages, closer(c, 1)))
		r.spawn(receiver(c))
		return r.time(), r.total, 1, messages
	case "mpsc", "mpmc":
		c := make(chan uint64, capacity)
		done := closer(c, threads)
		for t := 0; t < threads; t++ {
			r.spawn(sender(c, t, per, done))
		}
		receivers := 1
		if name == "mpmc" {
			receivers = threads
		}
		for t := 0; t < receivers; t++ {
			r.spawn(receiver(c))
		}
		return r.time(), r.total, threads, per
	case "select_rx":
		cs := makeChans(threads, capacity)
		for t := 0; t < threads; t++ {
			r.spawn(sender(cs[t], t, per, closer(cs[t], 1)))
		}
		r.spawn(selectRecv(cs))
		return r.time(), r.total, threads, per
	case "select_both":
		cs := makeChans(threads, capacity)
		done := make([]func(), threads)
		for i := range done {
			done[i] = closer(cs[i], threads)
		}
		for t := 0; t < threads; t++ {
			r.spawn(selectSend(cs, t, per, done))
		}
		for t := 0; t < threads; t++ {
			r.spawn(selectRecv(cs))
		}
		return r.time(), r.total, threads, per
	}
	panic("unknown case " + name)
}

func check(label string, t tally, senders, per int) bool {
	want := uint64(senders) * uint64(per)
	wantSum := uint64(senders) * (uint64(per) * uint64(per-1) / 2)
	ok := true
	if t.count != want {
		fmt.Fprintf(os.Stderr, "go chan: %s: received %d of %d messages\n", label, t.count, want)
		ok = false
	} else if t.sum != wantSum {
		fmt.Fprintf(os.Stderr, "go chan: %s: checksum %d, want %d\n", label, t.sum, wantSum)
		ok = false
	}
	if t.reordered != 0 || t.badSender != 0 {
		fmt.Fprintf(os.Stderr, "go chan: %s: %d reordered, %d corrupt\n", label, t.reordered, t.badSender)
		ok = false
	}
	return ok
}

func parseList(arg string, names []string, what string) map[string]bool {
	want := map[string]bool{}
	for _, s := range strings.Split(arg, ",") {
		found := false
		for _, n := range names {
			if n == s {
				found = true
			}
		}
		if !found {
			fmt.Fprintf(os.Stderr, "go chan: unknown %s %q (one of %s)\n", what, s, strings.Join(names, " "))
			os.Exit(2)
		}
		want[s] = true
	}
	return want
}

func main() {
	messages := flag.Int("messages", 5000000, "messages per case (rounded down to a multiple of 4)")
	caseArg := flag.String("case", strings.Join(caseNames, ","), "cases to run (comma-separated)")
	capArg := flag.String("cap", strings.Join(capNames, ","), "capacities: 0, 1, N, unbounded")
	flag.Bool("csv", true, "print case,cap,seconds (the only format)")
	flag.Parse()
	if *messages < threads || uint64(*messages) > seqMask {
		fmt.Fprintf(os.Stderr, "go chan: --messages must be at least %d\n", threads)
		os.Exit(2)
	}
	n := *messages - *messages%threads
	wantCase := parseList(*caseArg, caseNames, "case")
	wantCap := parseList(*capArg, capNames, "cap")

	status := 0
	fmt.Println("case,cap,seconds")
	for _, capName := range capNames {
		if !wantCap[capName] {
			continue
		}
		capacity := map[string]int{"0": 0, "1": 1, "N": n}[capName]
		for _, name := range caseNames {
			if !wantCase[name] {
				continue
			}
			if capName == "unbounded" || (name == "seq" && (capName == "0" || capName == "1")) {
				fmt.Printf("%s,%s,n/a\n", name, capName)
				continue
			}
			secs, t, senders, per := runCase(name, capacity, n)
			if check(name+" cap "+capName, t, senders, per) {
				fmt.Printf("%s,%s,%.6f\n", name, capName, secs)
			} else {
				fmt.Printf("%s,%s,FAILED\n", name, capName)
				status = 1
			}
		}
	}
	os.Exit(status)
}
