package processor

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/redistest"
	"github.com/shopstream/shopstream/ordering"
	"github.com/shopstream/shopstream/topics"
)

// A keyless record's subject may live in several partitions, written by
// several members, so it is checked against Redis every time, never against
// this process's fence cache: when another member has advanced the subject
// (here: an Advance on the shared store), an older version is skipped.
func TestKeylessRecordsAreFencedByRedis(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := topics.TopicInventory
	c := inventoryCluster(t, 1)
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	fence := ordering.NewVersionFence(rdb)

	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	keyless := func(v int64) *kgo.Record {
		val := fmt.Sprintf(`{"specversion":"1.0","id":"id-%d","source":"erp","type":"inventory.stock.updated","subject":"S","version":%d,"data":{"sku":"S","source_code":"default","quantity":%d,"status":1}}`, v, v, v)
		return &kgo.Record{Topic: topic, Value: []byte(val)}
	}
	var (
		mu      sync.Mutex
		applied []int64
	)
	p, err := New(Options{Brokers: c.ListenAddrs(), Logger: zerolog.Nop(), Versions: fence}, GroupConfig{
		Name: "inventory", Topic: topic, Domain: topics.DomainInventory, Idempotency: IdempotencyFence,
		Handler: HandlerFunc(func(_ context.Context, ev *topics.Event) error {
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, ev.Version)
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
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	consumed := func(n int64) func() bool {
		return func() bool { return p.Stats()[0].Consumed >= n }
	}

	if err := prod.ProduceSync(ctx, keyless(1)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	await(ctx, t, "v1 to finish", consumed(1))
	// Another member, fetching S from another partition, applies v3.
	if _, err := fence.Advance(ctx, g.id, []string{"S"}, []int64{3}); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(ctx, keyless(2)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	await(ctx, t, "v2 to finish", consumed(2))

	mu.Lock()
	got := slices.Clone(applied)
	mu.Unlock()
	if st := p.Stats()[0]; !slices.Equal(got, []int64{1}) || st.SkippedStale != 1 {
		t.Errorf("sink got versions %v, %d skipped stale; want [1] and v2 skipped (the fence holds 3)", got, st.SkippedStale)
	}
}
