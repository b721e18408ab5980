package bridge_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/shopstream/shopstream/bridge"
)

const (
	inventoryTopic = "commerce.inventory.v1"
	orderTopic     = "commerce.order.v1"
)

// newKafka starts an in-process Kafka (kfake) with the inventory and order
// topics, 3 partitions each.
func newKafka(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, inventoryTopic, orderTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// txnFixture is a bridge whose producer is a TxnProducer on brokers; its
// metrics, the producer's and the client's (kprom, as the command wires it:
// a replaced client registers them again) are in f.reg.
func txnFixture(t *testing.T, brokers []string, timeout time.Duration) (*fixture, *bridge.TxnProducer) {
	t.Helper()
	var p *bridge.TxnProducer
	f := newFixture(t, func(c *bridge.Config) {
		var err error
		p, err = bridge.NewTxnProducer(bridge.TxnConfig{
			TransactionalID: "bridge-test-" + t.Name(),
			Opts:            []kgo.Opt{kgo.SeedBrokers(brokers...)},
			Hooks: func() []kgo.Hook {
				return []kgo.Hook{kprom.NewMetrics("shopstream_kafka", kprom.Registerer(c.Registerer))}
			},
			ProduceTimeout: timeout,
			Registerer:     c.Registerer,
			Logger:         zerolog.New(zerolog.NewTestWriter(t)),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		c.Producer = p
		c.ProduceTimeout = timeout
	})
	return f, p
}

// consume reads topics from the start at the given isolation level until
// want holds for the count of records seen per ce_id header, and returns
// the counts; it fails the test after 20s.
func consume(t *testing.T, brokers []string, level kgo.IsolationLevel, want func(seen map[string]int) bool) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(inventoryTopic, orderTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seen := map[string]int{}
	for !want(seen) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("timed out; read %v", seen)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[headerValue(r, "ce_id")]++ })
	}
	return seen
}

func headerValue(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// all reports whether every id was seen.
func all(ids ...string) func(map[string]int) bool {
	return func(seen map[string]int) bool {
		for _, id := range ids {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	}
}

// gauge returns a gauge's value.
func (f *fixture) gauge(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// A batch whose order event Kafka refuses — not writable, or not
// acknowledged within the produce timeout — while its stock updates are
// already written to other partitions: 503, and read_committed consumers
// never see any of it; the next request is committed.
func TestBridgeTxnPartialFailureAbortsRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *kerr.Error
	}{
		{"not writable", kerr.TopicAuthorizationFailed},
		{"produce timeout", kerr.NotEnoughReplicas}, // retriable: retried until the deadline
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newKafka(t)
			brokers := c.ListenAddrs()
			f, _ := txnFixture(t, brokers, 2*time.Second)
			fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: orderTopic, Err: tc.err, Count: -1})

			batch := "[" + stock("SKU-A", 1) + "," + stock("SKU-B", 1) + "," + order("100000001") + "]"
			start := time.Now()
			rec, _ := f.post(bridge.ContentTypeBatch, batch, secretOld, now)
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
				t.Fatalf("%d Retry-After=%q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("answered after %s with a 2s produce timeout", d)
			}
			if fault.Hits() == 0 {
				t.Fatal("the order event never reached Kafka")
			}
			// The stock updates were written (the failure was part-way)...
			consume(t, brokers, kgo.ReadUncommitted(), all("evt-SKU-A-1", "evt-SKU-B-1"))

			fault.Remove()
			batch = "[" + stock("SKU-A", 2) + "," + stock("SKU-B", 2) + "," + order("100000001") + "]"
			if rec, _ := f.post(bridge.ContentTypeBatch, batch, secretOld, now); rec.Code != http.StatusAccepted {
				t.Fatalf("after the failure: %d %s", rec.Code, rec.Body)
			}
			// ...and aborted: version 2 is on the same partitions, after them.
			seen := consume(t, brokers, kgo.ReadCommitted(), all("evt-SKU-A-2", "evt-SKU-B-2", "evt-100000001"))
			if seen["evt-SKU-A-1"]+seen["evt-SKU-B-1"] != 0 || seen["evt-100000001"] != 1 {
				t.Errorf("read_committed saw %v; want versions 2 and the order once", seen)
			}
			if a, c := f.counter(t, "shopstream_bridge_transactions_total", "aborted"), f.counter(t, "shopstream_bridge_transactions_total", "committed"); a != 1 || c != 1 {
				t.Errorf("transactions: %v aborted, %v committed; want 1 and 1", a, c)
			}
		})
	}
}

// Requests arriving while a transaction is in flight all join the next
// one (group commit); every request is answered 202 and every event lands
// once.
func TestBridgeTxnGroupCommit(t *testing.T) {
	c := newKafka(t)
	brokers := c.ListenAddrs()
	f, _ := txnFixture(t, brokers, 10*time.Second)

	// Hold the first transaction's commit until the others are queued.
	reached, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	c.ControlKey(kmsg.EndTxn.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		if held.CompareAndSwap(false, true) {
			close(reached)
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})

	const n = 8
	codes := make(chan int, n+1)
	var wg sync.WaitGroup
	post := func(body string) {
		defer wg.Done()
		rec, _ := f.post(bridge.ContentTypeBatch, body, secretOld, now)
		codes <- rec.Code
	}
	wg.Add(1)
	go post("[" + stock("SKU-FIRST", 1) + "]")
	<-reached
	ids := []string{"evt-SKU-FIRST-1"}
	for i := range n {
		sku, ord := fmt.Sprintf("SKU-%d", i), fmt.Sprintf("10000010%d", i)
		ids = append(ids, "evt-"+sku+"-1", "evt-"+ord)
		wg.Add(1)
		go post("[" + stock(sku, 1) + "," + order(ord) + "]")
	}
	deadline := time.Now().Add(20 * time.Second)
	for f.gauge(t, "shopstream_bridge_queued_requests") != n {
		if time.Now().After(deadline) {
			t.Fatalf("%v requests queued, want %d", f.gauge(t, "shopstream_bridge_queued_requests"), n)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition
	}
	close(release)
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusAccepted {
			t.Errorf("a request was answered %d", code)
		}
	}
	if got := f.counter(t, "shopstream_bridge_transactions_total", "committed"); got != 2 {
		t.Errorf("%v transactions for %d requests; want 2 (the first, then all the others together)", got, n+1)
	}
	seen := consume(t, brokers, kgo.ReadCommitted(), all(ids...))
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("%s seen %d times", id, seen[id])
		}
	}
	if len(seen) != len(ids) {
		t.Errorf("read %d distinct events, want %d: %v", len(seen), len(ids), seen)
	}
}

// When ending a transaction fails — the commit, or the abort after a failed
// write — the client is replaced at once: what the failed transaction left
// open is aborted without waiting for the transaction timeout (a record
// written after it becomes readable with read_committed), and the next
// request is committed.
func TestBridgeTxnFailedEndRecovers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		writeFault bool
	}{
		{"commit fails", false},
		{"abort fails", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newKafka(t)
			brokers := c.ListenAddrs()
			// The transaction timeout is 6 × 5s: far longer than the wait below.
			f, _ := txnFixture(t, brokers, 5*time.Second)
			if tc.writeFault {
				c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: orderTopic, Err: kerr.TopicAuthorizationFailed})
			}
			end := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, TopLevel: true, Err: kerr.InvalidTxnState})

			batch := "[" + stock("SKU-A", 1) + "," + order("100000001") + "]"
			if rec, _ := f.post(bridge.ContentTypeBatch, batch, secretOld, now); rec.Code != http.StatusServiceUnavailable {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if end.Hits() != 1 {
				t.Fatalf("EndTxn fault hit %d times", end.Hits())
			}
			if got := f.counter(t, "shopstream_bridge_producer_restarts_total", ""); got != 1 {
				t.Errorf("client replaced %v times, want 1", got)
			}
			// A record written after the failed transaction, to the same
			// partition, is readable: nothing is left open.
			plain, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			if err := plain.ProduceSync(context.Background(), &kgo.Record{Topic: inventoryTopic, Key: []byte("SKU-A"),
				Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("plain")}}}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			consume(t, brokers, kgo.ReadCommitted(), all("plain"))
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("the failed transaction blocked read_committed consumers for %s", d)
			}

			batch = "[" + stock("SKU-A", 2) + "," + order("100000002") + "]"
			if rec, _ := f.post(bridge.ContentTypeBatch, batch, secretOld, now); rec.Code != http.StatusAccepted {
				t.Fatalf("after recovery: %d %s", rec.Code, rec.Body)
			}
			seen := consume(t, brokers, kgo.ReadCommitted(), all("evt-SKU-A-2", "evt-100000002"))
			if seen["evt-SKU-A-1"]+seen["evt-100000001"] != 0 {
				t.Errorf("read_committed saw the failed request: %v", seen)
			}
			// The new client's kprom metrics replaced the old one's.
			if got := f.counter(t, "shopstream_kafka_produce_bytes_total", ""); got == 0 {
				t.Error("no shopstream_kafka_produce_bytes_total from the new client")
			}
		})
	}
}

// A request whose deadline passes while it waits for a transaction is
// withdrawn, never produced.
func TestBridgeTxnWithdrawnWhileQueued(t *testing.T) {
	c := newKafka(t)
	brokers := c.ListenAddrs()
	p, err := bridge.NewTxnProducer(bridge.TxnConfig{TransactionalID: "withdraw", Opts: []kgo.Opt{kgo.SeedBrokers(brokers...)},
		Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	reached, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	c.ControlKey(kmsg.EndTxn.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		if held.CompareAndSwap(false, true) {
			close(reached)
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	rec := func(id string) []*kgo.Record {
		return []*kgo.Record{{Topic: inventoryTopic, Key: []byte(id), Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte(id)}}}}
	}
	first := make(chan error, 1)
	go func() { first <- p.ProduceAll(context.Background(), rec("first")) }()
	<-reached
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.ProduceAll(ctx, rec("withdrawn")); err != context.Canceled {
		t.Errorf("canceled while queued: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceAll(context.Background(), rec("last")); err != nil {
		t.Fatal(err)
	}
	seen := consume(t, brokers, kgo.ReadUncommitted(), all("first", "last"))
	if seen["withdrawn"] != 0 {
		t.Errorf("the withdrawn request was produced: %v", seen)
	}
	p.Close()
	if err := p.ProduceAll(context.Background(), rec("closed")); err != bridge.ErrClosed {
		t.Errorf("after Close: %v", err)
	}
}

func TestBridgeNewTxnProducerValidates(t *testing.T) {
	if _, err := bridge.NewTxnProducer(bridge.TxnConfig{}); err == nil || !strings.Contains(err.Error(), "transactional id") {
		t.Errorf("no id: %v", err)
	}
}
