package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"", 0, false},
		{"2", 2 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{"-5", 0, false},
		{"soon", 0, false},
		{"Fri, 27 Nov 2026 10:00:30 GMT", 30 * time.Second, true},
		{"Friday, 27-Nov-26 10:01:00 GMT", time.Minute, true}, // RFC 850
		{"Fri Nov 27 10:00:05 2026", 5 * time.Second, true},   // asctime
		{"Fri, 27 Nov 2026 09:00:00 GMT", 0, true},            // past
		{"99999999999999999999", 0, false},                    // overflows int64
		{"9999999999999", maxDuration, true},                  // overflows Duration
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.value != "" {
			h.Set("Retry-After", tt.value)
		}
		got, ok := retryAfter(h, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Retry-After %q: got %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.ok)
		}
	}
}

func TestClassify(t *testing.T) {
	s := &sink{name: "test", timeout: time.Second, secret: "tok"}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	resp := func(code int, retryAfter string) *http.Response {
		r := &http.Response{StatusCode: code, Header: http.Header{}}
		if retryAfter != "" {
			r.Header.Set("Retry-After", retryAfter)
		}
		return r
	}
	type class int
	const (
		ok class = iota
		retryable
		permanent
		delayed
	)
	tests := []struct {
		resp  *http.Response
		err   error
		class class
		delay time.Duration
	}{
		{resp: resp(200, ""), class: ok},
		{resp: resp(201, ""), class: ok},
		{resp: resp(204, ""), class: ok},
		{resp: resp(304, ""), class: permanent},
		{resp: resp(400, ""), class: permanent},
		{resp: resp(401, ""), class: permanent},
		{resp: resp(404, ""), class: permanent},
		{resp: resp(409, ""), class: permanent},
		{resp: resp(422, ""), class: permanent},
		{resp: resp(408, ""), class: retryable},
		{resp: resp(500, ""), class: retryable},
		{resp: resp(502, ""), class: retryable},
		{resp: resp(504, ""), class: retryable},
		{resp: resp(503, ""), class: retryable},
		{resp: resp(503, "Fri, 27 Nov 2026 10:00:09 GMT"), class: delayed, delay: 9 * time.Second},
		{resp: resp(429, ""), class: delayed, delay: 0},
		{resp: resp(429, "2"), class: delayed, delay: 2 * time.Second},
		{err: errors.New("connection reset by peer"), class: retryable},
		{err: context.DeadlineExceeded, class: retryable},
	}
	for _, tt := range tests {
		err := s.classify(context.Background(), "PUT /p", tt.resp, nil, tt.err, now)
		d, hasDelay := processor.RetryAfterOf(err)
		var got class
		switch {
		case err == nil:
			got = ok
		case processor.IsPermanent(err):
			got = permanent
		case hasDelay:
			got = delayed
		default:
			got = retryable
		}
		if got != tt.class || d != tt.delay {
			t.Errorf("%v: got class %d delay %v, want class %d delay %v", err, got, d, tt.class, tt.delay)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.classify(ctx, "PUT /p", nil, nil, errors.New("request canceled"), now)
	if !errors.Is(err, context.Canceled) || processor.IsPermanent(err) {
		t.Errorf("cancelled caller: got %v, want wrapped context.Canceled", err)
	}
}

// redirecting answers every write under /old/ with code and a Location under
// /new/, and everything under /new/ with 200, as a REST API answers a GET.
func redirecting(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/old/"); ok {
			w.Header().Set("Location", "/new/"+rest)
			w.WriteHeader(code)
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

// A redirect that net/http would follow as a GET without the body (301,
// 302, 303 after a PUT or POST) is a permanent error naming the status,
// never a success: the GET's 200 would count a write that never happened.
// Magento (a PUT and a POST) and a webhook (a POST) alike.
func TestRedirectThatDropsTheWriteIsPermanent(t *testing.T) {
	calls := []struct {
		name string
		call func(t *testing.T, base string) error
	}{
		{"magento product PUT", func(t *testing.T, base string) error {
			return newTestMagento(t, base+"/old").Catalog().Handle(context.Background(),
				event("catalog.product.updated", "S", `{"sku":"S","name":"n","price":1,"status":1}`))
		}},
		{"magento source-items POST", func(t *testing.T, base string) error {
			return newTestMagento(t, base+"/old").Inventory().Handle(context.Background(),
				event("inventory.stock.updated", "S", `{"sku":"S","source_code":"default","quantity":1,"status":1}`))
		}},
		{"webhook POST", func(t *testing.T, base string) error {
			w := newTestWebhook(t, WebhookConfig{Name: "crm", URL: base + "/old/hooks", Types: CRMOrderTypes})
			return w.Handle(context.Background(), &topics.Event{ID: "e", Type: "order.placed", Subject: "1", Raw: []byte(`{}`)})
		}},
	}
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther} {
		for _, c := range calls {
			t.Run(fmt.Sprintf("%d %s", code, c.name), func(t *testing.T) {
				srv := newFakeServer(t, redirecting(code))
				err := c.call(t, srv.URL)
				if err == nil || !processor.IsPermanent(err) || !strings.Contains(err.Error(), strconv.Itoa(code)) {
					t.Errorf("err = %v, want a permanent error naming %d", err, code)
				}
				for _, r := range srv.requests() {
					if strings.HasPrefix(r.path, "/new/") {
						t.Errorf("the redirect was followed: %s %s", r.method, r.path)
					}
				}
			})
		}
	}
}

// 307 and 308 keep the method and the body: they are followed, and the
// write arrives at the new place whole.
func TestRedirectThatKeepsTheWriteIsFollowed(t *testing.T) {
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			srv := newFakeServer(t, redirecting(code))
			raw := `{"type":"order.placed","id":"e"}`
			w := newTestWebhook(t, WebhookConfig{Name: "crm", URL: srv.URL + "/old/hooks", Types: CRMOrderTypes})
			if err := w.Handle(context.Background(), &topics.Event{ID: "e", Type: "order.placed", Subject: "1", Raw: []byte(raw)}); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			reqs := srv.requests()
			if len(reqs) != 2 || reqs[1].method != http.MethodPost || reqs[1].path != "/new/hooks" || reqs[1].body != raw {
				t.Errorf("requests %+v, want the POST repeated at /new/hooks with its body", reqs)
			}
		})
	}
}

// A client given in the config keeps its own redirect policy for the
// redirects that keep the method.
func TestRedirectPolicyOfAGivenClient(t *testing.T) {
	srv := newFakeServer(t, redirecting(http.StatusTemporaryRedirect))
	refused := errors.New("no redirects here")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return refused }}
	w := newTestWebhook(t, WebhookConfig{Name: "crm", URL: srv.URL + "/old/hooks", Types: CRMOrderTypes, Client: client})
	err := w.Handle(context.Background(), &topics.Event{ID: "e", Type: "order.placed", Subject: "1", Raw: []byte(`{}`)})
	if !errors.Is(err, refused) {
		t.Errorf("err = %v, want the given client's policy to refuse", err)
	}
	if client.CheckRedirect == nil || len(srv.requests()) != 1 {
		t.Errorf("the given client was changed, or the redirect followed (%d requests)", len(srv.requests()))
	}
}
