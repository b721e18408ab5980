package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/ordering"
	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// Same key: strictly in offset order, never two at once; different keys
// run concurrently.
func TestOrderingSameKeyStrictDifferentKeysOverlap(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		const skus, versions = 40, 25
		var recs []*kgo.Record
		for v := 1; v <= versions; v++ {
			for s := range skus {
				recs = append(recs, e.stock(fmt.Sprintf("SKU-%03d", s), int64(v), v))
			}
		}
		e.produce(recs...)

		s := newSink()
		h := s.handler(func(ctx context.Context, ev *topics.Event) error {
			time.Sleep(time.Millisecond) // a sink that takes time, so overlap can happen
			return nil
		})
		g := e.inventoryGroup(h)
		g.Concurrency = 16
		e.start(e.options(), g)
		eventually(t, 60*time.Second, "all records applied", func() bool { return s.total() == skus*versions })

		applied, _, maxConc, overlaps := s.snapshot()
		if overlaps != 0 {
			t.Errorf("%d calls started while the same key was in flight", overlaps)
		}
		if maxConc < 2 {
			t.Errorf("different keys never overlapped (max concurrency %d)", maxConc)
		}
		if maxConc > 16 {
			t.Errorf("concurrency %d exceeded the limit 16", maxConc)
		}
		for sku, vs := range applied {
			if !slices.IsSorted(vs) || len(vs) != versions {
				t.Errorf("%s applied %v, want 1..%d in order", sku, vs, versions)
			}
		}
	})
}

// A version at or below the fence is skipped and never reaches the sink; the
// fence advances only after the sink succeeded.
func TestFenceSkipsStale(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		e.produce(e.stock("SKU-1", 5, 50), e.stock("SKU-1", 3, 30), e.stock("SKU-1", 5, 55), e.stock("SKU-1", 7, 70),
			e.stock("SKU-2", 2, 20))
		s := newSink()
		r := e.start(e.options(), e.inventoryGroup(s.handler(nil)))
		eventually(t, 30*time.Second, "5 records finished", func() bool {
			return counter(r, e.groupID("inventory"), e.topic(topics.TopicInventory), processor.OutcomeApplied)+
				counter(r, e.groupID("inventory"), e.topic(topics.TopicInventory), processor.OutcomeSkippedStale) == 5
		})
		applied, _, _, _ := s.snapshot()
		if got := applied["SKU-1"]; !slices.Equal(got, []int64{5, 7}) {
			t.Errorf("SKU-1 applied versions %v, want [5 7]", got)
		}
		if got := counter(r, e.groupID("inventory"), e.topic(topics.TopicInventory), processor.OutcomeSkippedStale); got != 2 {
			t.Errorf("skipped_stale = %d, want 2", got)
		}
		v, err := e.rdb.Get(context.Background(), ordering.FenceKey(e.groupID("inventory"), "SKU-1")).Int64()
		if err != nil || v != 7 {
			t.Errorf("fence for SKU-1 = %d (%v), want 7", v, err)
		}
	})
}

// A failing sink leaves the fence where it was: the next delivery applies.
func TestFenceDoesNotAdvanceOnFailure(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		e.produce(e.stock("SKU-1", 4, 40))
		s := newSink()
		g := e.inventoryGroup(s.handler(func(context.Context, *topics.Event) error {
			return processor.Permanent(errors.New("422 rejected"))
		}))
		r := e.start(e.options(), g)
		eventually(t, 30*time.Second, "dead-lettered", func() bool {
			return counter(r, e.groupID("inventory"), e.topic(topics.TopicInventory), processor.OutcomeDeadLettered) == 1
		})
		if n, _ := e.rdb.Exists(context.Background(), ordering.FenceKey(e.groupID("inventory"), "SKU-1")).Result(); n != 0 {
			t.Error("fence advanced although the sink failed")
		}
	})
}

// An event id already applied by the group is skipped.
func TestDedupeSkipsDuplicate(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicOrder)
		e.produce(e.order("o-1", "evt-1"), e.order("o-1", "evt-1"), e.order("o-2", "evt-2"), e.order("o-1", "evt-3"))
		s := newSink()
		g := processor.GroupConfig{Name: "order-crm", ID: e.groupID("order-crm"), Topic: e.topic(topics.TopicOrder), Domain: topics.DomainOrder,
			Handler: s.handler(nil), Idempotency: processor.IdempotencyDedupe}
		r := e.start(e.options(), g)
		eventually(t, 30*time.Second, "4 records finished", func() bool {
			st := r.proc.Stats()[0]
			return st.Consumed == 4
		})
		_, ids, _, _ := s.snapshot()
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"evt-1", "evt-2", "evt-3"}) {
			t.Errorf("applied ids %v, want evt-1, evt-2, evt-3 once each", ids)
		}
		if got := counter(r, e.groupID("order-crm"), e.topic(topics.TopicOrder), processor.OutcomeSkippedDuplicate); got != 1 {
			t.Errorf("skipped_duplicate = %d, want 1", got)
		}
	})
}

// A retryable failure is retried with backoff and then succeeds; nothing
// goes to the DLQ.
func TestRetryThenSuccess(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		e.produce(e.stock("SKU-1", 1, 10))
		var calls atomic.Int32
		s := newSink()
		g := e.inventoryGroup(s.handler(func(context.Context, *topics.Event) error {
			if calls.Add(1) < 3 {
				return errors.New("503 service unavailable")
			}
			return nil
		}))
		r := e.start(e.options(), g)
		eventually(t, 30*time.Second, "applied", func() bool {
			return counter(r, e.groupID("inventory"), e.topic(topics.TopicInventory), processor.OutcomeApplied) == 1
		})
		st := r.proc.Stats()[0]
		if st.Retried != 2 || st.DeadLettered != 0 || calls.Load() != 3 {
			t.Errorf("retried=%d dead_lettered=%d calls=%d, want 2, 0, 3", st.Retried, st.DeadLettered, calls.Load())
		}
	})
}

// A Retry-After longer than what is left of the retry budget dead-letters
// the record (retries exhausted) instead of waiting: even one of centuries,
// as a sink's far-future HTTP-date asks for, which once overflowed the
// budget check and held the key (and its partition's commits) for good.
func TestRetryAfterBeyondBudgetDeadLetters(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		e.produce(e.stock("SKU-1", 1, 10))
		var calls atomic.Int32
		s := newSink()
		g := e.inventoryGroup(s.handler(func(context.Context, *topics.Event) error {
			calls.Add(1)
			return processor.RetryAfter(errors.New("429 too many requests"), time.Duration(1<<63-1))
		}))
		r := e.start(e.options(), g)
		eventually(t, 30*time.Second, "dead-lettered", func() bool {
			return counter(r, e.groupID("inventory"), e.topic(topics.TopicInventory), processor.OutcomeDeadLettered) == 1
		})
		dlq := e.readAll(topics.DLQTopic(e.topic(topics.TopicInventory)))
		if len(dlq) != 1 || !hasHeader(dlq[0], topics.HeaderErrorClass, topics.ErrorClassRetriesExhausted) {
			t.Fatalf("DLQ holds %d records, want 1 with class %s", len(dlq), topics.ErrorClassRetriesExhausted)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("the sink was called %d times, want 1 (the wait asked for exceeds the budget)", n)
		}
	})
}

// A permanent error goes to the DLQ at once with every contract header, the
// original key, value and headers; retries exhausted are dead-lettered too.
func TestDeadLetterHeaders(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		perm := e.stock("SKU-P", 1, 1)
		perm.Headers = []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-abc-def-01")}}
		poison := &kgo.Record{Topic: e.topic(topics.TopicInventory), Key: []byte("SKU-X"), Value: []byte(`{not json`)}
		exhausted := e.stock("SKU-R", 1, 1)
		e.produce(perm, poison, exhausted)
		var permCalls atomic.Int32
		s := newSink()
		g := e.inventoryGroup(s.handler(func(_ context.Context, ev *topics.Event) error {
			if ev.Subject == "SKU-P" {
				permCalls.Add(1)
				return processor.Permanent(errors.New("400 bad request: invalid source_code"))
			}
			return errors.New("502 bad gateway")
		}))
		r := e.start(e.options(), g)
		eventually(t, 30*time.Second, "3 dead letters", func() bool {
			return counter(r, e.groupID("inventory"), e.topic(topics.TopicInventory), processor.OutcomeDeadLettered) == 3
		})
		if permCalls.Load() != 1 {
			t.Errorf("permanent error was tried %d times, want 1", permCalls.Load())
		}
		dlq := e.readAll(topics.DLQTopic(e.topic(topics.TopicInventory)))
		if len(dlq) != 3 {
			t.Fatalf("DLQ has %d records, want 3", len(dlq))
		}
		byKey := map[string]*kgo.Record{}
		for _, d := range dlq {
			byKey[string(d.Key)] = d
		}
		want := map[string]struct {
			class, attempts, errPart string
			src                      *kgo.Record
		}{
			"SKU-P": {topics.ErrorClassPermanent, "1", "invalid source_code", perm},
			"SKU-X": {topics.ErrorClassPoison, "0", "JSON", poison},
			"SKU-R": {topics.ErrorClassRetriesExhausted, "4", "502", exhausted},
		}
		for key, w := range want {
			d := byKey[key]
			if d == nil {
				t.Errorf("no DLQ record for %s", key)
				continue
			}
			h := map[string]string{}
			for _, kv := range d.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if string(d.Value) != string(w.src.Value) {
				t.Errorf("%s: DLQ value changed", key)
			}
			checks := map[string]string{
				topics.HeaderOriginalTopic:     e.topic(topics.TopicInventory),
				topics.HeaderOriginalPartition: strconv.Itoa(int(w.src.Partition)),
				topics.HeaderOriginalOffset:    strconv.FormatInt(w.src.Offset, 10),
				topics.HeaderGroup:             e.groupID("inventory"),
				topics.HeaderErrorClass:        w.class,
				topics.HeaderAttempts:          w.attempts,
			}
			for hk, hv := range checks {
				if h[hk] != hv {
					t.Errorf("%s: header %s = %q, want %q", key, hk, h[hk], hv)
				}
			}
			if ts, err := strconv.ParseInt(h[topics.HeaderOriginalTimestamp], 10, 64); err != nil || ts != w.src.Timestamp.UnixMilli() {
				t.Errorf("%s: original timestamp %q, want %d", key, h[topics.HeaderOriginalTimestamp], w.src.Timestamp.UnixMilli())
			}
			if _, err := time.Parse(time.RFC3339, h[topics.HeaderFailedAt]); err != nil {
				t.Errorf("%s: failed.at %q is not RFC 3339", key, h[topics.HeaderFailedAt])
			}
			if !strings.Contains(h[topics.HeaderError], w.errPart) {
				t.Errorf("%s: error header %q does not mention %q", key, h[topics.HeaderError], w.errPart)
			}
		}
		if h := byKey["SKU-P"]; h != nil && !hasHeader(h, "traceparent", "00-abc-def-01") {
			t.Error("original headers were not kept on the DLQ record")
		}
		// Every record is finished, so every partition is committed to its end.
		ends := e.endOffsets(e.topic(topics.TopicInventory))
		eventually(t, 10*time.Second, "commit to the end", func() bool {
			got := e.committed(e.groupID("inventory"), e.topic(topics.TopicInventory))
			for p, end := range ends {
				if end > 0 && got[p] != end {
					return false
				}
			}
			return true
		})
	})
}

func hasHeader(r *kgo.Record, k, v string) bool {
	for _, h := range r.Headers {
		if h.Key == k && string(h.Value) == v {
			return true
		}
	}
	return false
}

// A producer that breaks the contract and sends no record key still gets
// per-subject order inside a partition: the subject is the ordering key.
func TestKeylessRecordsOrderedBySubject(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnvSeeded(t, b, 1, topics.TopicInventory, topics.DLQTopic(topics.TopicInventory))
		var recs []*kgo.Record
		for v := 1; v <= 30; v++ {
			for _, sku := range []string{"SKU-K1", "SKU-K2", "SKU-K3"} {
				r := e.stock(sku, int64(v), v)
				r.Key = nil
				recs = append(recs, r)
			}
		}
		e.produceTo(recs...)
		s := newSink()
		g := e.inventoryGroup(s.handler(func(context.Context, *topics.Event) error {
			time.Sleep(time.Millisecond)
			return nil
		}))
		g.Concurrency = 8
		e.start(e.options(), g)
		eventually(t, 30*time.Second, "all applied", func() bool { return s.total() == 90 })
		applied, _, maxConc, overlaps := s.snapshot()
		if overlaps != 0 {
			t.Errorf("%d calls overlapped with the same subject", overlaps)
		}
		if maxConc < 2 {
			t.Errorf("different subjects never ran concurrently (max %d)", maxConc)
		}
		for sku, vs := range applied {
			if !slices.IsSorted(vs) || len(vs) != 30 {
				t.Errorf("%s applied %v, want 1..30 in order", sku, vs)
			}
		}
	})
}
