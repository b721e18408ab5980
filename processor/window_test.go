package processor

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topics"
)

// One record that does not finish holds its partition's window, and with it
// that partition: at most windowPerBuffered × MaxBuffered of its offsets are
// scheduled and kgo stops fetching it, while the other partition goes on to
// its end. Once the record finishes, the partition is fetched and processed
// to its end too.
func TestHeldPartitionBoundsItsWindow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := topics.TopicInventory
	c := inventoryCluster(t, 2)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(8<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	const perPartition = 1000
	record := func(part int32, sku string, version int) *kgo.Record {
		v := fmt.Sprintf(`{"specversion":"1.0","id":"%s-%d","source":"erp","type":"inventory.stock.updated","subject":%q,"version":%d,"data":{"sku":%q,"source_code":"default","quantity":1,"status":1}}`,
			sku, version, sku, version, sku)
		return &kgo.Record{Topic: topic, Partition: part, Key: []byte(sku), Value: []byte(v)}
	}
	recs := []*kgo.Record{record(0, "stuck", 1)}
	for i := range perPartition {
		recs = append(recs, record(0, fmt.Sprintf("p0-%d", i), 1), record(1, fmt.Sprintf("p1-%d", i), 1))
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var (
		mu      sync.Mutex
		handled = map[string]int{} // records handled by subject prefix
		release = make(chan struct{})
	)
	count := func(part string) int {
		mu.Lock()
		defer mu.Unlock()
		return handled[part]
	}
	const maxBuffered = 4
	p, err := New(Options{Brokers: c.ListenAddrs(), Logger: zerolog.Nop()}, GroupConfig{
		Name: "inventory", Topic: topic, Domain: topics.DomainInventory, Idempotency: IdempotencyNone,
		Concurrency: 2, MaxBuffered: maxBuffered,
		Handler: HandlerFunc(func(ctx context.Context, ev *topics.Event) error {
			if ev.Subject == "stuck" {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			handled[ev.Subject[:2]]++ // "p0", "p1" or "st" (the stuck one)
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	g := p.groups[0]
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-tick.C:
			case err := <-done:
				t.Fatalf("Run returned early (%v) waiting for %s", err, what)
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s (p0 %d, p1 %d handled)", what, count("p0"), count("p1"))
			}
		}
	}
	paused := func() []int32 { return g.cl.PauseFetchPartitions(nil)[topic] }

	limit := windowPerBuffered * maxBuffered
	waitFor("partition 1 to be processed while partition 0 is stuck", func() bool { return count("p1") == perPartition })
	waitFor("partition 0 to be held and not fetched", func() bool { return slices.Equal(paused(), []int32{0}) })
	if n := count("p0"); n >= limit {
		t.Errorf("%d records of the stuck partition handled, want fewer than its window of %d", n, limit)
	}
	g.mu.Lock()
	ps := g.parts[0]
	held, span := ps != nil && ps.held, 0
	if ps != nil {
		span = ps.sched.Span()
	}
	g.mu.Unlock()
	if !held || span > limit {
		t.Errorf("partition 0: held %v, window %d; want held with a window of at most %d", held, span, limit)
	}

	close(release)
	waitFor("partition 0 to be processed to its end", func() bool { return count("p0") == perPartition && count("st") == 1 })
	waitFor("partition 0 to be fetched again", func() bool { return len(paused()) == 0 })
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := p.Stats()[0]; s.Consumed != 2*perPartition+1 || s.Applied != 2*perPartition+1 {
		t.Errorf("stats: consumed %d, applied %d; want %d each", s.Consumed, s.Applied, 2*perPartition+1)
	}
	if n := count("p1"); n != perPartition {
		t.Errorf("partition 1: %d handled, want %d (each once)", n, perPartition)
	}
}

// kgo keeps a partition paused across rebalances: a held partition that is
// revoked or lost (discarded) must be fetched again, or a later assignment
// of it to this member would never be.
func TestDiscardedHeldPartitionResumes(t *testing.T) {
	topic := topics.TopicInventory
	c := inventoryCluster(t, 2)
	p, err := New(Options{Brokers: c.ListenAddrs(), Logger: zerolog.Nop()}, GroupConfig{
		Name: "inventory", Topic: topic, Domain: topics.DomainInventory, Idempotency: IdempotencyNone,
		Concurrency: 2, Handler: HandlerFunc(func(context.Context, *topics.Event) error { return nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	g := p.groups[0]
	defer g.cl.Close()
	paused := func() []int32 { return g.cl.PauseFetchPartitions(nil)[topic] }
	apply := func() { // what the poll loop does after scheduling
		g.mu.Lock()
		held, changed := g.holdsLocked()
		g.mu.Unlock()
		if changed {
			g.applyHolds(held)
		}
	}

	g.mu.Lock()
	held, other := g.newPartLocked(0), g.newPartLocked(1)
	g.holdLocked(held)
	g.mu.Unlock()
	apply()
	if got := paused(); !slices.Equal(got, []int32{0}) {
		t.Fatalf("paused partitions %v after holding 0, want [0]", got)
	}
	g.discard([]*partState{held})
	apply()
	if got := paused(); len(got) != 0 {
		t.Fatalf("paused partitions %v after the held partition was discarded, want none", got)
	}
	g.mu.Lock()
	g.holdLocked(other)
	g.mu.Unlock()
	apply()
	g.mu.Lock()
	g.releaseLocked(other) // its window is empty: down to half
	g.mu.Unlock()
	apply()
	if got := paused(); len(got) != 0 {
		t.Fatalf("paused partitions %v after the hold was released, want none", got)
	}
}
