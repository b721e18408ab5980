package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/handlers"
	"github.com/shopstream/shopstream/topics"
)

// With coalescing, absolute updates of the same source item that wait behind
// a running one collapse into the newest: only it reaches the sink, the
// others count as skipped_stale. Updates of another source item are kept,
// and the final state equals what applying everything would give.
func TestCoalescingAppliesOnlyTheNewestWaitingUpdate(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnvSeeded(t, b, 1, topics.TopicInventory, topics.DLQTopic(topics.TopicInventory))
		stockAt := func(source string, v int64) *kgo.Record {
			data := fmt.Sprintf(`{"sku":"SKU-H","source_code":%q,"quantity":%d,"status":1}`, source, v*10)
			return record(e.topic(topics.TopicInventory), "inventory.stock.updated", "SKU-H", fmt.Sprintf("evt-%s-%d", source, v), v, data)
		}
		// v1 runs first and is held; v2..v9 queue behind it. v5 is for
		// another source item and must not be coalesced away.
		var recs []*kgo.Record
		for v := int64(1); v <= 9; v++ {
			src := "default"
			if v == 5 {
				src = "eu-west"
			}
			recs = append(recs, stockAt(src, v))
		}
		e.produceTo(recs...)

		gate := make(chan struct{})
		s := newSink()
		g := e.inventoryGroup(s.handler(func(_ context.Context, ev *topics.Event) error {
			if ev.Version == 1 {
				<-gate
			}
			return nil
		}))
		g.Coalesce = handlers.CoalesceKey
		r := e.start(e.options(), g)
		eventually(t, 30*time.Second, "v1 running, the rest fetched and waiting", func() bool {
			return metric(t, r, "shopstream_inflight", nil) == 1 &&
				metric(t, r, "shopstream_consumer_lag", map[string]string{"partition": "0"}) == 9
		})
		close(gate)
		eventually(t, 30*time.Second, "all 9 finished", func() bool { return r.proc.Stats()[0].Consumed == 9 })

		applied, _, _, _ := s.snapshot()
		if got := applied["SKU-H"]; !slices.Equal(got, []int64{1, 5, 9}) {
			t.Errorf("applied versions %v, want [1 5 9]: v2..v4 and v6..v8 superseded by v9, v5 is another source", got)
		}
		if st := r.proc.Stats()[0]; st.SkippedStale != 6 || st.Applied != 3 {
			t.Errorf("applied=%d skipped_stale=%d, want 3 and 6", st.Applied, st.SkippedStale)
		}
	})
}
