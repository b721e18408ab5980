package processor

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/redistest"
	"github.com/shopstream/shopstream/ordering"
	"github.com/shopstream/shopstream/topics"
)

// A record that succeeded on a retry is marked applied even when Redis is
// down at that moment and its partition's context ends meanwhile (a revoke
// deadline): the mark waits for Redis under the group's work context, as a
// chunk's does. Given up with the partition, the id would stay unmarked and
// the partition's next owner would send the event to the sink again.
func TestRetriedRecordIsMarkedAfterItsPartitionEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := topics.TopicInventory
	c := inventoryCluster(t, 1)
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr(), MaxRetries: -1})
	defer rdb.Close()

	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	v := `{"specversion":"1.0","id":"evt-retried","source":"erp","type":"inventory.stock.updated","subject":"S","version":1,"data":{"sku":"S","source_code":"default","quantity":1,"status":1}}`
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("S"), Value: []byte(v)}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var calls atomic.Int32
	second, proceed := make(chan struct{}), make(chan struct{})
	p, err := New(Options{
		Brokers: c.ListenAddrs(), Logger: zerolog.Nop(),
		IDs: ordering.NewDedupe(rdb, 0), StoreBackoffMax: 50 * time.Millisecond,
	}, GroupConfig{
		Name: "inventory", Topic: topic, Domain: topics.DomainInventory, Idempotency: IdempotencyDedupe,
		Retry: RetryPolicy{MaxAttempts: 3, Initial: time.Millisecond, Max: time.Millisecond, MaxElapsed: time.Minute},
		Handler: HandlerFunc(func(context.Context, *topics.Event) error {
			if calls.Add(1) == 1 {
				return errors.New("503 service unavailable") // the retry path takes it from here
			}
			close(second)
			<-proceed
			return nil // applied at the sink
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	g := p.groups[0]
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	select {
	case <-second:
	case <-ctx.Done():
		t.Fatal("the record was never retried")
	}
	rs.Stop() // Redis goes down while the sink call is on the wire
	close(proceed)
	await(ctx, t, "the group to pause for Redis", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.pausers > 0
	})
	g.mu.Lock()
	ps := g.parts[0]
	g.mu.Unlock()
	ps.cancel() // the partition's context ends (a revoke deadline)
	rs.Start()
	key := ordering.DedupeKey(g.id, "evt-retried")
	await(ctx, t, "the retried record's id to be marked", func() bool {
		n, err := rdb.Exists(ctx, key).Result()
		return err == nil && n == 1
	})
}

// await polls cond until it holds, failing the test at ctx's end.
func await(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
