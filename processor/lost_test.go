package processor

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topics"
)

// A lost partition (the member was fenced out; another may own it already)
// starts none of its waiting records while its running one is cancelled:
// otherwise its records would reach the sink beside the new owner's, with
// a context already cancelled.
func TestLostPartitionStartsNothingMore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := topics.TopicInventory
	c := inventoryCluster(t, 1)
	skus := []string{"first", "b", "c", "d"}
	var recs []*kgo.Record
	for _, sku := range skus {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(sku), Value: []byte(stockValue(sku, sku, "default", 1))})
	}
	produce(ctx, t, c, recs...)

	var (
		mu      sync.Mutex
		handled []string
		started = make(chan struct{})
	)
	p, err := New(Options{Brokers: c.ListenAddrs(), Logger: zerolog.Nop()}, GroupConfig{
		Name: "inventory", Topic: topic, Domain: topics.DomainInventory, Idempotency: IdempotencyNone,
		// One worker: the first record runs alone while the other three,
		// all of other keys, wait ready behind it.
		Concurrency: 1,
		Handler: HandlerFunc(func(ctx context.Context, ev *topics.Event) error {
			if ev.Subject == "first" {
				close(started)
				<-ctx.Done() // held until the partition is lost; then it finishes anyway
			}
			mu.Lock()
			defer mu.Unlock()
			handled = append(handled, ev.Subject)
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	g := p.groups[0]
	running(ctx, t, p)
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the first record never started")
	}
	g.mu.Lock()
	ready := g.ready.len()
	g.mu.Unlock()
	if ready != len(skus)-1 {
		t.Fatalf("%d records ready behind the first, want %d", ready, len(skus)-1)
	}

	g.onLost(ctx, g.cl, map[string][]int32{topic: {0}})

	mu.Lock()
	got := slices.Clone(handled)
	mu.Unlock()
	if !slices.Equal(got, []string{"first"}) {
		t.Errorf("handled %v while the partition was lost, want only the record already running", got)
	}
}
