package chaos

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/topics"
)

// TestBadInputRecords pins the defined behaviour of awkward records, end to
// end through `shopstream run` (inventory group): a key that is not UTF-8,
// a key that disagrees with the subject and an oversized (900 KB) malformed
// value are poison — dead-lettered byte-exact with error class poison,
// never sent, never blocking the partition — while a keyless record is
// applied (ordered by its subject; see test/integration for the ordering).
// A non-UTF-8 key can never equal a subject (JSON strings are UTF-8), so it
// is always the key-differs-from-subject poison.
func TestBadInputRecords(t *testing.T) {
	eachBackend(t, false, func(t *testing.T, b *backend) {
		t.Parallel()
		s := newStack(t, b, fastRetry)
		s.groups = []devstack.GroupSpec{s.groups[1]}
		topic := s.prefix + topics.TopicInventory
		stock := func(key []byte, subject, id string, version int64) *kgo.Record {
			v := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"chaos","type":"inventory.stock.updated","subject":%q,"time":"2026-11-27T10:00:00Z","version":%d,"datacontenttype":"application/json","data":{"sku":%q,"source_code":"default","quantity":1,"status":1}}`,
				id, subject, version, subject)
			return &kgo.Record{Topic: topic, Partition: 0, Key: key, Value: []byte(v)}
		}
		big := append([]byte(`{"specversion":"1.0","id":"big","data":"`), bytes.Repeat([]byte("x"), 900<<10)...) // no closing quote: invalid JSON
		recs := []*kgo.Record{
			stock([]byte("SKU-\xff\xfe"), "SKU-1", "bad-utf8", 1),
			stock([]byte("SKU-2"), "SKU-3", "key-not-subject", 1),
			{Topic: topic, Partition: 0, Key: []byte("SKU-4"), Value: big},
			stock(nil, "SKU-5", "keyless", 1),
			stock([]byte("SKU-6"), "SKU-6", "good-after", 1),
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		s.start("SHOPSTREAM_GROUPS=inventory")
		s.waitCaughtUp(time.Minute)

		dls, err := admin.ListDLQ(ctx, s.cl, topics.DLQTopic(topic), admin.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]admin.DeadLetter{}
		for _, d := range dls {
			got[string(d.Key)] = d
		}
		for _, r := range recs[:3] {
			d, ok := got[string(r.Key)]
			switch {
			case !ok:
				t.Errorf("key %q: not dead-lettered", r.Key)
			case !bytes.Equal(d.Value, r.Value):
				t.Errorf("key %q: DLQ value differs (%d bytes, want %d)", r.Key, len(d.Value), len(r.Value))
			case d.ErrorClass != topics.ErrorClassPoison || len(d.Problems) > 0:
				t.Errorf("key %q: class %q, problems %v", r.Key, d.ErrorClass, d.Problems)
			default:
				t.Logf("key %q (%d bytes): dead-lettered: %s", r.Key, len(r.Value), clip(d.Error, 120))
			}
		}
		applied := map[string]bool{}
		for _, c := range s.sim.Calls() {
			applied[c.EventID] = true
		}
		for _, id := range []string{"keyless", "good-after"} {
			if !applied[id] {
				t.Errorf("%s: not applied", id)
			}
		}
		for _, id := range []string{"bad-utf8", "key-not-subject"} {
			if applied[id] {
				t.Errorf("%s: a poison record reached the sink", id)
			}
		}
	})
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
