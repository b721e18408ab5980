package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sink names: which downstream a Simulator endpoint stands in for.
const (
	SinkProduct     = "magento.product"      // PUT /rest/V1/products/{sku}
	SinkPrice       = "magento.price"        // POST /rest/V1/products/base-prices
	SinkSourceItems = "magento.source-items" // POST /rest/V1/inventory/source-items
	SinkCRM         = "crm"                  // POST /crm
	SinkFraud       = "fraud"                // POST /fraud
	SinkEmail       = "email"                // POST /email
)

// Sinks returns every sink name the Simulator serves.
func Sinks() []string {
	return []string{SinkProduct, SinkPrice, SinkSourceItems, SinkCRM, SinkFraud, SinkEmail}
}

// Request headers the Simulator reads to attribute a call to an event. Webhook
// calls may omit them: the Simulator then reads the CloudEvent body.
const (
	HeaderEventID      = "X-Shopstream-Event-Id"
	HeaderEventVersion = "X-Shopstream-Event-Version"
	HeaderEventType    = "X-Shopstream-Event-Type"
	HeaderIdempotency  = "Idempotency-Key"
)

// DefaultToken is the Magento bearer token a new Simulator accepts.
const DefaultToken = "devstack-magento-token"

// maxBody bounds a request body.
const maxBody = 8 << 20

// Call is one request a sink accepted (applied).
type Call struct {
	// Sink is one of the Sink* names.
	Sink         string
	Method, Path string
	// Subject is the SKU (Magento calls; comma-joined if a batch names
	// several) or the CloudEvent subject (webhooks).
	Subject string
	// EventID is the X-Shopstream-Event-Id header, else Idempotency-Key,
	// else (webhooks) the CloudEvent id.
	EventID string
	// Type is the X-Shopstream-Event-Type header, else (webhooks) the
	// CloudEvent type; may be empty on Magento calls.
	Type string
	// Version is the X-Shopstream-Event-Version header, else (webhooks)
	// the CloudEvent version; 0 if neither.
	Version int64
	Body    []byte
	At      time.Time
}

type injected struct {
	n          int
	status     int
	retryAfter string
}

type failRate struct {
	p      float64
	status int
}

// Simulator is an HTTP server standing in for Magento's REST API and three
// webhook sinks (CRM, fraud scoring, email marketing). It records every
// accepted request as a Call and can inject failures and latency. All
// methods are safe for concurrent use.
//
// Magento endpoints require "Authorization: Bearer <token>" and answer 401
// otherwise. Webhooks require a CloudEvent JSON body, Content-Type
// application/cloudevents+json (or application/json) and an
// Idempotency-Key header equal to the event id. Malformed requests get 400
// and are not recorded.
type Simulator struct {
	mux  *http.ServeMux
	quit chan struct{} // closed by Close: ends injected latency

	mu       sync.Mutex
	token    string
	latency  time.Duration
	calls    []Call
	attempts map[string]int
	failNext map[string]*injected
	failRate map[string]failRate
	rng      *rand.Rand
	srv      *http.Server
	url      string
	served   chan struct{} // closed when Serve returns
	closed   bool
}

// NewSimulator returns a Simulator accepting DefaultToken, with no faults and
// a fail-rate generator seeded with 1. Start it with Start, or mount it as an
// http.Handler.
func NewSimulator() *Simulator {
	s := &Simulator{
		quit:     make(chan struct{}),
		token:    DefaultToken,
		attempts: make(map[string]int),
		failNext: make(map[string]*injected),
		failRate: make(map[string]failRate),
		rng:      rand.New(rand.NewPCG(1, 1)),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /rest/V1/products/{sku}", s.sink(SinkProduct, productCall))
	mux.HandleFunc("POST /rest/V1/products/base-prices", s.sink(SinkPrice, priceCall))
	mux.HandleFunc("POST /rest/V1/inventory/source-items", s.sink(SinkSourceItems, sourceItemsCall))
	mux.HandleFunc("POST /crm", s.sink(SinkCRM, webhookCall))
	mux.HandleFunc("POST /fraud", s.sink(SinkFraud, webhookCall))
	mux.HandleFunc("POST /email", s.sink(SinkEmail, webhookCall))
	s.mux = mux
	return s
}

// ServeHTTP serves the Magento and webhook endpoints.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Start serves on addr ("" means 127.0.0.1:0, a random port) and returns the
// base URL, for example "http://127.0.0.1:41234". Magento's base URL is that
// URL; the webhooks are at WebhookURL. Start may be called once.
func (s *Simulator) Start(addr string) (string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", errors.New("simulator: Start after Close")
	}
	if s.srv != nil {
		return "", fmt.Errorf("simulator: already serving on %s", s.url)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("simulator: listen on %s: %w", addr, err)
	}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.url = "http://" + ln.Addr().String()
	s.served = make(chan struct{})
	go func(srv *http.Server, served chan struct{}) { // owned by s; Close waits for it
		defer close(served)
		_ = srv.Serve(ln) // returns ErrServerClosed after Shutdown/Close
	}(s.srv, s.served)
	return s.url, nil
}

// URL returns the base URL Start returned, or "" before Start.
func (s *Simulator) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// WebhookURL returns the URL of a webhook sink (SinkCRM, SinkFraud or
// SinkEmail), or "" before Start.
func (s *Simulator) WebhookURL(sink string) string {
	u := s.URL()
	if u == "" {
		return ""
	}
	return u + "/" + sink
}

// Close stops serving: requests waiting on injected latency end at once,
// the server shuts down (5 s grace, then connections are closed) and Close
// waits for the serving goroutine. It is safe to call more than once.
func (s *Simulator) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.quit)
	srv, served := s.srv, s.served
	s.mu.Unlock()
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
	}
	<-served
}

// SetToken sets the Magento bearer token the Simulator accepts.
func (s *Simulator) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// Token returns the Magento bearer token the Simulator accepts.
func (s *Simulator) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// SetLatency delays every request by d before it is answered.
func (s *Simulator) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// FailNext makes the next n requests to sink answer status (503 if status is
// 0) with a Retry-After header if retryAfter is not empty. Failed requests
// are counted in Attempts but not recorded as calls. A later FailNext for
// the same sink replaces this one; n <= 0 clears it.
func (s *Simulator) FailNext(sink string, n int, status int, retryAfter string) {
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext[sink] = &injected{n: n, status: status, retryAfter: retryAfter}
}

// SetFailRate makes each request to sink fail with status (503 if 0) with
// probability p, drawn from the Simulator's seeded generator (see SetSeed).
// p <= 0 turns it off. FailNext takes precedence.
func (s *Simulator) SetFailRate(sink string, p float64, status int) {
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p <= 0 {
		delete(s.failRate, sink)
		return
	}
	s.failRate[sink] = failRate{p: p, status: status}
}

// SetSeed reseeds the generator SetFailRate draws from.
func (s *Simulator) SetSeed(seed int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rng = rand.New(rand.NewPCG(uint64(seed), 1))
}

// ClearFaults removes every FailNext and SetFailRate injection and the
// latency.
func (s *Simulator) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.failNext)
	clear(s.failRate)
	s.latency = 0
}

// Calls returns a copy of the accepted calls in the order they were
// accepted.
func (s *Simulator) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Attempts returns, per sink, how many requests reached it: accepted,
// rejected and failed by injection.
func (s *Simulator) Attempts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.attempts))
	for k, v := range s.attempts {
		out[k] = v
	}
	return out
}

// Reset forgets every recorded call and attempt; faults stay.
func (s *Simulator) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
	clear(s.attempts)
}

// extractor validates one sink's request and fills the call's Subject (and
// Type, Version, EventID when the body carries them). It returns the
// response body for success.
type extractor func(r *http.Request, body []byte, c *Call) (resp []byte, err error)

// sink returns the handler of one sink: count the attempt, wait the latency,
// check the token (Magento), apply injected faults, validate, record.
func (s *Simulator) sink(name string, extract extractor) http.HandlerFunc {
	magento := strings.HasPrefix(name, "magento.")
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.attempts[name]++
		latency, token := s.latency, s.token
		s.mu.Unlock()

		if latency > 0 {
			timer := time.NewTimer(latency)
			select {
			case <-timer.C:
			case <-r.Context().Done():
				timer.Stop()
				return
			case <-s.quit:
				timer.Stop()
				writeError(w, http.StatusServiceUnavailable, "simulator is shutting down")
				return
			}
		}

		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeError(w, http.StatusBadRequest, "read body: "+err.Error())
			return
		}
		if magento && r.Header.Get("Authorization") != "Bearer "+token {
			writeError(w, http.StatusUnauthorized, "The consumer isn't authorized to access %resources.")
			return
		}
		if status, retryAfter, fail := s.injectedFault(name); fail {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			writeError(w, status, "simulated failure")
			return
		}

		c := Call{
			Sink:    name,
			Method:  r.Method,
			Path:    r.URL.Path,
			EventID: r.Header.Get(HeaderEventID),
			Type:    r.Header.Get(HeaderEventType),
			Body:    body,
		}
		if c.EventID == "" {
			c.EventID = r.Header.Get(HeaderIdempotency)
		}
		if v := r.Header.Get(HeaderEventVersion); v != "" {
			c.Version, err = strconv.ParseInt(v, 10, 64)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("%s %q is not an integer", HeaderEventVersion, v))
				return
			}
		}
		resp, err := extract(r, body, &c)
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				writeError(w, he.status, he.msg)
			} else {
				writeError(w, http.StatusBadRequest, err.Error())
			}
			return
		}

		s.mu.Lock()
		c.At = time.Now()
		s.calls = append(s.calls, c)
		s.mu.Unlock()

		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(resp)
	}
}

// injectedFault consumes one FailNext injection or draws against the fail
// rate.
func (s *Simulator) injectedFault(sink string) (status int, retryAfter string, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.failNext[sink]; f != nil && f.n > 0 {
		f.n--
		if f.n == 0 {
			delete(s.failNext, sink)
		}
		return f.status, f.retryAfter, true
	}
	if fr, ok := s.failRate[sink]; ok && s.rng.Float64() < fr.p {
		return fr.status, "", true
	}
	return 0, "", false
}

type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// writeError answers like Magento: {"message": "..."}.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func productCall(r *http.Request, body []byte, c *Call) ([]byte, error) {
	sku := r.PathValue("sku")
	var req struct {
		Product map[string]any `json:"product"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("body is not {\"product\":{...}}: %v", err)
	}
	if req.Product == nil {
		return nil, errors.New(`body has no "product" object`)
	}
	if s, ok := req.Product["sku"]; ok && s != sku {
		return nil, fmt.Errorf("product.sku %v does not match the URL's %q", s, sku)
	}
	c.Subject = sku
	req.Product["sku"] = sku
	return json.Marshal(req.Product) // Magento answers with the saved product
}

func priceCall(_ *http.Request, body []byte, c *Call) ([]byte, error) {
	var req struct {
		Prices []struct {
			SKU     string   `json:"sku"`
			Price   *float64 `json:"price"`
			StoreID *int     `json:"store_id"`
		} `json:"prices"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf(`body is not {"prices":[...]}: %v`, err)
	}
	if len(req.Prices) == 0 {
		return nil, errors.New(`"prices" is empty`)
	}
	var skus []string
	for i, p := range req.Prices {
		switch {
		case p.SKU == "":
			return nil, fmt.Errorf("prices[%d].sku is missing", i)
		case p.Price == nil || *p.Price < 0:
			return nil, fmt.Errorf("prices[%d].price is missing or negative", i)
		case p.StoreID == nil:
			return nil, fmt.Errorf("prices[%d].store_id is missing", i)
		}
		skus = appendUnique(skus, p.SKU)
	}
	c.Subject = strings.Join(skus, ",")
	return []byte("[]"), nil
}

func sourceItemsCall(_ *http.Request, body []byte, c *Call) ([]byte, error) {
	var req struct {
		SourceItems []struct {
			SKU        string   `json:"sku"`
			SourceCode string   `json:"source_code"`
			Quantity   *float64 `json:"quantity"`
			Status     *int     `json:"status"`
		} `json:"sourceItems"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf(`body is not {"sourceItems":[...]}: %v`, err)
	}
	if len(req.SourceItems) == 0 {
		return nil, errors.New(`"sourceItems" is empty`)
	}
	var skus []string
	for i, it := range req.SourceItems {
		switch {
		case it.SKU == "":
			return nil, fmt.Errorf("sourceItems[%d].sku is missing", i)
		case it.SourceCode == "":
			return nil, fmt.Errorf("sourceItems[%d].source_code is missing", i)
		case it.Quantity == nil:
			return nil, fmt.Errorf("sourceItems[%d].quantity is missing", i)
		case it.Status == nil || (*it.Status != 0 && *it.Status != 1):
			return nil, fmt.Errorf("sourceItems[%d].status must be 0 or 1", i)
		}
		skus = appendUnique(skus, it.SKU)
	}
	c.Subject = strings.Join(skus, ",")
	return []byte("[]"), nil
}

func webhookCall(r *http.Request, body []byte, c *Call) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/cloudevents+json") && !strings.HasPrefix(ct, "application/json") {
		return nil, &httpError{http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: want application/cloudevents+json", ct)}
	}
	var ev struct {
		SpecVersion string `json:"specversion"`
		ID          string `json:"id"`
		Type        string `json:"type"`
		Subject     string `json:"subject"`
		Version     int64  `json:"version"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("body is not a CloudEvent: %v", err)
	}
	if ev.SpecVersion != "1.0" || ev.ID == "" || ev.Type == "" {
		return nil, errors.New("body is not a CloudEvent 1.0: specversion, id and type are required")
	}
	key := r.Header.Get(HeaderIdempotency)
	if key == "" {
		return nil, errors.New("missing Idempotency-Key header")
	}
	if key != ev.ID {
		return nil, fmt.Errorf("header Idempotency-Key %q does not match the event id %q", key, ev.ID)
	}
	c.Subject = ev.Subject
	if c.EventID == "" {
		c.EventID = ev.ID
	}
	if c.Type == "" {
		c.Type = ev.Type
	}
	if c.Version == 0 {
		c.Version = ev.Version
	}
	return []byte(`{"status":"accepted"}`), nil
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
