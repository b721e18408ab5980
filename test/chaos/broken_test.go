package chaos

import (
	"context"
	"hash/fnv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/shopstream/shopstream/handlers"
	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/ordering"
	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// TestCheckerCatchesBrokenProcessor runs the real processor (in process)
// for the inventory group with a handler that, for the events of a few SKUs
// (5 of 200, chosen by a hash of the subject), returns nil without calling
// the sink — the shape of "commit before the sink call". The processor's
// own counters say everything was applied; the checker, which reads only
// the manifest, the DLQ and the sink's calls, must report the loss.
//
// The choice goes by subject, not by event: a dropped event that a later
// version of its SKU supersedes looks to the checker like a stale skip,
// which the fence makes legitimate, and event ids carry the run's clock —
// choosing ~2% of the events by id, the run now and then dropped none of
// its SKUs' last versions, and the checker rightly saw no loss.
func TestCheckerCatchesBrokenProcessor(t *testing.T) {
	eachBackend(t, false, func(t *testing.T, b *backend) {
		t.Parallel()
		s := newStack(t, b, "")
		s.generate(devstack.GenConfig{Seed: 11, SKUs: 200, StockUpdates: 2000, CatalogUpdates: -1, Orders: -1, Customers: -1,
			StaleRate: -1, DuplicateRate: -1, PoisonRate: -1})
		if err := s.feed(t.Context(), 0, 0); err != nil {
			t.Fatal(err)
		}
		magento, err := handlers.NewMagento(handlers.MagentoConfig{BaseURL: s.sim.URL(), Token: s.sim.Token()})
		if err != nil {
			t.Fatal(err)
		}
		var skipped atomic.Int64
		lossy := processor.HandlerFunc(func(ctx context.Context, ev *topics.Event) error {
			h := fnv.New32a()
			h.Write([]byte(ev.Subject))
			if h.Sum32()%50 == 0 {
				skipped.Add(1)
				return nil
			}
			return magento.Inventory().Handle(ctx, ev)
		})
		rdb := redis.NewClient(&redis.Options{Addr: s.redis.Addr()})
		defer rdb.Close()
		p, err := processor.New(processor.Options{
			Brokers:        s.brokers,
			Versions:       ordering.NewVersionFence(rdb),
			IDs:            ordering.NewDedupe(rdb, time.Hour),
			Logger:         zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
			CommitInterval: 50 * time.Millisecond,
		}, processor.GroupConfig{
			Name: "inventory", Topic: s.prefix + topics.TopicInventory, Domain: topics.DomainInventory,
			Handler: lossy, Idempotency: processor.IdempotencyFence, Concurrency: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		s.groups = []devstack.GroupSpec{s.groups[1]} // inventory
		if s.groups[0].Name != "inventory" {
			t.Fatalf("group order changed: %+v", s.groups)
		}
		s.waitCaughtUp(2 * time.Minute)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		v := s.check("broken-processor")
		var counted int64
		for _, st := range p.Stats() {
			counted += st.Applied
		}
		t.Logf("handler skipped the sink %d times; the processor counted %d applied", skipped.Load(), counted)
		if skipped.Load() == 0 {
			t.Fatal("the lossy handler never dropped a record; the test proves nothing")
		}
		if v.OK() || v.Lost == 0 {
			t.Fatalf("the checker did not catch a processor that dropped %d records:\n%s", skipped.Load(), v)
		}
	})
}
