package handlers

import (
	"testing"

	"github.com/shopstream/shopstream/topics"
)

func TestCoalesceKey(t *testing.T) {
	ev := func(typ, data string) *topics.Event { return &topics.Event{Type: typ, Data: []byte(data)} }
	cases := []struct {
		a, b *topics.Event
		same bool
	}{
		{ev(topics.TypeStockUpdated, `{"sku":"S","source_code":"default","quantity":1,"status":1}`),
			ev(topics.TypeStockUpdated, `{"sku":"S","source_code":"default","quantity":9,"status":1}`), true},
		{ev(topics.TypeStockUpdated, `{"source_code":"default"}`), ev(topics.TypeStockUpdated, `{"source_code":"eu-west"}`), false},
		{ev(topics.TypeStockAdjusted, `{"source_code":"default"}`), ev(topics.TypeStockUpdated, `{"source_code":"default"}`), true},
		{ev(topics.TypePriceChanged, `{"price":1}`), ev(topics.TypePriceChanged, `{"price":2,"store_id":0}`), true},
		{ev(topics.TypePriceChanged, `{"store_id":1}`), ev(topics.TypePriceChanged, `{"store_id":2}`), false},
		{ev(topics.TypeProductCreated, `{}`), ev(topics.TypeProductUpdated, `{}`), true},
		// An update without the weight leaves Magento's weight as it was:
		// it does not overwrite a created product's weight.
		{ev(topics.TypeProductCreated, `{"sku":"S","name":"n","price":1,"status":1,"weight":2}`),
			ev(topics.TypeProductUpdated, `{"sku":"S","name":"m","price":2,"status":1}`), false},
		{ev(topics.TypeProductCreated, `{"sku":"S","name":"n","price":1,"status":1,"weight":2,"visibility":4}`),
			ev(topics.TypeProductUpdated, `{"sku":"S","name":"m","price":2,"status":1,"weight":3,"visibility":2}`), true},
		{ev(topics.TypeProductUpdated, `{"weight":null}`), ev(topics.TypeProductUpdated, `{}`), true},
		{ev(topics.TypeProductUpdated, `{"type_id":"simple"}`), ev(topics.TypeProductUpdated, `{"attribute_set_id":4}`), false},
		{ev(topics.TypeProductUpdated, `{}`), ev(topics.TypePriceChanged, `{}`), false},
	}
	for i, c := range cases {
		ka, oka := CoalesceKey(c.a)
		kb, okb := CoalesceKey(c.b)
		if !oka || !okb {
			t.Fatalf("case %d: not coalescable", i)
		}
		if (ka == kb) != c.same {
			t.Errorf("case %d: keys %q and %q, same=%v wanted", i, ka, kb, c.same)
		}
	}
	for _, typ := range []string{topics.TypeThresholdBreached, topics.TypeOrderPlaced, topics.TypeCustomerCreated} {
		if _, ok := CoalesceKey(ev(typ, `{}`)); ok {
			t.Errorf("%s must not be coalesced", typ)
		}
	}
	if _, ok := CoalesceKey(ev(topics.TypeStockUpdated, `not json`)); ok {
		t.Error("undecodable data must not be coalesced")
	}
}
