package topics_test

import (
	"testing"

	"github.com/shopstream/shopstream/topics"
)

func TestDomains(t *testing.T) {
	tests := []struct {
		d     topics.Domain
		topic string
		types []string
	}{
		{topics.DomainCatalog, "commerce.catalog.v1", []string{"catalog.product.created", "catalog.product.updated", "catalog.price.changed", "catalog.stock.adjusted"}},
		{topics.DomainInventory, "commerce.inventory.v1", []string{"inventory.stock.updated", "inventory.threshold.breached", "inventory.backorder.triggered"}},
		{topics.DomainOrder, "commerce.order.v1", []string{"order.placed", "order.payment.captured", "order.shipment.updated", "order.return.initiated"}},
		{topics.DomainCustomer, "commerce.customer.v1", []string{"customer.created", "customer.loyalty_tier.changed", "customer.segment.updated"}},
	}
	if got := topics.Domains(); len(got) != len(tests) {
		t.Fatalf("Domains() = %v", got)
	}
	for i, tc := range tests {
		if got := topics.Domains()[i]; got != tc.d {
			t.Errorf("Domains()[%d] = %s, want %s", i, got, tc.d)
		}
		if got := topics.DefaultTopic(tc.d); got != tc.topic {
			t.Errorf("DefaultTopic(%s) = %q, want %q", tc.d, got, tc.topic)
		}
		if got := topics.DLQTopic(topics.DefaultTopic(tc.d)); got != tc.topic+".dlq" {
			t.Errorf("DLQTopic = %q", got)
		}
		got := topics.Types(tc.d)
		if len(got) != len(tc.types) {
			t.Fatalf("Types(%s) = %v, want %v", tc.d, got, tc.types)
		}
		for j, typ := range tc.types {
			if got[j] != typ {
				t.Errorf("Types(%s)[%d] = %q, want %q", tc.d, j, got[j], typ)
			}
			if d, ok := topics.DomainOf(typ); !ok || d != tc.d {
				t.Errorf("DomainOf(%q) = %s, %v", typ, d, ok)
			}
			if _, ok := topics.NewPayload(typ); !ok {
				t.Errorf("NewPayload(%q) not ok", typ)
			}
		}
		got[0] = "changed"
		if topics.Types(tc.d)[0] == "changed" {
			t.Error("Types returns shared storage")
		}
		if d, err := topics.ParseDomain(" " + string(tc.d) + " "); err != nil || d != tc.d {
			t.Errorf("ParseDomain(%q) = %s, %v", tc.d, d, err)
		}
	}
	for _, bad := range []string{"", "catalog", "catalog.", "catalog.product", "order.placed.x", "warehouse.stock.updated", ".order.placed"} {
		if d, ok := topics.DomainOf(bad); ok {
			t.Errorf("DomainOf(%q) = %s, true", bad, d)
		}
	}
	if d, err := topics.ParseDomain("ORDER"); err != nil || d != topics.DomainOrder {
		t.Errorf("ParseDomain(ORDER) = %s, %v", d, err)
	}
	for _, bad := range []string{"", "orders", "commerce.order.v1"} {
		if _, err := topics.ParseDomain(bad); err == nil {
			t.Errorf("ParseDomain(%q) succeeded", bad)
		}
	}
	if topics.Types("x") != nil || topics.DefaultTopic("x") != "" {
		t.Error("unknown domain has types or a topic")
	}
}
