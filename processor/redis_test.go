package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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

// The processor's store paths against a real redis-server (and kfake).

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
	t.Cleanup(func() { rdb.Close() })
	fence := ordering.NewVersionFence(rdb)

	keyless := func(v int64) *kgo.Record {
		return &kgo.Record{Topic: topic, Value: []byte(stockValue(fmt.Sprintf("id-%d", v), "S", "default", v))}
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
	running(ctx, t, p)
	consumed := func(n int64) func() bool {
		return func() bool { return p.Stats()[0].Consumed >= n }
	}

	produce(ctx, t, c, keyless(1))
	await(ctx, t, "v1 to finish", consumed(1))
	// Another member, fetching S from another partition, applies v3.
	if _, err := fence.Advance(ctx, g.id, []string{"S"}, []int64{3}); err != nil {
		t.Fatal(err)
	}
	produce(ctx, t, c, keyless(2))
	await(ctx, t, "v2 to finish", consumed(2))

	mu.Lock()
	got := slices.Clone(applied)
	mu.Unlock()
	if st := p.Stats()[0]; !slices.Equal(got, []int64{1}) || st.SkippedStale != 1 {
		t.Errorf("sink got versions %v, %d skipped stale; want [1] and v2 skipped (the fence holds 3)", got, st.SkippedStale)
	}
}

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
	t.Cleanup(func() { rdb.Close() })

	produce(ctx, t, c, &kgo.Record{Topic: topic, Key: []byte("S"), Value: []byte(stockValue("evt-retried", "S", "default", 1))})

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
	running(ctx, t, p)

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
