package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

func newTestWebhook(t *testing.T, cfg WebhookConfig) *Webhook {
	t.Helper()
	w, err := NewWebhook(cfg)
	if err != nil {
		t.Fatalf("NewWebhook: %v", err)
	}
	return w
}

func TestWebhookPostsRawEvent(t *testing.T) {
	srv := newFakeServer(t, status(http.StatusAccepted, ""))
	w := newTestWebhook(t, WebhookConfig{Name: "crm", URL: srv.URL + "/hooks/orders?key=abc", Types: CRMOrderTypes})
	// Odd spacing and key order: the sink must not re-encode.
	raw := `{ "type":"order.placed",  "specversion":"1.0", "id":"ord-evt-7", "data":{"order_id":"100000042","grand_total":99.90} }`
	ev := &topics.Event{ID: "ord-evt-7", Type: "order.placed", Subject: "100000042", Raw: []byte(raw)}
	if err := w.Handle(context.Background(), ev); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/hooks/orders" {
		t.Errorf("request %s %s", r.method, r.path)
	}
	if r.body != raw {
		t.Errorf("body changed:\n got %s\nwant %s", r.body, raw)
	}
	for k, want := range map[string]string{
		"Content-Type":               "application/cloudevents+json",
		"Idempotency-Key":            "ord-evt-7",
		"X-Shopstream-Event-Id":      "ord-evt-7",
		"X-Shopstream-Event-Version": "", // the event has no version
		"Authorization":              "",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

func TestWebhookTypeFilter(t *testing.T) {
	srv := newFakeServer(t, nil)
	tests := []struct {
		types   []string
		typ     string
		applied bool
	}{
		{CRMOrderTypes, "order.placed", true},
		{CRMOrderTypes, "order.shipment.updated", false},
		{FraudOrderTypes, "order.return.initiated", false},
		{EmailOrderTypes, "order.shipment.updated", true},
		{EmailOrderTypes, "order.payment.captured", false},
		{nil, "customer.segment.updated", true},
	}
	for _, tt := range tests {
		before := len(srv.requests())
		w := newTestWebhook(t, WebhookConfig{URL: srv.URL, Types: tt.types})
		err := w.Handle(context.Background(), &topics.Event{ID: "e", Type: tt.typ, Raw: []byte(`{}`)})
		sent := len(srv.requests()) - before
		if tt.applied && (err != nil || sent != 1) {
			t.Errorf("%v %s: err %v, %d requests; want applied", tt.types, tt.typ, err, sent)
		}
		if !tt.applied && (!errors.Is(err, processor.ErrFiltered) || sent != 0) {
			t.Errorf("%v %s: err %v, %d requests; want ErrFiltered, none sent", tt.types, tt.typ, err, sent)
		}
	}
}

func TestWebhookTypesCopied(t *testing.T) {
	srv := newFakeServer(t, nil)
	types := []string{"order.placed"}
	w := newTestWebhook(t, WebhookConfig{URL: srv.URL, Types: types})
	types[0] = "order.shipment.updated"
	if err := w.Handle(context.Background(), &topics.Event{ID: "e", Type: "order.placed", Raw: []byte(`{}`)}); err != nil {
		t.Errorf("changing the caller's slice changed the filter: %v", err)
	}
}

func TestWebhookNoRawIsPermanent(t *testing.T) {
	srv := newFakeServer(t, nil)
	w := newTestWebhook(t, WebhookConfig{URL: srv.URL})
	if err := w.Handle(context.Background(), &topics.Event{ID: "e", Type: "order.placed"}); !processor.IsPermanent(err) {
		t.Errorf("got %v, want a permanent error", err)
	}
}

func TestWebhookErrors(t *testing.T) {
	ev := &topics.Event{ID: "e", Type: "order.placed", Version: 3, Raw: []byte(`{}`)}
	tests := []struct {
		reply     http.HandlerFunc
		permanent bool
		delay     time.Duration
		hasDelay  bool
	}{
		{reply: status(http.StatusUnprocessableEntity, `{"error":"unknown order"}`), permanent: true},
		{reply: status(http.StatusGone, ``), permanent: true},
		{reply: status(http.StatusBadGateway, ``)},
		{reply: status(http.StatusTooManyRequests, ``, "Retry-After", "2"), delay: 2 * time.Second, hasDelay: true},
	}
	for _, tt := range tests {
		srv := newFakeServer(t, tt.reply)
		w := newTestWebhook(t, WebhookConfig{Name: "fraud", URL: srv.URL + "/score?api_key=TOPSECRET"})
		err := w.Handle(context.Background(), ev)
		if err == nil {
			t.Fatal("got nil error")
		}
		if processor.IsPermanent(err) != tt.permanent {
			t.Errorf("%v: permanent = %v, want %v", err, !tt.permanent, tt.permanent)
		}
		if d, ok := processor.RetryAfterOf(err); d != tt.delay || ok != tt.hasDelay {
			t.Errorf("%v: RetryAfterOf = %v, %v", err, d, ok)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "fraud: POST /score: ") || strings.Contains(msg, "TOPSECRET") {
			t.Errorf("error %q: want sink name, method and path, no query", msg)
		}
		if got := srv.requests()[0].header.Get("X-Shopstream-Event-Version"); got != "3" {
			t.Errorf("version header %q", got)
		}
	}

	w := newTestWebhook(t, WebhookConfig{Name: "fraud", URL: refusedURL(t) + "/score?api_key=TOPSECRET"})
	err := w.Handle(context.Background(), ev)
	if err == nil || processor.IsPermanent(err) || strings.Contains(err.Error(), "TOPSECRET") {
		t.Errorf("connection refused: got %v, want retryable without the query", err)
	}
}

func TestWebhookConfig(t *testing.T) {
	tests := []struct {
		cfg  WebhookConfig
		want []string
	}{
		{WebhookConfig{Name: "crm", Setting: "crm-url"}, []string{"crm-url"}},
		{WebhookConfig{Name: "email", Setting: "email-url", URL: "mailto:x@example.com"}, []string{"email-url"}},
		{WebhookConfig{Name: "fraud", Setting: "fraud-url", URL: "/relative"}, []string{"fraud-url"}},
		{WebhookConfig{Name: "fraud", URL: "http://"}, []string{"fraud-url"}},
		{WebhookConfig{URL: ":bad"}, []string{"webhook-url"}},
		{WebhookConfig{Name: "crm", Setting: "crm-url", URL: "https://crm.example.com", Timeout: -time.Second, Burst: -2},
			[]string{"crm timeout", "crm burst"}},
	}
	for _, tt := range tests {
		_, err := NewWebhook(tt.cfg)
		if err == nil {
			t.Errorf("%+v: no error", tt.cfg)
			continue
		}
		for _, s := range tt.want {
			if !strings.Contains(err.Error(), s+":") {
				t.Errorf("%+v: error %q does not name %s", tt.cfg, err, s)
			}
		}
	}
	w, err := NewWebhook(WebhookConfig{Name: "crm", URL: "https://crm.example.com/in?token=x", RateLimit: 20, Burst: 5})
	if err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if w.sink.timeout != 10*time.Second || w.sink.limiter.Limit() != 20 || w.sink.limiter.Burst() != 5 {
		t.Errorf("defaults: timeout %v, limit %v, burst %d", w.sink.timeout, w.sink.limiter.Limit(), w.sink.limiter.Burst())
	}
}
