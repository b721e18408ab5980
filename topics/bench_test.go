package topics_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shopstream/shopstream/topics"
)

// benchRecords are typical records as producers write them (attributes in
// Encode's order): the inventory one is benchRecord, and a product.updated
// with every field and an order.placed with two items.
func benchRecords() []struct {
	name   string
	domain topics.Domain
	key    []byte
	value  []byte
} {
	enc := func(typ, subject, data string) []byte {
		v, err := topics.Encode(&topics.Event{
			SpecVersion: "1.0", ID: "01JD3YV7Q8K3M8Z3J3X1X0ABCD", Source: "erp/warehouse-feed", Type: typ,
			Subject: subject, Time: time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC), Version: 1732701600123,
			DataContentType: "application/json", Data: json.RawMessage(data),
		})
		if err != nil {
			panic(err)
		}
		return v
	}
	return []struct {
		name   string
		domain topics.Domain
		key    []byte
		value  []byte
	}{
		{"stock.updated", topics.DomainInventory, []byte("SKU-12345"), benchRecord},
		{"product.updated", topics.DomainCatalog, []byte("SKU-1"), enc(topics.TypeProductUpdated, "SKU-1",
			`{"sku":"SKU-1","name":"Tee (blue)","price":19.99,"status":1,"visibility":4,"type_id":"simple","attribute_set_id":4,"weight":0.5}`)},
		{"order.placed", topics.DomainOrder, []byte("100000042"), enc(topics.TypeOrderPlaced, "100000042",
			`{"order_id":"100000042","customer_id":"C-7","email":"ann@example.com","grand_total":59.97,"currency":"EUR",`+
				`"items":[{"sku":"SKU-1","qty":2,"price":19.99},{"sku":"SKU-2","qty":1,"price":19.99}]}`)},
	}
}

// BenchmarkDecodeTypes decodes typical records of three types with Decode
// ("fast") and with the reference implementation ("reference": encoding/json
// and the JSON Schema validator) in the same run.
func BenchmarkDecodeTypes(b *testing.B) {
	for _, r := range benchRecords() {
		for _, impl := range []struct {
			name   string
			decode func(topics.Domain, []byte, []byte) (*topics.Event, error)
		}{{"fast", topics.Decode}, {"reference", topics.RefDecode}} {
			b.Run(r.name+"/"+impl.name, func(b *testing.B) {
				if _, err := impl.decode(r.domain, r.key, r.value); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(r.value)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := impl.decode(r.domain, r.key, r.value); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestDecodeAllocs guards the allocation count of the fast path (counts,
// unlike timings, are stable): the event and one string for its attributes.
func TestDecodeAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	for _, r := range benchRecords() {
		n := testing.AllocsPerRun(200, func() {
			if _, err := topics.Decode(r.domain, r.key, r.value); err != nil {
				t.Fatal(err)
			}
		})
		if n > 2 {
			t.Errorf("%s: %v allocations per Decode, want at most 2", r.name, n)
		}
	}
}
