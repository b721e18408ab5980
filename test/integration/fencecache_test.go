package integration

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// A record applied by a retry must not leave the group's fence cache behind
// Redis: version 2 of SKU-1 fails once and is applied by the retry, then a
// stale copy (version 1) arrives and must be skipped, not admitted from a
// cache that still remembers version 0 (the regression `make chaos` found
// in its sink-outage scenario: "applied version 1 after 2").
func TestStaleCopyAfterRetriedRecordIsSkipped(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		e.produce(e.stock("SKU-1", 2, 20), e.stock("SKU-1", 1, 10), e.stock("SKU-1", 3, 30), e.stock("SKU-1", 2, 21))
		var failed atomic.Bool
		s := newSink()
		r := e.start(e.options(), e.inventoryGroup(s.handler(func(_ context.Context, ev *topics.Event) error {
			if ev.Version == 2 && failed.CompareAndSwap(false, true) {
				return errors.New("503 service unavailable") // retryable, once
			}
			return nil
		})))
		eventually(t, 30*time.Second, "4 records finished", func() bool {
			return counter(r, e.groupID("inventory"), e.topic(topics.TopicInventory), processor.OutcomeApplied)+
				counter(r, e.groupID("inventory"), e.topic(topics.TopicInventory), processor.OutcomeSkippedStale) == 4
		})
		applied, _, _, _ := s.snapshot()
		if got := applied["SKU-1"]; !slices.Equal(got, []int64{2, 3}) {
			t.Errorf("SKU-1 applied versions %v, want [2 3]: the stale copies must be skipped", got)
		}
		if st := r.proc.Stats()[0]; st.Retried != 1 || st.SkippedStale != 2 {
			t.Errorf("retried=%d skipped_stale=%d, want 1 and 2", st.Retried, st.SkippedStale)
		}
	})
}
