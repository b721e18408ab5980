package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/topics"
)

// TestSlowShutdown: SIGTERM while 1,000 inventory records are in flight at
// a slow (3 s) sink. The process must finish them and exit within its drain
// deadline; after a restart nothing reaches the sink twice (the committed
// offsets and the fence cover it). The same size in the short and the long
// version: the scenario is about what is in flight, not the stream length.
func TestSlowShutdown(t *testing.T) {
	eachBackend(t, false, func(t *testing.T, b *backend) {
		t.Parallel()
		const drain = 30 * time.Second
		s := newStack(t, b, `drain_timeout: 30s
groups:
  inventory: {concurrency: 1000, max_buffered: 4000}
`)
		s.groups = []devstack.GroupSpec{s.groups[1]}
		s.generate(devstack.GenConfig{Seed: 51, SKUs: 1200, StockUpdates: 3600, CatalogUpdates: -1,
			Orders: -1, Customers: -1, PoisonRate: -1})
		if err := s.feed(t.Context(), 0, 0); err != nil {
			t.Fatal(err)
		}
		s.sim.SetLatency(3 * time.Second)
		p := s.start("SHOPSTREAM_GROUPS=inventory")

		inflight := func() int {
			return s.sim.Attempts()[devstack.SinkSourceItems] - len(s.sim.Calls())
		}
		deadline := time.Now().Add(time.Minute)
		for inflight() < 1000 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		n := inflight()
		took, err := p.term(drain + 15*time.Second)
		t.Logf("SIGTERM with %d requests in flight at the sink: exited after %s (%v)", n, took.Round(time.Millisecond), err)
		if err != nil {
			t.Fatal(err)
		}
		if n < 1000 {
			t.Errorf("only %d requests in flight at SIGTERM, want 1000", n)
		}
		if took > drain+5*time.Second {
			t.Errorf("shutdown took %s, drain deadline %s", took, drain)
		}

		// Every record applied before the exit is below its partition's
		// committed offset.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		offs, err := s.adm.FetchOffsets(ctx, "shopstream.inventory")
		if err != nil {
			t.Fatal(err)
		}
		before := s.sim.Calls()
		s.mu.Lock()
		byID := map[string]devstack.Produced{}
		for _, r := range s.m.Records {
			byID[r.ID] = r
		}
		s.mu.Unlock()
		uncommitted := 0
		for _, c := range before {
			r := byID[c.EventID]
			o, ok := offs.Lookup(s.prefix+topics.TopicInventory, r.Partition)
			if !ok || o.At <= r.Offset {
				uncommitted++
			}
		}
		// The commit is each partition's lowest unfinished offset: records
		// queued behind an in-flight key are not started during the drain,
		// so records applied above them are not committed. They are read
		// again after the restart and must not reach the sink twice (the
		// fence skips them): checked below as duplicate applies = 0.
		t.Logf("%d applied before exit, %d of them above the committed offset (re-read after restart, must be fenced)", len(before), uncommitted)
		if len(before) < n*9/10 {
			t.Errorf("only %d of %d in-flight records were applied during the drain", len(before), n)
		}

		s.sim.SetLatency(0)
		s.start("SHOPSTREAM_GROUPS=inventory")
		s.waitCaughtUp(2 * time.Minute)
		v := s.check("slow-shutdown")
		requireOK(t, v)
		if v.DuplicateApplies > 0 {
			t.Errorf("%d events applied twice across the restart", v.DuplicateApplies)
		}
	})
}
