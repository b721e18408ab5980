// Package integration runs the processor against Kafka over its real
// protocol (franz-go's kfake, in-process, over TCP) and a real redis-server.
package integration

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/kafkatest"
	"github.com/shopstream/shopstream/internal/redistest"
	"github.com/shopstream/shopstream/ordering"
	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

const partitions = 6

// env is one test's Kafka (kfake or real) and redis-server. Topic names and
// group ids carry a per-test prefix, so tests can share a real broker.
type env struct {
	t       *testing.T
	backend *backend
	prefix  string
	brokers []string
	redis   *redistest.Server
	rdb     *redis.Client
	admin   *kadm.Client
}

// newEnv creates topicNames and their DLQ topics (6 partitions), and starts Redis.
func newEnv(t *testing.T, b *backend, topicNames ...string) *env {
	t.Helper()
	var all []string
	for _, tp := range topicNames {
		all = append(all, tp, topics.DLQTopic(tp))
	}
	return newEnvSeeded(t, b, partitions, all...)
}

// newEnvSeeded creates exactly the topics given, and starts Redis.
func newEnvSeeded(t *testing.T, b *backend, parts int32, seed ...string) *env {
	t.Helper()
	e := &env{t: t, backend: b, prefix: testPrefix(t)}
	e.brokers = b.Brokers(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	e.admin = kadm.NewClient(cl)
	if len(seed) > 0 {
		e.createTopics(parts, seed...)
	}
	e.redis = redistest.Start(t)
	e.rdb = redis.NewClient(&redis.Options{Addr: e.redis.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { e.rdb.Close() })
	return e
}

var prefixSeq atomic.Int64

// testPrefix is unique per test run, so topics and groups never collide on
// a shared broker (nor with an earlier run against an existing cluster).
func testPrefix(t *testing.T) string {
	return fmt.Sprintf("t%d-%d-", time.Now().UnixNano()%1e9, prefixSeq.Add(1))
}

// topic is this test's name for a base topic name.
func (e *env) topic(base string) string { return e.prefix + base }

// groupID is this test's id for a group name (inventory, order-crm).
func (e *env) groupID(name string) string { return e.prefix + "shopstream." + name }

// createTopics creates the prefixed topics and waits until each has a leader.
func (e *env) createTopics(parts int32, bases ...string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	names := make([]string, len(bases))
	for i, b := range bases {
		names[i] = e.topic(b)
	}
	if err := kafkatest.CreateTopics(ctx, e.admin, parts, names...); err != nil {
		e.t.Fatal(err)
	}
}

// stock builds an inventory.stock.updated record of this test's inventory topic.
func (e *env) stock(sku string, version int64, qty int) *kgo.Record {
	data := fmt.Sprintf(`{"sku":%q,"source_code":"default","quantity":%d,"status":1}`, sku, qty)
	return record(e.topic(topics.TopicInventory), "inventory.stock.updated", sku, fmt.Sprintf("evt-%s-%d", sku, version), version, data)
}

// order builds an order.placed record of this test's order topic.
func (e *env) order(orderID, id string) *kgo.Record {
	data := fmt.Sprintf(`{"order_id":%q,"customer_id":"c-1","email":"a@example.com","grand_total":10,"currency":"EUR","items":[{"sku":"SKU-1","qty":1,"price":10}]}`, orderID)
	return record(e.topic(topics.TopicOrder), "order.placed", orderID, id, 0, data)
}

// stockBatch is skus × versions stock updates, versions first..last.
func (e *env) stockBatch(skus, first, last int) []*kgo.Record {
	var recs []*kgo.Record
	for v := first; v <= last; v++ {
		for s := range skus {
			recs = append(recs, e.stock(fmt.Sprintf("SKU-%03d", s), int64(v), v))
		}
	}
	return recs
}

func record(topic, typ, subject, id string, version int64, data string) *kgo.Record {
	v := ""
	if version > 0 {
		v = fmt.Sprintf(`,"version":%d`, version)
	}
	value := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"test","type":%q,"subject":%q,"time":"2026-11-27T10:00:00.000Z"%s,"datacontenttype":"application/json","data":%s}`,
		id, typ, subject, v, data)
	return &kgo.Record{Topic: topic, Key: []byte(subject), Value: []byte(value)}
}

func (e *env) produce(recs ...*kgo.Record) {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
}

// running is a processor running in the background.
type running struct {
	proc   *processor.Processor
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func (e *env) options() processor.Options {
	return processor.Options{
		Brokers:        e.brokers,
		Versions:       ordering.NewVersionFence(e.rdb),
		IDs:            ordering.NewDedupe(e.rdb, time.Hour),
		Logger:         zerolog.New(zerolog.NewTestWriter(e.t)).Level(zerolog.InfoLevel),
		CommitInterval: 50 * time.Millisecond,
		DrainTimeout:   10 * time.Second,
		RevokeTimeout:  10 * time.Second,
	}
}

func (e *env) start(opts processor.Options, groups ...processor.GroupConfig) *running {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	p, err := processor.New(opts, groups...)
	if err != nil {
		e.t.Fatalf("new processor: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{proc: p, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	e.t.Cleanup(func() { r.stop(e.t) })
	return r
}

// stop is SIGTERM: cancel and wait for the graceful shutdown.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("processor returned %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("processor did not shut down within 60s")
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) committed(group, topic string) map[int32]int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.admin.FetchOffsets(ctx, group)
	if err != nil {
		e.t.Fatalf("fetch offsets: %v", err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// endOffsets returns the end offset of every partition of topic.
func (e *env) endOffsets(topic string) map[int32]int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := e.admin.ListEndOffsets(ctx, topic)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// readAll reads every record of topic from the start up to its end offsets.
func (e *env) readAll(topic string) []*kgo.Record {
	e.t.Helper()
	ends := e.endOffsets(topic)
	want := map[int32]int64{}
	total := int64(0)
	for p, o := range ends {
		if o > 0 {
			want[p] = o
			total += o
		}
	}
	if total == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for int64(len(out)) < total {
		f := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			e.t.Fatalf("read %s: got %d of %d records: %v", topic, len(out), total, err)
		}
		f.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func counter(r *running, group, topic, outcome string) int64 {
	for _, s := range r.proc.Stats() {
		if s.Group == group && s.Topic == topic {
			switch outcome {
			case processor.OutcomeApplied:
				return s.Applied
			case processor.OutcomeSkippedStale:
				return s.SkippedStale
			case processor.OutcomeSkippedDuplicate:
				return s.SkippedDuplicate
			case processor.OutcomeDeadLettered:
				return s.DeadLettered
			case processor.OutcomeFiltered:
				return s.Filtered
			}
		}
	}
	return 0
}

// sink records what the handler applied, in order, per key.
type sink struct {
	mu       sync.Mutex
	applied  map[string][]int64 // subject → versions in apply order
	ids      []string
	active   map[string]int // subject → calls in progress
	maxConc  int            // most calls in progress at once, across keys
	overlaps int            // calls that began while another call of the same key ran
	cur      int
}

func newSink() *sink {
	return &sink{applied: map[string][]int64{}, active: map[string]int{}}
}

func (s *sink) begin(ev *topics.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active[ev.Subject] > 0 {
		s.overlaps++
	}
	s.active[ev.Subject]++
	s.cur++
	s.maxConc = max(s.maxConc, s.cur)
}

func (s *sink) end(ev *topics.Event, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active[ev.Subject]--
	s.cur--
	if ok {
		s.applied[ev.Subject] = append(s.applied[ev.Subject], ev.Version)
		s.ids = append(s.ids, ev.ID)
	}
}

func (s *sink) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

func (s *sink) snapshot() (map[string][]int64, []string, int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := map[string][]int64{}
	for k, v := range s.applied {
		cp[k] = append([]int64(nil), v...)
	}
	return cp, append([]string(nil), s.ids...), s.maxConc, s.overlaps
}

// handler returns a processor.Handler that records into s and then runs fn
// (nil: succeed).
func (s *sink) handler(fn func(ctx context.Context, ev *topics.Event) error) processor.Handler {
	return processor.HandlerFunc(func(ctx context.Context, ev *topics.Event) error {
		s.begin(ev)
		var err error
		if fn != nil {
			err = fn(ctx, ev)
		}
		s.end(ev, err == nil)
		return err
	})
}

func (e *env) inventoryGroup(h processor.Handler) processor.GroupConfig {
	return processor.GroupConfig{
		Name: "inventory", ID: e.groupID("inventory"),
		Topic: e.topic(topics.TopicInventory), Domain: topics.DomainInventory,
		Handler: h, Idempotency: processor.IdempotencyFence,
		Retry: processor.RetryPolicy{MaxAttempts: 4, Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, MaxElapsed: 10 * time.Second},
	}
}

// metric returns the value of the first sample of name whose labels include
// want, or 0.
func metric(t *testing.T, r *running, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

// produceTo writes records to the partitions set on them.
func (e *env) produceTo(recs ...*kgo.Record) {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("produce: %v", err)
	}
}
