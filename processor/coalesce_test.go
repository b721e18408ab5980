package processor

import (
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
