package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/bridge"
	"github.com/shopstream/shopstream/topics"
)

var (
	secretOld = []byte("old-secret-0123456789abcdef")
	secretNew = []byte("new-secret-0123456789abcdef")
	now       = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
)

// fakeProducer records what it is given, or fails.
type fakeProducer struct {
	mu   sync.Mutex
	recs []*kgo.Record
	err  error
}

func (f *fakeProducer) ProduceAll(ctx context.Context, rs []*kgo.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.recs = append(f.recs, rs...)
	}
	return f.err
}

func stock(sku string, version int64) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":"evt-%s-%d","source":"magento","type":"inventory.stock.updated","subject":%q,"time":"2026-11-27T10:00:00.000Z","version":%d,"datacontenttype":"application/json","data":{"sku":%q,"source_code":"default","quantity":5,"status":1}}`,
		sku, version, sku, version, sku)
}

func order(id string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":"evt-%s","source":"magento","type":"order.placed","subject":%q,"time":"2026-11-27T10:00:00.000Z","datacontenttype":"application/json","data":{"order_id":%q,"customer_id":"c-1","email":"a@example.com","grand_total":10,"currency":"EUR","items":[{"sku":"SKU-1","qty":1,"price":10}]}}`, id, id, id)
}

type fixture struct {
	srv  *bridge.Server
	prod *fakeProducer
	reg  *prometheus.Registry
}

func newFixture(t *testing.T, mod func(*bridge.Config)) *fixture {
	t.Helper()
	f := &fixture{prod: &fakeProducer{}, reg: prometheus.NewRegistry()}
	cfg := bridge.Config{Producer: f.prod, Secrets: [][]byte{secretOld, secretNew}, Registerer: f.reg,
		Now: func() time.Time { return now }, MaxBatch: 5, MaxBody: 8 << 10}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := bridge.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	return f
}

// post sends body signed with secret at ts (nil secret: unsigned).
func (f *fixture) post(ct, body string, secret []byte, ts time.Time) (*httptest.ResponseRecorder, bridge.Problem) {
	req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", ct)
	if secret != nil {
		tsv, sig := bridge.Sign(secret, ts, []byte(body))
		req.Header.Set(bridge.HeaderTimestamp, tsv)
		req.Header.Set(bridge.HeaderSignature, sig)
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	var p bridge.Problem
	if rec.Code >= 400 {
		json.Unmarshal(rec.Body.Bytes(), &p)
	}
	return rec, p
}

func TestStructuredAndBatch(t *testing.T) {
	f := newFixture(t, nil)
	rec, _ := f.post(bridge.ContentTypeStructured, stock("SKU-1", 3), secretNew, now)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("structured: %d %s", rec.Code, rec.Body)
	}
	batch := "[" + stock("SKU-2", 1) + "," + order("100000042") + "]"
	rec, _ = f.post(bridge.ContentTypeBatch+"; charset=utf-8", batch, secretNew, now)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("batch: %d %s", rec.Code, rec.Body)
	}
	want := []struct{ topic, key string }{
		{"commerce.inventory.v1", "SKU-1"}, {"commerce.inventory.v1", "SKU-2"}, {"commerce.order.v1", "100000042"},
	}
	if len(f.prod.recs) != len(want) {
		t.Fatalf("produced %d records, want %d", len(f.prod.recs), len(want))
	}
	for i, w := range want {
		r := f.prod.recs[i]
		if r.Topic != w.topic || string(r.Key) != w.key {
			t.Errorf("record %d: %s/%s, want %s/%s", i, r.Topic, r.Key, w.topic, w.key)
		}
	}
	if got := f.counter(t, "shopstream_bridge_requests_total", "202"); got != 2 {
		t.Errorf("requests{status=202} = %v", got)
	}
}

// counter sums the samples of a counter, or of those with label value.
func (f *fixture) counter(t *testing.T, name, label string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || l.GetValue() == label
			}
			if match {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func TestConfiguredTopics(t *testing.T) {
	f := newFixture(t, func(c *bridge.Config) { c.Topics = map[topics.Domain]string{"inventory": "stock.events"} })
	if rec, _ := f.post(bridge.ContentTypeStructured, stock("SKU-1", 1), secretOld, now); rec.Code != http.StatusAccepted {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if got := f.prod.recs[0].Topic; got != "stock.events" {
		t.Errorf("topic %s", got)
	}
}

// One invalid event refuses the whole batch: 400 problem+json listing it,
// nothing produced.
func TestInvalidAllOrNothing(t *testing.T) {
	f := newFixture(t, nil)
	bad := strings.Replace(stock("SKU-9", 2), `"quantity":5`, `"quantity":"many"`, 1)
	unknown := strings.Replace(stock("SKU-8", 1), "inventory.stock.updated", "inventory.stock.teleported", 1)
	batch := "[" + stock("SKU-1", 1) + "," + bad + "," + unknown + ",{}]"
	rec, p := f.post(bridge.ContentTypeBatch, batch, secretOld, now)
	if rec.Code != http.StatusBadRequest || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
		t.Fatalf("%d %s %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if len(f.prod.recs) != 0 {
		t.Fatalf("%d records produced from a refused batch", len(f.prod.recs))
	}
	if p.Status != 400 || len(p.Errors) != 3 {
		t.Fatalf("problem %+v", p)
	}
	for i, wantIdx := range []int{1, 2, 3} {
		if p.Errors[i].Index != wantIdx || p.Errors[i].Reason == "" {
			t.Errorf("error %d: %+v", i, p.Errors[i])
		}
	}
	if p.Errors[0].ID != "evt-SKU-9-2" || !strings.Contains(p.Errors[0].Reason, "quantity") {
		t.Errorf("first error %+v", p.Errors[0])
	}
	for _, body := range []string{"not json", "[]", `{"type":"x"}`} {
		ct := bridge.ContentTypeBatch
		if strings.HasPrefix(body, "{") {
			ct = bridge.ContentTypeStructured
		}
		if rec, _ := f.post(ct, body, secretOld, now); rec.Code != http.StatusBadRequest {
			t.Errorf("%q: %d", body, rec.Code)
		}
	}
	if rec, _ := f.post("application/json", stock("SKU-1", 1), secretOld, now); rec.Code != http.StatusUnsupportedMediaType {
		t.Errorf("application/json: %d", rec.Code)
	}
}

func TestSignature(t *testing.T) {
	f := newFixture(t, nil)
	body := stock("SKU-1", 1)
	for _, tc := range []struct {
		name   string
		secret []byte
		ts     time.Time
		want   int
	}{
		{"current secret", secretNew, now, 202},
		{"previous secret during rotation", secretOld, now, 202},
		{"wrong secret", []byte("wrong-secret-0123456789abcdef"), now, 401},
		{"unsigned", nil, now, 401},
		{"stale", secretNew, now.Add(-6 * time.Minute), 401},
		{"from the future", secretNew, now.Add(6 * time.Minute), 401},
		{"within the window", secretNew, now.Add(-4 * time.Minute), 202},
	} {
		rec, _ := f.post(bridge.ContentTypeStructured, body, tc.secret, tc.ts)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d (%s)", tc.name, rec.Code, tc.want, rec.Body)
		}
	}
	// A signature of another body does not carry over.
	req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(stock("SKU-2", 1)))
	req.Header.Set("Content-Type", bridge.ContentTypeStructured)
	ts, sig := bridge.Sign(secretNew, now, []byte(body))
	req.Header.Set(bridge.HeaderTimestamp, ts)
	req.Header.Set(bridge.HeaderSignature, sig)
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Errorf("replayed signature on another body: %d", rec.Code)
	}
	if failures := f.counter(t, "shopstream_bridge_auth_failures_total", ""); failures != 5 {
		t.Errorf("auth failures counted %v, want 5", failures)
	}
}

func TestVerifyKnownVector(t *testing.T) {
	// printf '1764237600.{}' | openssl dgst -sha256 -hmac 'old-secret-0123456789abcdef'
	ts, sig := bridge.Sign(secretOld, time.Unix(1764237600, 0), []byte("{}"))
	if ts != "1764237600" || sig != "sha256=e94c1353d54eb3cf167a57c547e14532be69b682821e207f79c56c158eea8ea4" {
		t.Errorf("Sign = %s %s", ts, sig)
	}
	if r := bridge.Verify([][]byte{secretOld}, ts, "sha256="+strings.Repeat("0", 64), []byte("{}"), time.Unix(1764237600, 0), time.Minute); r != "mismatch" {
		t.Errorf("Verify = %q", r)
	}
	if r := bridge.Verify([][]byte{secretOld}, ts, "md5=abc", []byte("{}"), time.Unix(1764237600, 0), time.Minute); r != "malformed" {
		t.Errorf("Verify = %q", r)
	}
}

func TestLimits(t *testing.T) {
	f := newFixture(t, nil)
	var evs []string
	for i := range 6 {
		evs = append(evs, stock(fmt.Sprintf("SKU-%d", i), 1))
	}
	if rec, p := f.post(bridge.ContentTypeBatch, "["+strings.Join(evs, ",")+"]", secretOld, now); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("6 events with MaxBatch 5: %d %+v", rec.Code, p)
	}
	huge := strings.Replace(stock("SKU-1", 1), `"source":"magento"`, `"source":"`+strings.Repeat("m", 9<<10)+`"`, 1)
	if rec, _ := f.post(bridge.ContentTypeStructured, huge, secretOld, now); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("9 KiB body with MaxBody 8 KiB: %d", rec.Code)
	}
	if len(f.prod.recs) != 0 {
		t.Errorf("%d records produced", len(f.prod.recs))
	}
}

func TestKafkaDown503(t *testing.T) {
	f := newFixture(t, func(c *bridge.Config) { c.RetryAfter = 7 * time.Second })
	f.prod.err = errors.New("unable to dial: connection refused")
	rec, p := f.post(bridge.ContentTypeStructured, stock("SKU-1", 1), secretOld, now)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "7" {
		t.Fatalf("%d Retry-After=%q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if strings.Contains(p.Detail, "connection refused") {
		t.Errorf("the answer leaks internal errors: %q", p.Detail)
	}
}

func TestNewValidates(t *testing.T) {
	_, err := bridge.New(bridge.Config{Secrets: [][]byte{[]byte("short")}, Topics: map[topics.Domain]string{"nope": "x"}})
	for _, w := range []string{"Producer", "shorter than 16", "unknown domain"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}

// An event Kafka would refuse as too large for a record batch is invalid
// (400, nothing produced), not a 503 to retry forever — whose transaction
// would also abort every request sharing it.
func TestEventTooLargeForKafka(t *testing.T) {
	f := newFixture(t, func(c *bridge.Config) { c.MaxBody = 2 << 20 })
	big := strings.Replace(stock("SKU-1", 1), `"source":"magento"`, `"source":"`+strings.Repeat("m", 1_010_000)+`"`, 1)
	rec, p := f.post(bridge.ContentTypeStructured, big, secretOld, now)
	if rec.Code != http.StatusBadRequest || len(p.Errors) != 1 || !strings.Contains(p.Errors[0].Reason, fmt.Sprintf("at most %d", bridge.DefaultMaxEventBytes)) {
		t.Fatalf("a %d-byte event: %d %+v", len(big), rec.Code, p)
	}
	if rec, _ := f.post(bridge.ContentTypeStructured, stock("SKU-2", 1), secretOld, now); rec.Code != http.StatusAccepted {
		t.Fatalf("a small event after it: %d", rec.Code)
	}
	if len(f.prod.recs) != 1 {
		t.Fatalf("%d records produced, want only the small event's", len(f.prod.recs))
	}

	g := newFixture(t, func(c *bridge.Config) { c.MaxEventBytes = 512 })
	batch := "[" + stock("SKU-1", 1) + "," + strings.Replace(stock("SKU-2", 1), `"source":"magento"`, `"source":"`+strings.Repeat("m", 600)+`"`, 1) + "]"
	if rec, p := g.post(bridge.ContentTypeBatch, batch, secretOld, now); rec.Code != http.StatusBadRequest || len(p.Errors) != 1 || p.Errors[0].Index != 1 {
		t.Fatalf("a batch with one event over MaxEventBytes 512: %d %+v", rec.Code, p)
	}
	if len(g.prod.recs) != 0 {
		t.Fatalf("%d records produced from a refused batch", len(g.prod.recs))
	}
}
