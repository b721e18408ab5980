package devstack_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/topics"
)

// idealProcessor plays every group of groups over the manifest the way the
// real processor must: per topic in offset order, poison to the DLQ, other
// types filtered, a version fence or event-id dedupe, retries on 5xx and
// 429. It calls the Simulator over HTTP and writes DLQ records to Kafka.
// With fence false it forgets the version fence, like a buggy processor.
type idealProcessor struct {
	t     *testing.T
	hc    *http.Client
	base  string
	token string
	cl    *kgo.Client
	fence bool
}

func (p *idealProcessor) run(m *devstack.Manifest, groups []devstack.GroupSpec) {
	for _, g := range groups {
		applied := make(map[string]bool)
		version := make(map[string]int64)
		var dlq []*kgo.Record
		for _, r := range m.ByTopic(g.Topic) {
			switch {
			case r.Poison:
				dlq = append(dlq, &kgo.Record{
					Topic: topics.DLQTopic(r.Topic), Key: []byte(r.Key), Value: r.Value,
					Headers: []kgo.RecordHeader{
						{Key: topics.HeaderGroup, Value: []byte(g.Name)},
						{Key: topics.HeaderOriginalTopic, Value: []byte(r.Topic)},
						{Key: topics.HeaderOriginalPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
						{Key: topics.HeaderOriginalOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
						{Key: topics.HeaderErrorClass, Value: []byte(topics.ErrorClassPoison)},
					},
				})
			case !contains(g.Types, r.Type):
			case g.Fenced && p.fence && r.Version <= version[r.Key]:
			case !g.Fenced && applied[r.ID]:
			default:
				p.apply(g, r)
				applied[r.ID] = true
				version[r.Key] = max(version[r.Key], r.Version)
			}
		}
		if err := p.cl.ProduceSync(p.t.Context(), dlq...).FirstErr(); err != nil {
			p.t.Fatalf("produce DLQ records of %s: %v", g.Name, err)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// apply sends one event to its sink, retrying injected failures.
func (p *idealProcessor) apply(g devstack.GroupSpec, r devstack.Produced) {
	var ev topics.Event
	if err := json.Unmarshal(r.Value, &ev); err != nil {
		p.t.Fatalf("decode %s: %v", r.ID, err)
	}
	wrap := func(field string, data json.RawMessage, list bool) []byte {
		if list {
			return []byte(fmt.Sprintf(`{%q:[%s]}`, field, data))
		}
		return []byte(fmt.Sprintf(`{%q:%s}`, field, data))
	}
	var method, path string
	var body []byte
	h := http.Header{}
	switch ev.Type {
	case devstack.TypeProductCreated, devstack.TypeProductUpdated:
		method, path, body = http.MethodPut, "/rest/V1/products/"+url.PathEscape(ev.Subject), wrap("product", ev.Data, false)
	case devstack.TypePriceChanged:
		method, path, body = http.MethodPost, "/rest/V1/products/base-prices", wrap("prices", ev.Data, true)
	case devstack.TypeStockUpdated:
		method, path, body = http.MethodPost, "/rest/V1/inventory/source-items", wrap("sourceItems", ev.Data, true)
	default:
		method, path, body = http.MethodPost, "/"+g.Sinks[0], r.Value
		h.Set("Content-Type", "application/cloudevents+json")
		h.Set("Idempotency-Key", ev.ID)
	}
	if g.Fenced {
		h.Set("Authorization", "Bearer "+p.token)
		h.Set("Content-Type", "application/json")
		h.Set(devstack.HeaderEventID, ev.ID)
		h.Set(devstack.HeaderEventVersion, strconv.FormatInt(ev.Version, 10))
	}
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequest(method, p.base+path, bytes.NewReader(body))
		if err != nil {
			p.t.Fatal(err)
		}
		req.Header = h.Clone()
		resp, err := p.hc.Do(req)
		if err != nil {
			p.t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			return
		case (resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests) && attempt < 20:
			continue
		default:
			p.t.Fatalf("%s %s (%s): status %d after %d attempts", method, path, ev.Type, resp.StatusCode, attempt)
		}
	}
}

// TestGeneratedTrafficThroughIdealProcessor runs generated traffic through a
// processor that does everything right, over HTTP with injected failures and
// with DLQ records in Kafka, and expects Check to pass; the same traffic
// through a processor without a version fence must fail it.
func TestGeneratedTrafficThroughIdealProcessor(t *testing.T) {
	t.Parallel()
	_, cl := startKafka(t, devstack.KafkaOptions{})
	ctx := testContext(t)
	m, err := devstack.Generate(ctx, cl, devstack.GenConfig{Seed: 3, SKUs: 20, StockUpdates: 150, Orders: 20, Customers: 10})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}

	sim, base, hc := startSimulator(t)
	sim.SetSeed(3)
	for _, s := range devstack.Sinks() {
		sim.SetFailRate(s, 0.1, http.StatusServiceUnavailable)
	}
	p := &idealProcessor{t: t, hc: hc, base: base, token: sim.Token(), cl: cl, fence: true}
	p.run(m, devstack.DefaultGroups())

	dlq, err := devstack.ReadDLQ(ctx, cl, devstack.DLQTopics())
	if err != nil {
		t.Fatalf("ReadDLQ: %v", err)
	}
	groups := devstack.DefaultGroups()
	v := devstack.Check(m, sim.Calls(), dlq, groups)
	t.Logf("ideal processor:\n%s", v)
	if !v.OK() || v.Unattributed != 0 || v.Misrouted != 0 {
		t.Fatalf("ideal processor failed the verdict:\n%s", v)
	}
	wantDLQ := 0
	for _, g := range groups {
		wantDLQ += len(m.Filter(func(r devstack.Produced) bool { return r.Poison && r.Topic == g.Topic }))
		if gv := groupVerdict(t, v, g.Name); gv.Applied == 0 || (g.Fenced && gv.Skipped == 0) {
			t.Errorf("group %s: %+v: want applies, and skips when fenced", g.Name, gv)
		}
	}
	if len(dlq) != wantDLQ || wantDLQ == 0 {
		t.Fatalf("%d DLQ records, want %d (one per poison record and group)", len(dlq), wantDLQ)
	}
	attempts := sim.Attempts()
	calls := sim.Calls()
	if attempts[devstack.SinkSourceItems] <= countSink(calls, devstack.SinkSourceItems) {
		t.Fatalf("no injected failure was retried: attempts %v", attempts)
	}

	// Without the fence, stale copies overwrite newer versions.
	sim.Reset()
	sim.ClearFaults()
	buggy := &idealProcessor{t: t, hc: hc, base: base, token: sim.Token(), cl: cl, fence: false}
	buggy.run(m, groups[:2]) // catalog and inventory; the DLQ already holds their poison
	v = devstack.Check(m, sim.Calls(), dlq, groups[:2])
	if v.OK() || v.Regressions == 0 {
		t.Fatalf("a processor without a version fence passed:\n%s", v)
	}
}

func countSink(calls []devstack.Call, sink string) int {
	n := 0
	for _, c := range calls {
		if c.Sink == sink {
			n++
		}
	}
	return n
}
