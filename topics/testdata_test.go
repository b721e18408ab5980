package topics_test

import (
	"encoding/json"
	"testing"

	"github.com/shopstream/shopstream/topics"
)

// example is a valid payload of one event type.
type example struct {
	eventType string
	domain    topics.Domain
	subject   string
	data      string
}

// examples holds one valid payload for each of the 14 event types.
var examples = []example{
	{topics.TypeProductCreated, topics.DomainCatalog, "SKU-1",
		`{"sku":"SKU-1","name":"Tee","price":19.99,"status":1,"visibility":4,"type_id":"simple","attribute_set_id":4,"weight":0.5}`},
	{topics.TypeProductUpdated, topics.DomainCatalog, "SKU-1",
		`{"sku":"SKU-1","name":"Tee (blue)","price":0,"status":2}`},
	{topics.TypePriceChanged, topics.DomainCatalog, "SKU-2",
		`{"sku":"SKU-2","price":9.5,"store_id":0}`},
	{topics.TypeStockAdjusted, topics.DomainCatalog, "SKU-3",
		`{"sku":"SKU-3","source_code":"default","quantity":-2,"status":0}`},
	{topics.TypeStockUpdated, topics.DomainInventory, "SKU-12345",
		`{"sku":"SKU-12345","source_code":"default","quantity":12,"status":1}`},
	{topics.TypeThresholdBreached, topics.DomainInventory, "SKU-4",
		`{"sku":"SKU-4","source_code":"eu-west","quantity":2,"threshold":5}`},
	{topics.TypeBackorderTriggered, topics.DomainInventory, "SKU-5",
		`{"sku":"SKU-5","order_id":"100000042","quantity":1.5,"source_code":"default"}`},
	{topics.TypeOrderPlaced, topics.DomainOrder, "100000042",
		`{"order_id":"100000042","customer_id":"C-7","email":"ann@example.com","grand_total":59.97,"currency":"EUR","items":[{"sku":"SKU-1","qty":3,"price":19.99}]}`},
	{topics.TypePaymentCaptured, topics.DomainOrder, "100000042",
		`{"order_id":"100000042","amount":59.97,"currency":"EUR","method":"card","transaction_id":"tx-1"}`},
	{topics.TypeShipmentUpdated, topics.DomainOrder, "100000042",
		`{"order_id":"100000042","shipment_id":"S-1","status":"in_transit","carrier":"dhl","tracking_number":"JJD000"}`},
	{topics.TypeReturnInitiated, topics.DomainOrder, "100000042",
		`{"order_id":"100000042","return_id":"R-1","reason":"too small","items":[{"sku":"SKU-1","qty":1}]}`},
	{topics.TypeCustomerCreated, topics.DomainCustomer, "C-7",
		`{"customer_id":"C-7","email":"ann@example.com","first_name":"Ann","last_name":"Lee"}`},
	{topics.TypeLoyaltyTierChanged, topics.DomainCustomer, "C-7",
		`{"customer_id":"C-7","from_tier":"silver","to_tier":"gold"}`},
	{topics.TypeSegmentUpdated, topics.DomainCustomer, "C-7",
		`{"customer_id":"C-7","segments":["vip","newsletter"]}`},
}

// envelope returns a valid envelope for ex as a generic map, so that tests
// can change, add or delete attributes before marshalling.
func envelope(ex example) map[string]any {
	return map[string]any{
		"specversion":     "1.0",
		"id":              "01JD3YV7Q8K3M8Z3J3X1X0ABCD",
		"source":          "erp/warehouse-feed",
		"type":            ex.eventType,
		"subject":         ex.subject,
		"time":            "2026-11-27T10:00:00.123Z",
		"version":         1732701600123,
		"datacontenttype": "application/json",
		"data":            json.RawMessage(ex.data),
	}
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exampleOf returns the example of eventType.
func exampleOf(t testing.TB, eventType string) example {
	t.Helper()
	for _, ex := range examples {
		if ex.eventType == eventType {
			return ex
		}
	}
	t.Fatalf("no example for %s", eventType)
	return example{}
}
