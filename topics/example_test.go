package topics_test

import (
	"fmt"

	"github.com/shopstream/shopstream/topics"
)

// A consumer decodes each record of its topic with Decode, sends poison
// records to the dead-letter topic at once, and reads the typed payload.
func ExampleDecode() {
	key := []byte("SKU-12345")
	value := []byte(`{
		"specversion": "1.0",
		"id": "01JD3YV7Q8K3M8Z3J3X1X0ABCD",
		"source": "erp/warehouse-feed",
		"type": "inventory.stock.updated",
		"subject": "SKU-12345",
		"time": "2026-11-27T10:00:00.123Z",
		"version": 1732701600123,
		"datacontenttype": "application/json",
		"data": {"sku": "SKU-12345", "source_code": "default", "quantity": 12, "status": 1}
	}`)

	ev, err := topics.Decode(topics.DomainInventory, key, value)
	if err != nil {
		if topics.IsPoison(err) {
			fmt.Println("dead-letter to", topics.DLQTopic(topics.TopicInventory), "class", topics.ErrorClassPoison)
		}
		return
	}
	var su topics.StockUpdated
	if err := ev.DecodeData(&su); err != nil {
		return
	}
	fmt.Println(ev.Type, ev.Subject, ev.Version)
	fmt.Printf("%s at %s: %g (status %d)\n", su.SKU, su.SourceCode, su.Quantity, su.Status)

	// A record whose payload contradicts its subject is poison.
	_, err = topics.Decode(topics.DomainInventory, nil, []byte(`{"specversion":"1.0","id":"2","source":"erp",
		"type":"inventory.stock.updated","subject":"SKU-1","version":2,
		"data":{"sku":"SKU-2","source_code":"default","quantity":1,"status":1}}`))
	fmt.Println(topics.IsPoison(err), err)

	// Output:
	// inventory.stock.updated SKU-12345 1732701600123
	// SKU-12345 at default: 12 (status 1)
	// true poison record: data.sku: "SKU-2" differs from subject "SKU-1"
}
