package handlers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/shopstream/shopstream/handlers"
	"github.com/shopstream/shopstream/topics"
)

func ExampleMagento_Inventory() {
	// A stand-in for Magento.
	magento := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println(r.Method, r.URL.Path, r.Header.Get("X-Shopstream-Event-Version"))
	}))
	defer magento.Close()

	m, err := handlers.NewMagento(handlers.MagentoConfig{BaseURL: magento.URL, Token: "integration-token", RateLimit: 50})
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := &topics.Event{
		ID:      "01JD3YV7Q8K3M8Z3J3X1X0ABCD",
		Type:    "inventory.stock.updated",
		Subject: "SKU-12345",
		Version: 1732701600123,
		Data:    []byte(`{"sku":"SKU-12345","source_code":"default","quantity":12,"status":1}`),
	}
	fmt.Println(m.Inventory().Handle(context.Background(), ev))
	// Output:
	// POST /rest/V1/inventory/source-items 1732701600123
	// <nil>
}

func ExampleNewWebhook() {
	_, err := handlers.NewWebhook(handlers.WebhookConfig{Name: "crm", Setting: "crm-url", Types: handlers.CRMOrderTypes})
	fmt.Println(err)
	// Output: crm-url: required
}
