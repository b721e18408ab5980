package integration

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topics"
)

// The processor reads with read_committed: the records of an aborted
// transaction (a bridge request that Kafka failed part-way) are never
// applied, those of a committed one are, in order.
func TestAbortedTransactionsAreNotApplied(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		txn := func(commit bool, recs ...*kgo.Record) {
			t.Helper()
			cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.TransactionalID(e.prefix+"txn"))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce in transaction: %v", err)
			}
			end := kgo.TryAbort
			if commit {
				end = kgo.TryCommit
			}
			if err := cl.EndTransaction(ctx, end); err != nil {
				t.Fatalf("end transaction (commit=%v): %v", commit, err)
			}
		}
		txn(true, e.stock("SKU-1", 1, 10), e.stock("SKU-2", 1, 20))
		txn(false, e.stock("SKU-1", 9, 90), e.stock("SKU-2", 9, 90)) // aborted: must never reach the sink
		txn(true, e.stock("SKU-1", 2, 11), e.stock("SKU-2", 2, 21))

		s := newSink()
		r := e.start(e.options(), e.inventoryGroup(s.handler(nil)))
		eventually(t, 30*time.Second, "the committed records applied", func() bool { return s.total() == 4 })
		// The commits reach the end of the log, past the last transaction
		// marker: a finished partition shows no lag (the processor never
		// sees a marker as a record; it must still move past it).
		ends := e.endOffsets(e.topic(topics.TopicInventory))
		eventually(t, 30*time.Second, "offsets committed to the end of the log", func() bool {
			got := e.committed(e.groupID("inventory"), e.topic(topics.TopicInventory))
			for p, end := range ends {
				if end > 0 && got[p] != end {
					return false
				}
			}
			return true
		})
		applied, _, _, _ := s.snapshot()
		for _, sku := range []string{"SKU-1", "SKU-2"} {
			if got := applied[sku]; !slices.Equal(got, []int64{1, 2}) {
				t.Errorf("%s applied versions %v, want [1 2] (version 9 was aborted)", sku, got)
			}
		}
		if st := r.proc.Stats()[0]; st.SkippedStale != 0 || st.DeadLettered != 0 {
			t.Errorf("skipped_stale=%d dead_lettered=%d, want 0: aborted records are not even read", st.SkippedStale, st.DeadLettered)
		}
	})
}
