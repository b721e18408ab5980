package processor

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/ordering"
	"github.com/shopstream/shopstream/topics"
)

// stockRecord is an inventory.stock.updated record of sku at version.
func stockRecord(t *testing.T, offset int64, sku string, version int64) *work {
	t.Helper()
	value := fmt.Sprintf(`{"specversion":"1.0","id":"ev-%d","source":"erp","type":"inventory.stock.updated","subject":%q,"version":%d,"data":{"sku":%q,"source_code":"default","quantity":5,"status":1}}`,
		offset, sku, version, sku)
	if _, err := topics.Decode(topics.DomainInventory, []byte(sku), []byte(value)); err != nil {
		t.Fatalf("test record is not valid: %v", err)
	}
	return &work{rec: &kgo.Record{Key: []byte(sku), Value: []byte(value), Offset: offset}}
}

// A later absolute update supersedes a running record only if it is of the
// same subject: two subjects whose ordering keys collide share a queue in
// the scheduler (ordering.Item.Key), and one must never skip the other.
func TestSupersededOnlyBySameSubject(t *testing.T) {
	g := &group{id: "shopstream.inventory", cfg: GroupConfig{
		Domain:      topics.DomainInventory,
		Idempotency: IdempotencyFence,
		Coalesce:    func(*topics.Event) (string, bool) { return "source-item", true },
	}}
	for _, tc := range []struct {
		name       string
		laterSKU   string
		superseded bool
	}{
		{"same subject", "SKU-A", true},
		{"colliding key, other subject", "SKU-B", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := &partState{sched: ordering.NewPartition[*work]()}
			key := ordering.HashKey("SKU-A") // both records share it, as on a collision
			first := ordering.Item[*work]{Offset: 0, Key: key, Value: stockRecord(t, 0, "SKU-A", 1)}
			if !ps.sched.Add(first) {
				t.Fatal("the first record does not start")
			}
			if ps.sched.Add(ordering.Item[*work]{Offset: 1, Key: key, Value: stockRecord(t, 1, tc.laterSKU, 5)}) {
				t.Fatal("the second record starts beside the first")
			}
			if got := g.supersededLocked(ps, first); got != tc.superseded {
				t.Fatalf("supersededLocked = %v, want %v", got, tc.superseded)
			}
		})
	}
}

// A later update of the same class supersedes the record about to run only
// if the fence will let it through: its version must be above every record of
// the subject waiting before it, of any class. Otherwise (default v2 about
// to run, eu-west v9 then default v3 waiting) v3 is fenced after v9, and
// skipping v2 would lose default's update.
func TestSupersededOnlyByAnUpdateThatWillApply(t *testing.T) {
	g := &group{id: "shopstream.inventory", cfg: GroupConfig{
		Domain:      topics.DomainInventory,
		Idempotency: IdempotencyFence,
		Coalesce: func(ev *topics.Event) (string, bool) {
			var d struct {
				Source string `json:"source_code"`
			}
			return d.Source, json.Unmarshal(ev.Data, &d) == nil
		},
	}}
	type rec struct {
		source  string
		version int64
	}
	for _, tc := range []struct {
		name       string
		behind     []rec
		superseded bool
	}{
		{"newer of the class, nothing between", []rec{{"default", 3}}, true},
		{"a lower version of another class between", []rec{{"eu-west", 1}, {"default", 3}}, true},
		{"the newer one first, then a higher other class", []rec{{"default", 3}, {"eu-west", 9}}, true},
		{"a higher version of another class between", []rec{{"eu-west", 9}, {"default", 3}}, false},
		{"an equal version of another class between", []rec{{"eu-west", 3}, {"default", 3}}, false},
		{"only another class", []rec{{"eu-west", 9}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := &partState{sched: ordering.NewPartition[*work]()}
			key := ordering.HashKey("SKU-A")
			next := ordering.Item[*work]{Offset: 0, Key: key, Value: sourceRecord(t, 0, "SKU-A", "default", 2)}
			if !ps.sched.Add(next) {
				t.Fatal("the first record does not start")
			}
			for i, r := range tc.behind {
				off := int64(i + 1)
				ps.sched.Add(ordering.Item[*work]{Offset: off, Key: key, Value: sourceRecord(t, off, "SKU-A", r.source, r.version)})
			}
			if got := g.supersededLocked(ps, next); got != tc.superseded {
				t.Fatalf("supersededLocked = %v, want %v", got, tc.superseded)
			}
		})
	}
}

// sourceRecord is an inventory.stock.updated record of sku's source at version.
func sourceRecord(t *testing.T, offset int64, sku, source string, version int64) *work {
	t.Helper()
	value := fmt.Sprintf(`{"specversion":"1.0","id":"ev-%d","source":"erp","type":"inventory.stock.updated","subject":%q,"version":%d,"data":{"sku":%q,"source_code":%q,"quantity":5,"status":1}}`,
		offset, sku, version, sku, source)
	if _, err := topics.Decode(topics.DomainInventory, []byte(sku), []byte(value)); err != nil {
		t.Fatalf("test record is not valid: %v", err)
	}
	return &work{rec: &kgo.Record{Key: []byte(sku), Value: []byte(value), Offset: offset}}
}
