package devstack_test

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/devstack"
)

// startSimulator starts a Simulator and an HTTP client for it, both closed at
// the end of the test.
func startSimulator(t *testing.T) (*devstack.Simulator, string, *http.Client) {
	t.Helper()
	sim := devstack.NewSimulator()
	url, err := sim.Start("")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	tr := &http.Transport{}
	t.Cleanup(func() {
		sim.Close()
		tr.CloseIdleConnections()
	})
	return sim, url, &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

type req struct {
	method, path, body string
	headers            map[string]string
}

func do(t *testing.T, hc *http.Client, base string, r req) (int, http.Header, string) {
	t.Helper()
	hr, err := http.NewRequest(r.method, base+r.path, bytes.NewBufferString(r.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	resp, err := hc.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func magento(token, id, version string) map[string]string {
	return map[string]string{
		"Authorization":             "Bearer " + token,
		"Content-Type":              "application/json",
		devstack.HeaderEventID:      id,
		devstack.HeaderEventVersion: version,
	}
}

func webhook(id string) map[string]string {
	return map[string]string{"Content-Type": "application/cloudevents+json", "Idempotency-Key": id}
}

const orderEvent = `{"specversion":"1.0","id":"e-9","source":"magento/sales","type":"order.placed","subject":"ORD-1","time":"2026-01-01T00:00:00Z","version":3,"data":{"order_id":"ORD-1"}}`

func TestSimulatorRecordsCalls(t *testing.T) {
	t.Parallel()
	sim, base, hc := startSimulator(t)
	tok := sim.Token()
	for _, tc := range []struct {
		r        req
		wantBody string
	}{
		{req{"PUT", "/rest/V1/products/SKU-1", `{"product":{"sku":"SKU-1","name":"Mug","price":9.5}}`, magento(tok, "e-1", "4")}, ""},
		{req{"POST", "/rest/V1/products/base-prices", `{"prices":[{"sku":"SKU-1","price":8.5,"store_id":0}]}`, magento(tok, "e-2", "5")}, "[]"},
		{req{"POST", "/rest/V1/inventory/source-items", `{"sourceItems":[{"sku":"SKU-2","source_code":"default","quantity":3,"status":1}]}`, magento(tok, "e-3", "7")}, "[]"},
		{req{"POST", "/crm", orderEvent, webhook("e-9")}, ""},
		{req{"POST", "/fraud", orderEvent, webhook("e-9")}, ""},
		{req{"POST", "/email", orderEvent, webhook("e-9")}, ""},
	} {
		status, _, body := do(t, hc, base, tc.r)
		if status != http.StatusOK {
			t.Fatalf("%s %s = %d %s, want 200", tc.r.method, tc.r.path, status, body)
		}
		if tc.wantBody != "" && body != tc.wantBody {
			t.Errorf("%s %s answered %q, want %q", tc.r.method, tc.r.path, body, tc.wantBody)
		}
	}

	calls := sim.Calls()
	want := []devstack.Call{
		{Sink: devstack.SinkProduct, Method: "PUT", Path: "/rest/V1/products/SKU-1", Subject: "SKU-1", EventID: "e-1", Version: 4},
		{Sink: devstack.SinkPrice, Method: "POST", Path: "/rest/V1/products/base-prices", Subject: "SKU-1", EventID: "e-2", Version: 5},
		{Sink: devstack.SinkSourceItems, Method: "POST", Path: "/rest/V1/inventory/source-items", Subject: "SKU-2", EventID: "e-3", Version: 7},
		{Sink: devstack.SinkCRM, Method: "POST", Path: "/crm", Subject: "ORD-1", EventID: "e-9", Type: "order.placed", Version: 3},
		{Sink: devstack.SinkFraud, Method: "POST", Path: "/fraud", Subject: "ORD-1", EventID: "e-9", Type: "order.placed", Version: 3},
		{Sink: devstack.SinkEmail, Method: "POST", Path: "/email", Subject: "ORD-1", EventID: "e-9", Type: "order.placed", Version: 3},
	}
	if len(calls) != len(want) {
		t.Fatalf("recorded %d calls, want %d: %+v", len(calls), len(want), calls)
	}
	for i, c := range calls {
		w := want[i]
		if c.Sink != w.Sink || c.Method != w.Method || c.Path != w.Path || c.Subject != w.Subject ||
			c.EventID != w.EventID || c.Type != w.Type || c.Version != w.Version {
			t.Errorf("call %d = %+v, want %+v", i, c, w)
		}
		if len(c.Body) == 0 || c.At.IsZero() {
			t.Errorf("call %d has no body or time", i)
		}
	}
	calls[0].Sink = "changed"
	if sim.Calls()[0].Sink != devstack.SinkProduct {
		t.Fatal("Calls() does not return a copy")
	}
	sim.Reset()
	if n := len(sim.Calls()); n != 0 {
		t.Fatalf("%d calls after Reset", n)
	}
}

func TestSimulatorEnforcesToken(t *testing.T) {
	t.Parallel()
	sim, base, hc := startSimulator(t)
	sim.SetToken("s3cret")
	body := `{"sourceItems":[{"sku":"SKU-1","source_code":"default","quantity":1,"status":1}]}`
	for _, auth := range []string{"", "Bearer wrong", "s3cret", "Basic s3cret"} {
		h := map[string]string{"Content-Type": "application/json"}
		if auth != "" {
			h["Authorization"] = auth
		}
		if status, _, _ := do(t, hc, base, req{"POST", "/rest/V1/inventory/source-items", body, h}); status != http.StatusUnauthorized {
			t.Errorf("Authorization %q: status %d, want 401", auth, status)
		}
	}
	if status, _, b := do(t, hc, base, req{"POST", "/rest/V1/inventory/source-items", body, magento("s3cret", "e-1", "1")}); status != http.StatusOK {
		t.Fatalf("right token: status %d %s, want 200", status, b)
	}
	if n := len(sim.Calls()); n != 1 {
		t.Fatalf("recorded %d calls, want only the authorised one", n)
	}
	if n := sim.Attempts()[devstack.SinkSourceItems]; n != 5 {
		t.Fatalf("attempts = %d, want 5", n)
	}
}

func TestSimulatorRejectsMalformedRequests(t *testing.T) {
	t.Parallel()
	sim, base, hc := startSimulator(t)
	tok := sim.Token()
	for _, tc := range []struct {
		name string
		r    req
		want int
	}{
		{"product without product", req{"PUT", "/rest/V1/products/SKU-1", `{"sku":"SKU-1"}`, magento(tok, "e", "1")}, 400},
		{"product sku mismatch", req{"PUT", "/rest/V1/products/SKU-1", `{"product":{"sku":"SKU-2"}}`, magento(tok, "e", "1")}, 400},
		{"negative price", req{"POST", "/rest/V1/products/base-prices", `{"prices":[{"sku":"SKU-1","price":-1,"store_id":0}]}`, magento(tok, "e", "1")}, 400},
		{"source item without status", req{"POST", "/rest/V1/inventory/source-items", `{"sourceItems":[{"sku":"S","source_code":"default","quantity":1}]}`, magento(tok, "e", "1")}, 400},
		{"bad version header", req{"POST", "/rest/V1/inventory/source-items", `{"sourceItems":[{"sku":"S","source_code":"default","quantity":1,"status":1}]}`, magento(tok, "e", "v1")}, 400},
		{"webhook without idempotency key", req{"POST", "/crm", orderEvent, map[string]string{"Content-Type": "application/cloudevents+json"}}, 400},
		{"webhook key mismatch", req{"POST", "/crm", orderEvent, webhook("other")}, 400},
		{"webhook wrong content type", req{"POST", "/crm", orderEvent, map[string]string{"Content-Type": "text/plain", "Idempotency-Key": "e-9"}}, 415},
		{"webhook not a CloudEvent", req{"POST", "/fraud", `{"hello":"world"}`, webhook("e-9")}, 400},
		{"unknown path", req{"POST", "/nowhere", `{}`, nil}, 404},
		{"wrong method", req{"GET", "/crm", ``, nil}, 405},
	} {
		if status, _, body := do(t, hc, base, tc.r); status != tc.want {
			t.Errorf("%s: status %d %s, want %d", tc.name, status, body, tc.want)
		}
	}
	if calls := sim.Calls(); len(calls) != 0 {
		t.Fatalf("malformed requests were recorded: %+v", calls)
	}
}

func TestSimulatorFailNext(t *testing.T) {
	t.Parallel()
	sim, base, hc := startSimulator(t)
	sim.FailNext(devstack.SinkCRM, 2, http.StatusTooManyRequests, "3")
	r := req{"POST", "/crm", orderEvent, webhook("e-9")}
	for i := range 2 {
		status, h, _ := do(t, hc, base, r)
		if status != http.StatusTooManyRequests || h.Get("Retry-After") != "3" {
			t.Fatalf("attempt %d: status %d Retry-After %q, want 429 and 3", i, status, h.Get("Retry-After"))
		}
	}
	// Other sinks are unaffected.
	if status, _, _ := do(t, hc, base, req{"POST", "/email", orderEvent, webhook("e-9")}); status != http.StatusOK {
		t.Fatalf("email during crm faults: %d", status)
	}
	if status, _, _ := do(t, hc, base, r); status != http.StatusOK {
		t.Fatalf("third crm attempt: %d, want 200", status)
	}
	if got := sim.Attempts(); got[devstack.SinkCRM] != 3 || got[devstack.SinkEmail] != 1 {
		t.Fatalf("attempts = %v, want crm 3, email 1", got)
	}
	calls := sim.Calls()
	if len(calls) != 2 || calls[0].Sink != devstack.SinkEmail || calls[1].Sink != devstack.SinkCRM {
		t.Fatalf("calls = %+v, want email then crm", calls)
	}

	sim.FailNext(devstack.SinkFraud, 1, 0, "")
	if status, h, _ := do(t, hc, base, req{"POST", "/fraud", orderEvent, webhook("e-9")}); status != http.StatusServiceUnavailable || h.Get("Retry-After") != "" {
		t.Fatalf("default injected status = %d (Retry-After %q), want 503 without Retry-After", status, h.Get("Retry-After"))
	}
}

func TestSimulatorFailRateIsSeeded(t *testing.T) {
	t.Parallel()
	run := func() []int {
		sim, base, hc := startSimulator(t)
		sim.SetSeed(42)
		sim.SetFailRate(devstack.SinkEmail, 0.5, http.StatusBadGateway)
		var statuses []int
		for range 40 {
			status, _, _ := do(t, hc, base, req{"POST", "/email", orderEvent, webhook("e-9")})
			statuses = append(statuses, status)
		}
		sim.ClearFaults()
		if status, _, _ := do(t, hc, base, req{"POST", "/email", orderEvent, webhook("e-9")}); status != http.StatusOK {
			t.Fatalf("after ClearFaults: %d", status)
		}
		return statuses
	}
	a, b := run(), run()
	failed := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different outcomes at %d: %v vs %v", i, a, b)
		}
		if a[i] == http.StatusBadGateway {
			failed++
		}
	}
	if failed == 0 || failed == len(a) {
		t.Fatalf("%d of %d failed with p=0.5", failed, len(a))
	}
}

func TestSimulatorLatencyAndClose(t *testing.T) {
	t.Parallel()
	sim, base, hc := startSimulator(t)
	sim.SetLatency(time.Hour)

	// A request stuck in injected latency ends when the simulator closes.
	var wg sync.WaitGroup
	wg.Add(1)
	errc := make(chan error, 1)
	go func() {
		defer wg.Done()
		resp, err := hc.Post(base+"/crm", "application/cloudevents+json", bytes.NewBufferString(orderEvent))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	// Wait until the request has reached the sink.
	deadline := time.Now().Add(10 * time.Second)
	for sim.Attempts()[devstack.SinkCRM] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("request never reached the simulator")
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { sim.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked on a request in injected latency")
	}
	wg.Wait()
	<-errc // either 503 or a closed connection: both fine
	if n := len(sim.Calls()); n != 0 {
		t.Fatalf("a request cut short by Close was recorded")
	}
	sim.Close() // idempotent
	if _, err := sim.Start(""); err == nil {
		t.Fatal("Start after Close succeeded")
	}

	// Latency delays but does not fail.
	sim2, base2, hc2 := startSimulator(t)
	sim2.SetLatency(20 * time.Millisecond)
	start := time.Now()
	if status, _, _ := do(t, hc2, base2, req{"POST", "/crm", orderEvent, webhook("e-9")}); status != http.StatusOK {
		t.Fatalf("status %d with latency", status)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("answered after %v, before the 20ms latency", d)
	}
}
