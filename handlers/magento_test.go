package handlers

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

const testToken = "s3cr3t-t0ken"

// recorded is one request as the fake Magento saw it.
type recorded struct {
	method, path string // path escaped, as sent
	header       http.Header
	body         string
}

// fakeServer records every request and answers with reply.
type fakeServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newFakeServer(t *testing.T, reply http.HandlerFunc) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{r.Method, r.URL.EscapedPath(), r.Header.Clone(), string(body)})
		f.mu.Unlock()
		if reply != nil {
			reply(w, r)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func status(code int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func newTestMagento(t *testing.T, base string, mod ...func(*MagentoConfig)) *Magento {
	t.Helper()
	cfg := MagentoConfig{BaseURL: base, Token: testToken}
	for _, f := range mod {
		f(&cfg)
	}
	m, err := NewMagento(cfg)
	if err != nil {
		t.Fatalf("NewMagento: %v", err)
	}
	return m
}

func event(typ, subject, data string) *topics.Event {
	return &topics.Event{
		SpecVersion: "1.0",
		ID:          "evt-1",
		Type:        typ,
		Subject:     subject,
		Version:     1732701600123,
		Data:        []byte(data),
		Raw:         []byte(`{"id":"evt-1","data":` + data + `}`),
	}
}

func TestMagentoRequests(t *testing.T) {
	tests := []struct {
		name     string
		handler  func(*Magento) processor.Handler
		ev       *topics.Event
		method   string
		path     string
		body     string
		response string
	}{
		{
			name:    "product created with defaults",
			handler: (*Magento).Catalog,
			ev:      event("catalog.product.created", "SKU-1", `{"sku":"SKU-1","name":"Tee","price":19.99,"status":1}`),
			method:  http.MethodPut,
			path:    "/rest/V1/products/SKU-1",
			body:    `{"product":{"sku":"SKU-1","name":"Tee","price":19.99,"status":1,"visibility":4,"type_id":"simple","attribute_set_id":4}}`,
		},
		{
			name:    "product updated with every field, sku escaped",
			handler: (*Magento).Catalog,
			ev: event("catalog.product.updated", "SKU 1/A?",
				`{"sku":"SKU 1/A?","name":"Mug","price":0,"status":2,"visibility":2,"type_id":"virtual","attribute_set_id":9,"weight":0}`),
			method: http.MethodPut,
			path:   "/rest/V1/products/SKU%201%2FA%3F",
			body:   `{"product":{"sku":"SKU 1/A?","name":"Mug","price":0,"status":2,"visibility":2,"type_id":"virtual","attribute_set_id":9,"weight":0}}`,
		},
		{
			name:     "price changed",
			handler:  (*Magento).Catalog,
			ev:       event("catalog.price.changed", "SKU-1", `{"sku":"SKU-1","price":17.5,"store_id":2}`),
			method:   http.MethodPost,
			path:     "/rest/V1/products/base-prices",
			body:     `{"prices":[{"price":17.5,"store_id":2,"sku":"SKU-1"}]}`,
			response: `[]`,
		},
		{
			name:     "price changed, default store",
			handler:  (*Magento).Catalog,
			ev:       event("catalog.price.changed", "SKU-1", `{"sku":"SKU-1","price":17.5}`),
			method:   http.MethodPost,
			path:     "/rest/V1/products/base-prices",
			body:     `{"prices":[{"price":17.5,"store_id":0,"sku":"SKU-1"}]}`,
			response: `[]`,
		},
		{
			name:    "catalog stock adjusted",
			handler: (*Magento).Catalog,
			ev:      event("catalog.stock.adjusted", "SKU-1", `{"sku":"SKU-1","source_code":"default","quantity":12,"status":1}`),
			method:  http.MethodPost,
			path:    "/rest/V1/inventory/source-items",
			body:    `{"sourceItems":[{"sku":"SKU-1","source_code":"default","quantity":12,"status":1}]}`,
		},
		{
			name:    "inventory stock updated",
			handler: (*Magento).Inventory,
			ev:      event("inventory.stock.updated", "SKU-2", `{"sku":"SKU-2","source_code":"eu-1","quantity":0,"status":0}`),
			method:  http.MethodPost,
			path:    "/rest/V1/inventory/source-items",
			body:    `{"sourceItems":[{"sku":"SKU-2","source_code":"eu-1","quantity":0,"status":0}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeServer(t, status(http.StatusOK, tt.response))
			m := newTestMagento(t, srv.URL+"/")
			if err := tt.handler(m).Handle(context.Background(), tt.ev); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != tt.method || r.path != tt.path {
				t.Errorf("request %s %s, want %s %s", r.method, r.path, tt.method, tt.path)
			}
			if r.body != tt.body {
				t.Errorf("body\n got %s\nwant %s", r.body, tt.body)
			}
			for k, want := range map[string]string{
				"Authorization":              "Bearer " + testToken,
				"Content-Type":               "application/json",
				"Accept":                     "application/json",
				"X-Shopstream-Event-Id":      "evt-1",
				"X-Shopstream-Event-Version": "1732701600123",
			} {
				if got := r.header.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestMagentoBasePathKept(t *testing.T) {
	srv := newFakeServer(t, nil)
	m := newTestMagento(t, srv.URL+"/shop")
	ev := event("inventory.stock.updated", "S", `{"sku":"S","source_code":"default","quantity":1,"status":1}`)
	if err := m.Inventory().Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if got := srv.requests()[0].path; got != "/shop/rest/V1/inventory/source-items" {
		t.Errorf("path %s", got)
	}
}

func TestMagentoFiltered(t *testing.T) {
	srv := newFakeServer(t, nil)
	m := newTestMagento(t, srv.URL)
	tests := []struct {
		h   processor.Handler
		typ string
	}{
		{m.Catalog(), "inventory.stock.updated"},
		{m.Catalog(), "order.placed"},
		{m.Inventory(), "inventory.threshold.breached"},
		{m.Inventory(), "inventory.backorder.triggered"},
		{m.Inventory(), "catalog.product.created"},
	}
	for _, tt := range tests {
		err := tt.h.Handle(context.Background(), event(tt.typ, "S", `{"sku":"S"}`))
		if !errors.Is(err, processor.ErrFiltered) {
			t.Errorf("%s: got %v, want ErrFiltered", tt.typ, err)
		}
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("%d requests sent for filtered events", n)
	}
}

func TestMagentoUndecodableData(t *testing.T) {
	srv := newFakeServer(t, nil)
	m := newTestMagento(t, srv.URL)
	tests := []struct{ typ, subject, data string }{
		{"catalog.product.created", "S", `not json`},
		{"catalog.product.created", "S", ``},
		{"catalog.product.created", "S", `{"sku":"S","name":"n","price":"cheap","status":1}`},
		{"catalog.product.created", "S", `{"name":"n","price":1,"status":1}`},
		{"catalog.product.updated", "S", `{"sku":"S","name":"n","status":1}`},
		{"catalog.product.updated", "S", `{"sku":"S","name":"n","price":1,"status":3}`},
		{"catalog.product.updated", "OTHER", `{"sku":"S","name":"n","price":1,"status":1}`},
		{"catalog.price.changed", "S", `{"sku":"S"}`},
		{"catalog.stock.adjusted", "S", `{"sku":"S","quantity":1,"status":1}`},
		{"inventory.stock.updated", "S", `{"sku":"S","source_code":"default","status":1}`},
		{"inventory.stock.updated", "S", `{"sku":"S","source_code":"default","quantity":1,"status":5}`},
	}
	for _, tt := range tests {
		ev := event(tt.typ, tt.subject, tt.data)
		h := m.Catalog()
		if strings.HasPrefix(tt.typ, "inventory.") {
			h = m.Inventory()
		}
		if err := h.Handle(context.Background(), ev); !processor.IsPermanent(err) {
			t.Errorf("%s %s: got %v, want a permanent error", tt.typ, tt.data, err)
		}
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("%d requests sent for undecodable events", n)
	}
}

func TestMagentoBasePricesRejected(t *testing.T) {
	srv := newFakeServer(t, status(http.StatusOK,
		`[{"message":"Invalid attribute %fieldName = %fieldValue.","parameters":["price","-1"],"extension_attributes":{}}]`))
	m := newTestMagento(t, srv.URL)
	err := m.Catalog().Handle(context.Background(), event("catalog.price.changed", "S", `{"sku":"S","price":-1}`))
	if !processor.IsPermanent(err) {
		t.Fatalf("got %v, want a permanent error", err)
	}
	if !strings.Contains(err.Error(), "Invalid attribute %fieldName = %fieldValue. [price, -1]") {
		t.Errorf("error does not carry Magento's message: %v", err)
	}
}

// A 2xx whose body is not Magento's array of rejections (an empty body, a
// stand-in's "OK", {}) is an acceptance: only a listed rejection fails.
func TestMagentoBasePricesOtherAnswersAccept(t *testing.T) {
	for _, body := range []string{"", "[]", "OK", "{}", "true"} {
		srv := newFakeServer(t, status(http.StatusOK, body))
		m := newTestMagento(t, srv.URL)
		if err := m.Catalog().Handle(context.Background(), event("catalog.price.changed", "S", `{"sku":"S","price":1}`)); err != nil {
			t.Errorf("body %q: got %v, want success", body, err)
		}
	}
}

func TestMagentoStatusClassification(t *testing.T) {
	tests := []struct {
		reply      http.HandlerFunc
		permanent  bool
		retryAfter time.Duration
		hasDelay   bool
	}{
		{reply: status(400, `{"message":"bad"}`), permanent: true},
		{reply: status(401, `{"message":"The consumer isn't authorized"}`), permanent: true},
		{reply: status(404, `{"message":"not found"}`), permanent: true},
		{reply: status(422, `{"message":"invalid"}`), permanent: true},
		{reply: status(500, `{"message":"boom"}`)},
		{reply: status(502, `bad gateway`)},
		{reply: status(503, `maintenance`)},
		{reply: status(408, ``)},
		{reply: status(429, ``, "Retry-After", "2"), retryAfter: 2 * time.Second, hasDelay: true},
		{reply: status(429, ``), retryAfter: 0, hasDelay: true},
		{reply: status(503, ``, "Retry-After", "7"), retryAfter: 7 * time.Second, hasDelay: true},
	}
	for _, tt := range tests {
		srv := newFakeServer(t, tt.reply)
		m := newTestMagento(t, srv.URL)
		err := m.Inventory().Handle(context.Background(),
			event("inventory.stock.updated", "S", `{"sku":"S","source_code":"default","quantity":1,"status":1}`))
		if err == nil {
			t.Fatal("got nil error")
		}
		if processor.IsPermanent(err) != tt.permanent {
			t.Errorf("%v: permanent = %v, want %v", err, !tt.permanent, tt.permanent)
		}
		d, ok := processor.RetryAfterOf(err)
		if ok != tt.hasDelay || d != tt.retryAfter {
			t.Errorf("%v: RetryAfterOf = %v, %v; want %v, %v", err, d, ok, tt.retryAfter, tt.hasDelay)
		}
		if !strings.Contains(err.Error(), "POST /rest/V1/inventory/source-items") {
			t.Errorf("error lacks method and path: %v", err)
		}
	}
}

func TestMagentoRetryAfterHTTPDate(t *testing.T) {
	at := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	srv := newFakeServer(t, status(http.StatusTooManyRequests, ``, "Retry-After", at))
	m := newTestMagento(t, srv.URL)
	err := m.Catalog().Handle(context.Background(), event("catalog.price.changed", "S", `{"sku":"S","price":1}`))
	d, ok := processor.RetryAfterOf(err)
	if !ok || d <= 50*time.Minute || d > time.Hour {
		t.Errorf("RetryAfterOf = %v, %v; want about an hour", d, ok)
	}
}

func TestMagentoErrorText(t *testing.T) {
	long := strings.Repeat("x", 2000)
	srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		// A server that echoes the request must not leak the token.
		_, _ = io.WriteString(w, `{"message":"echo `+r.Header.Get("Authorization")+`"}`+long)
	})
	m := newTestMagento(t, srv.URL)
	err := m.Catalog().Handle(context.Background(),
		event("catalog.product.updated", "SKU-9", `{"sku":"SKU-9","name":"n","price":1,"status":1}`))
	msg := err.Error()
	for _, want := range []string{"magento", "PUT /rest/V1/products/SKU-9", "400", `"message":"echo Bearer [redacted]"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, testToken) {
		t.Errorf("error leaks the token: %q", msg)
	}
	if len(msg) > 700 {
		t.Errorf("error is %d bytes; the body should be cut at %d", len(msg), maxErrorBody)
	}
}

func TestMagentoTokenNeverInErrors(t *testing.T) {
	var errs []error
	collect := func(reply http.HandlerFunc, data string) {
		srv := newFakeServer(t, reply)
		m := newTestMagento(t, srv.URL, func(c *MagentoConfig) { c.Timeout = 50 * time.Millisecond })
		errs = append(errs, m.Catalog().Handle(context.Background(), event("catalog.price.changed", "S", data)))
	}
	echo := func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, strings.Repeat("y", maxErrorBody-5)+r.Header.Get("Authorization"))
	}
	collect(echo, `{"sku":"S","price":1}`)
	collect(status(200, `[{"message":"`+testToken+`","parameters":[]}]`), `{"sku":"S","price":1}`)
	collect(nil, `broken`)
	collect(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, `{"sku":"S","price":1}`)
	errs = append(errs, newTestMagento(t, refusedURL(t)).Catalog().Handle(context.Background(),
		event("catalog.price.changed", "S", `{"sku":"S","price":1}`)))
	_, err := NewMagento(MagentoConfig{BaseURL: "ftp://x", Token: testToken + "\n x"})
	errs = append(errs, err)
	for _, err := range errs {
		if err == nil {
			t.Fatal("expected an error")
		}
		if strings.Contains(err.Error(), testToken) {
			t.Errorf("error leaks the token: %q", err)
		}
	}
}

// refusedURL returns the URL of a port nothing listens on.
func refusedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

func TestMagentoTransportErrorsRetryable(t *testing.T) {
	ev := event("inventory.stock.updated", "S", `{"sku":"S","source_code":"default","quantity":1,"status":1}`)

	t.Run("timeout", func(t *testing.T) {
		srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		mg := newTestMagento(t, srv.URL, func(c *MagentoConfig) { c.Timeout = 50 * time.Millisecond })
		err := mg.Inventory().Handle(context.Background(), ev)
		if err == nil || processor.IsPermanent(err) {
			t.Fatalf("got %v, want a retryable error", err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a slow sink must not look like the caller's deadline: %v", err)
		}
		if !strings.Contains(err.Error(), "timed out") {
			t.Errorf("error does not say it timed out: %v", err)
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		err := newTestMagento(t, refusedURL(t)).Inventory().Handle(context.Background(), ev)
		if err == nil || processor.IsPermanent(err) {
			t.Fatalf("got %v, want a retryable error", err)
		}
	})

	t.Run("cancelled before", func(t *testing.T) {
		srv := newFakeServer(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := newTestMagento(t, srv.URL).Inventory().Handle(ctx, ev)
		if !errors.Is(err, context.Canceled) || processor.IsPermanent(err) {
			t.Fatalf("got %v, want wrapped context.Canceled, retryable", err)
		}
		if n := len(srv.requests()); n != 0 {
			t.Errorf("%d requests sent with a cancelled context", n)
		}
	})

	t.Run("cancelled during", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		srv := newFakeServer(t, func(w http.ResponseWriter, r *http.Request) {
			cancel()
			<-r.Context().Done()
		})
		err := newTestMagento(t, srv.URL).Inventory().Handle(ctx, ev)
		if !errors.Is(err, context.Canceled) || processor.IsPermanent(err) {
			t.Fatalf("got %v, want wrapped context.Canceled, retryable", err)
		}
	})
}

func TestMagentoConfig(t *testing.T) {
	tests := []struct {
		cfg  MagentoConfig
		want []string // settings named in the error
	}{
		{MagentoConfig{Token: "t"}, []string{"magento-url"}},
		{MagentoConfig{BaseURL: "shop.example.com", Token: "t"}, []string{"magento-url"}},
		{MagentoConfig{BaseURL: "ftp://shop.example.com", Token: "t"}, []string{"magento-url"}},
		{MagentoConfig{BaseURL: "https://", Token: "t"}, []string{"magento-url"}},
		{MagentoConfig{BaseURL: "https://shop.example.com?x=1", Token: "t"}, []string{"magento-url"}},
		{MagentoConfig{BaseURL: "https://shop.example.com"}, []string{"magento-token"}},
		{MagentoConfig{BaseURL: "https://shop.example.com", Token: "  "}, []string{"magento-token"}},
		{MagentoConfig{BaseURL: "%zz", Token: "a b"}, []string{"magento-url", "magento-token"}},
		{MagentoConfig{BaseURL: "https://shop.example.com", Token: "t", Timeout: -1, RateLimit: -1, Burst: -1},
			[]string{"magento timeout", "magento rate limit", "magento burst"}},
	}
	for _, tt := range tests {
		_, err := NewMagento(tt.cfg)
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
	if _, err := NewMagento(MagentoConfig{BaseURL: "https://shop.example.com/", Token: " t\n"}); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestMagentoRateLimiter(t *testing.T) {
	srv := newFakeServer(t, nil)
	mg := newTestMagento(t, srv.URL, func(c *MagentoConfig) { c.RateLimit = 50; c.Burst = 1 })
	lim := mg.sink.limiter
	if lim.Limit() != 50 || lim.Burst() != 1 {
		t.Fatalf("limiter %v/s burst %d, want 50/s burst 1", lim.Limit(), lim.Burst())
	}

	// The same configuration spreads requests 20ms apart: reservations
	// made at one instant come due at 0, 20ms, 40ms, ...
	spread := newLimiter(50, 1)
	t0 := time.Unix(0, 0)
	for i := range 5 {
		if got, want := spread.ReserveN(t0, 1).DelayFrom(t0), time.Duration(i)*20*time.Millisecond; got != want {
			t.Errorf("request %d due after %v, want %v", i, got, want)
		}
	}

	if newLimiter(0, 0).Limit() != rate.Inf {
		t.Error("RateLimit 0 should be unlimited")
	}
	if newLimiter(5, 0).Burst() != 1 {
		t.Error("Burst 0 with a limit should mean 1")
	}
}

// TestMagentoWaitsOnLimiter shows every request takes a token first: with one
// token per 1000s, the second request cannot fit in a one-minute deadline and
// fails at once, without reaching the server.
func TestMagentoWaitsOnLimiter(t *testing.T) {
	srv := newFakeServer(t, nil)
	mg := newTestMagento(t, srv.URL, func(c *MagentoConfig) { c.RateLimit = 0.001; c.Burst = 1 })
	ev := event("inventory.stock.updated", "S", `{"sku":"S","source_code":"default","quantity":1,"status":1}`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := mg.Inventory().Handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	err := mg.Inventory().Handle(ctx, ev)
	if err == nil || processor.IsPermanent(err) || !strings.Contains(err.Error(), "rate limit") {
		t.Fatalf("got %v, want a retryable rate limit error", err)
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

// TestMagentoReusesConnections checks bodies are drained and closed, error
// answers included, so one keep-alive connection serves every request.
func TestMagentoReusesConnections(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	i := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		i++
		odd := i%2 == 1
		mu.Unlock()
		if odd {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, strings.Repeat("e", 4096))
			return
		}
		_, _ = io.WriteString(w, strings.Repeat("o", 4096))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	mg := newTestMagento(t, srv.URL)
	ev := event("inventory.stock.updated", "S", `{"sku":"S","source_code":"default","quantity":1,"status":1}`)
	for range 10 {
		_ = mg.Inventory().Handle(context.Background(), ev)
	}
	mu.Lock()
	defer mu.Unlock()
	if conns != 1 {
		t.Errorf("opened %d connections for 10 sequential requests, want 1", conns)
	}
}
