package main

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/shopstream/shopstream/ordering"
)

// BenchmarkPartitionOutOfOrder complements ordering's BenchmarkPartition
// (which finishes records in the order they become ready) with the pattern
// of a busy group: up to 256 records in flight finish in random order, so
// the commit watermark trails behind unfinished records and Done must find
// and trim them; Watermark is read every 1024 records, as a commit would.
func BenchmarkPartitionOutOfOrder(b *testing.B) {
	const (
		keys     = 1000
		inflight = 256
		batch    = 4096
	)
	rng := rand.New(rand.NewPCG(3, 4))
	names := make([]string, keys)
	for i := range names {
		names[i] = "SKU-" + strconv.Itoa(i)
	}
	workload := make([]uint64, batch)
	for i := range workload {
		workload[i] = ordering.HashKey(names[rng.IntN(keys)])
	}
	p := ordering.NewPartition[int]()
	var (
		off     int64
		running []int64 // offsets in flight
		ready   []int64 // offsets that may start
		done    int
	)
	b.ReportAllocs()
	for b.Loop() {
		for _, key := range workload {
			if p.Add(ordering.Item[int]{Offset: off, Key: key}) {
				ready = append(ready, off)
			}
			off++
		}
		for len(ready) > 0 || len(running) > 0 {
			for len(running) < inflight && len(ready) > 0 {
				running, ready = append(running, ready[0]), ready[1:]
			}
			i := rng.IntN(len(running))
			finished := running[i]
			running[i] = running[len(running)-1]
			running = running[:len(running)-1]
			if next, ok := p.Done(finished); ok {
				ready = append(ready, next.Offset)
			}
			if done++; done%1024 == 0 {
				if _, _, ok := p.Watermark(); !ok {
					b.Fatal("no watermark after records finished")
				}
			}
		}
		if p.Outstanding() != 0 {
			b.Fatalf("%d records left outstanding", p.Outstanding())
		}
		if wm, _, _ := p.Watermark(); wm != off {
			b.Fatalf("watermark %d after draining, want %d", wm, off)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
}
