package integration

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
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/bridge"
	"github.com/shopstream/shopstream/test/realkafka"
	"github.com/shopstream/shopstream/topics"
)

// javaMurmur2 is Kafka's Utils.murmur2, written here from the Java source
// (not franz-go's copy), and checked against Kafka's own test vectors.
func javaMurmur2(data []byte) int32 {
	const seed, m, r = int32(-1756908916), int32(0x5bd1e995), 24
	length := int32(len(data))
	h := seed ^ length
	length4 := length / 4
	for i := int32(0); i < length4; i++ {
		i4 := i * 4
		k := int32(data[i4]) | int32(data[i4+1])<<8 | int32(data[i4+2])<<16 | int32(data[i4+3])<<24
		k *= m
		k ^= int32(uint32(k) >> r)
		k *= m
		h *= m
		h ^= k
	}
	switch length % 4 {
	case 3:
		h ^= int32(data[(length & ^3)+2]) << 16
		fallthrough
	case 2:
		h ^= int32(data[(length & ^3)+1]) << 8
		fallthrough
	case 1:
		h ^= int32(data[length & ^3])
		h *= m
	}
	h ^= int32(uint32(h) >> 13)
	h *= m
	h ^= int32(uint32(h) >> 15)
	return h
}

// javaPartition is BuiltInPartitioner.partitionForKey: toPositive(murmur2) % n.
func javaPartition(key []byte, n int32) int32 {
	return (javaMurmur2(key) & 0x7fffffff) % n
}

func TestJavaMurmur2Vectors(t *testing.T) {
	// From Kafka's UtilsTest.testMurmur2.
	for in, want := range map[string]int32{
		"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
		"a-little-bit-longer-string": -1486304829, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, "abc": 479470107,
	} {
		if got := javaMurmur2([]byte(in)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

func bridgeStock(sku string, version int64) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":"br-%s-%d","source":"magento","type":"inventory.stock.updated","subject":%q,"time":"2026-11-27T10:00:00.000Z","version":%d,"datacontenttype":"application/json","data":{"sku":%q,"source_code":"default","quantity":%d,"status":1}}`,
		sku, version, sku, version, sku, version)
}

var bridgeSecret = []byte("integration-secret-0123456789")

func postSigned(t *testing.T, url, ct, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", ct)
	ts, sig := bridge.Sign(bridgeSecret, time.Now(), []byte(body))
	req.Header.Set(bridge.HeaderTimestamp, ts)
	req.Header.Set(bridge.HeaderSignature, sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// The bridge on a real Kafka: a signed batch is acknowledged with 202 only
// once on Kafka; kcat (librdkafka) reads every record with its subject as
// key, on the partition Java's default partitioner chooses — checked
// against the formula and against kafka-console-producer itself.
func TestBridgeOnRealKafka(t *testing.T) {
	eachRealBackend(t, func(t *testing.T, b *backend) {
		e := newEnvSeeded(t, b, partitions, "bridge-inventory", "java-inventory")
		topic, javaTopic := e.topic("bridge-inventory"), e.topic("java-inventory")
		srv, _ := startBridge(t, e.brokers, e.prefix+"bridge", 10*time.Second, map[topics.Domain]string{topics.DomainInventory: topic})

		var evs, lines []string
		keys := []string{"SKU-1", "SKU-12345", "24-MB01", "WS12-M-Orange", "MH07-XL-Black", "sku-ü-8", "a", "foobar"}
		for i, k := range keys {
			evs = append(evs, bridgeStock(k, int64(i+1)))
			lines = append(lines, k+"\t"+bridgeStock(k, int64(i+1)))
		}
		if resp := postSigned(t, srv.URL, bridge.ContentTypeBatch, "["+strings.Join(evs, ",")+"]"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("batch: %d", resp.StatusCode)
		}
		// An invalid batch writes nothing.
		bad := strings.Replace(bridgeStock("SKU-X", 1), `"status":1`, `"status":"on"`, 1)
		if resp := postSigned(t, srv.URL, bridge.ContentTypeBatch, "["+bridgeStock("SKU-Y", 1)+","+bad+"]"); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("mixed batch: %d", resp.StatusCode)
		}

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := realkafka.ConsoleProducer(ctx, "", e.brokers, javaTopic, strings.Join(lines, "\n")+"\n"); err != nil {
			t.Fatal(err)
		}
		javaPart := map[string]int32{}
		for _, r := range kcatConsume(t, e.brokers, javaTopic) {
			javaPart[r.Key] = r.Partition
		}
		got := kcatConsume(t, e.brokers, topic)
		if len(got) != len(keys) {
			t.Fatalf("kcat read %d records, want %d (the invalid batch must write nothing)", len(got), len(keys))
		}
		for _, r := range got {
			want := javaPartition([]byte(r.Key), partitions)
			if r.Partition != want {
				t.Errorf("key %q on partition %d, want %d (murmur2)", r.Key, r.Partition, want)
			}
			if jp, ok := javaPart[r.Key]; !ok || jp != r.Partition {
				t.Errorf("key %q: bridge partition %d, Java producer partition %d (found %v)", r.Key, r.Partition, jp, ok)
			}
			if _, err := topics.Decode(topics.DomainInventory, []byte(r.Key), []byte(r.Payload)); err != nil {
				t.Errorf("key %q: record is not a valid contract event: %v", r.Key, err)
			}
		}
	})
}

// Kafka unreachable: 503 with Retry-After within the produce timeout, and
// the producer still closes at once.
func TestBridgeKafkaDown(t *testing.T) {
	srv, p := startBridge(t, []string{"127.0.0.1:1"}, "bridge-down", 2*time.Second, nil)
	start := time.Now()
	resp := postSigned(t, srv.URL, bridge.ContentTypeStructured, bridgeStock("SKU-1", 1))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d Retry-After=%q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("503 after %s; want it within the produce timeout", d)
	}
	srv.Close()
	start = time.Now()
	p.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %s with Kafka down", d)
	}
}

// startBridge serves a bridge whose TxnProducer has the transactional id
// txnID; both are closed when the test ends.
func startBridge(t *testing.T, brokers []string, txnID string, timeout time.Duration, tps map[topics.Domain]string) (*httptest.Server, *bridge.TxnProducer) {
	t.Helper()
	srv, p, _ := startBridgeReg(t, brokers, txnID, timeout, tps)
	return srv, p
}

// startBridgeReg is startBridge that also returns the metrics registry.
func startBridgeReg(t *testing.T, brokers []string, txnID string, timeout time.Duration, tps map[topics.Domain]string) (*httptest.Server, *bridge.TxnProducer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := bridge.NewTxnProducer(bridge.TxnConfig{TransactionalID: txnID, Opts: []kgo.Opt{kgo.SeedBrokers(brokers...)},
		ProduceTimeout: timeout, Registerer: reg, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	if err != nil {
		t.Fatal(err)
	}
	h, err := bridge.New(bridge.Config{Producer: p, Ready: p.Ping, Secrets: [][]byte{bridgeSecret}, Topics: tps,
		ProduceTimeout: timeout, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(p.Close)
	t.Cleanup(srv.Close) // cleanups run last first: the server, then the producer
	return srv, p, reg
}

func bridgeOrder(id string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":"br-%s","source":"magento","type":"order.placed","subject":%q,"time":"2026-11-27T10:00:00.000Z","datacontenttype":"application/json","data":{"order_id":%q,"customer_id":"c-1","email":"a@example.com","grand_total":10,"currency":"EUR","items":[{"sku":"SKU-1","qty":1,"price":10}]}}`, id, id, id)
}

// consumeIDs reads topics from the start at the given isolation level until
// want holds for the number of records seen per event id (the record
// value's "id"), and returns those counts; it fails the test after 60s.
func consumeIDs(t *testing.T, brokers []string, level kgo.IsolationLevel, topicNames []string, want func(seen map[string]int) bool) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topicNames...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seen := map[string]int{}
	for !want(seen) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("timed out reading %v; seen %v", topicNames, seen)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var ev struct {
				ID string `json:"id"`
			}
			json.Unmarshal(r.Value, &ev)
			seen[ev.ID]++
		})
	}
	return seen
}

// seenAll reports whether every id was seen.
func seenAll(ids ...string) func(map[string]int) bool {
	return func(seen map[string]int) bool {
		for _, id := range ids {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	}
}

// A batch whose order event Kafka refuses (larger than the order topic's
// max.message.bytes) while its stock updates are written to other
// partitions: 503, and a read_committed consumer never sees any of it,
// although the stock updates were written (read_uncommitted sees them); the
// next request is committed.
func TestBridgeTransactionPartialFailure(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnvSeeded(t, b, partitions, "bridge-inventory")
		inventory, orders := e.topic("bridge-inventory"), e.topic("bridge-order-small")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		small := "100"
		if resp, err := e.admin.CreateTopic(ctx, 1, -1, map[string]*string{"max.message.bytes": &small}, orders); err != nil || resp.Err != nil {
			t.Fatalf("create %s: %v %v", orders, err, resp.Err)
		}
		srv, _, reg := startBridgeReg(t, e.brokers, e.prefix+"bridge", 10*time.Second,
			map[topics.Domain]string{topics.DomainInventory: inventory, topics.DomainOrder: orders})

		resp := postSigned(t, srv.URL, bridge.ContentTypeBatch, "["+bridgeStock("SKU-A", 1)+","+bridgeStock("SKU-B", 1)+","+bridgeOrder("100000001")+"]")
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("mixed batch: %d Retry-After=%q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		// Written part-way...
		consumeIDs(t, e.brokers, kgo.ReadUncommitted(), []string{inventory}, seenAll("br-SKU-A-1", "br-SKU-B-1"))

		if resp := postSigned(t, srv.URL, bridge.ContentTypeBatch, "["+bridgeStock("SKU-A", 2)+","+bridgeStock("SKU-B", 2)+"]"); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("after the failure: %d", resp.StatusCode)
		}
		// ...and aborted: version 2 follows on the same partitions.
		seen := consumeIDs(t, e.brokers, kgo.ReadCommitted(), []string{inventory, orders}, seenAll("br-SKU-A-2", "br-SKU-B-2"))
		if seen["br-SKU-A-1"]+seen["br-SKU-B-1"]+seen["br-100000001"] != 0 {
			t.Errorf("read_committed saw the failed request: %v", seen)
		}
		if got := gathered(t, reg, "shopstream_bridge_transactions_total", "aborted"); got != 1 {
			t.Errorf("%v aborted transactions, want 1", got)
		}
	})
}

// Concurrent requests are all answered 202, and every event lands exactly
// once.
func TestBridgeConcurrentRequests(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnvSeeded(t, b, partitions, "bridge-inventory", "bridge-order")
		inventory, orders := e.topic("bridge-inventory"), e.topic("bridge-order")
		srv, _, reg := startBridgeReg(t, e.brokers, e.prefix+"bridge", 10*time.Second,
			map[topics.Domain]string{topics.DomainInventory: inventory, topics.DomainOrder: orders})
		const n = 24
		var (
			wg  sync.WaitGroup
			ids []string
		)
		codes := make([]int, n)
		for i := range n {
			sku, ord := fmt.Sprintf("SKU-%02d", i), fmt.Sprintf("1000002%02d", i)
			ids = append(ids, "br-"+sku+"-1", "br-"+ord)
			body := "[" + bridgeStock(sku, 1) + "," + bridgeOrder(ord) + "]"
			wg.Go(func() { codes[i] = postSigned(t, srv.URL, bridge.ContentTypeBatch, body).StatusCode })
		}
		wg.Wait()
		for i, c := range codes {
			if c != http.StatusAccepted {
				t.Errorf("request %d: %d", i, c)
			}
		}
		seen := consumeIDs(t, e.brokers, kgo.ReadCommitted(), []string{inventory, orders}, seenAll(ids...))
		for _, id := range ids {
			if seen[id] != 1 {
				t.Errorf("%s seen %d times", id, seen[id])
			}
		}
		if len(seen) != len(ids) {
			t.Errorf("%d distinct events, want %d", len(seen), len(ids))
		}
		if got := histogramSum(t, reg, "shopstream_bridge_transaction_requests"); got != n {
			t.Errorf("transactions carried %v requests, want %d", got, n)
		}
	})
}

// A bridge restarted with the same transactional id aborts at once what its
// previous incarnation left open — read_committed consumers of those
// partitions, stuck behind the open transaction, go on — and that
// incarnation, if still alive (a zombie), cannot commit anymore.
func TestBridgeRestartAbortsOpenTransaction(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnvSeeded(t, b, 1, "bridge-inventory")
		inventory := e.topic("bridge-inventory")
		txnID := e.prefix + "bridge"
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()

		zombie, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.TransactionalID(txnID), kgo.TransactionTimeout(10*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		defer zombie.Close()
		if err := zombie.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := zombie.ProduceSync(ctx, &kgo.Record{Topic: inventory, Value: []byte(bridgeStock("SKU-Z", 1))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		plain, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		if err := plain.ProduceSync(ctx, &kgo.Record{Topic: inventory, Value: []byte(bridgeStock("SKU-P", 1))}).FirstErr(); err != nil {
			t.Fatal(err)
		}

		startBridge(t, e.brokers, txnID, 10*time.Second, map[topics.Domain]string{topics.DomainInventory: inventory})
		// Long before the zombie's 10-minute transaction timeout.
		seen := consumeIDs(t, e.brokers, kgo.ReadCommitted(), []string{inventory}, seenAll("br-SKU-P-1"))
		if seen["br-SKU-Z-1"] != 0 {
			t.Errorf("read_committed saw the zombie's record: %v", seen)
		}
		if err := zombie.EndTransaction(ctx, kgo.TryCommit); err == nil {
			t.Error("the zombie committed")
		}
	})
}

// Two processes with one transactional id (a misconfiguration, or a zombie
// still running after its replica was replaced): the newer fences the
// older, which answers 503 from then on and reports it on /readyz, without
// fencing the newer back.
func TestBridgeFencedByNewerReplica(t *testing.T) {
	eachRealBackend(t, func(t *testing.T, b *backend) {
		e := newEnvSeeded(t, b, partitions, "bridge-inventory")
		inventory := e.topic("bridge-inventory")
		tps := map[topics.Domain]string{topics.DomainInventory: inventory}
		txnID := e.prefix + "bridge"
		old, oldProd, oldReg := startBridgeReg(t, e.brokers, txnID, 10*time.Second, tps)
		if resp := postSigned(t, old.URL, bridge.ContentTypeStructured, bridgeStock("SKU-1", 1)); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("before: %d", resp.StatusCode)
		}
		newer, _ := startBridge(t, e.brokers, txnID, 10*time.Second, tps)
		if resp := postSigned(t, newer.URL, bridge.ContentTypeStructured, bridgeStock("SKU-1", 2)); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("newer: %d", resp.StatusCode)
		}
		for v := int64(3); v <= 4; v++ {
			if resp := postSigned(t, old.URL, bridge.ContentTypeStructured, bridgeStock("SKU-1", v)); resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("fenced bridge, version %d: %d", v, resp.StatusCode)
			}
		}
		if err := oldProd.Ping(context.Background()); !errors.Is(err, bridge.ErrFenced) {
			t.Errorf("fenced bridge's Ping: %v", err)
		}
		resp, err := http.Get(old.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("fenced bridge's /readyz: %d", resp.StatusCode)
		}
		if got := gathered(t, oldReg, "shopstream_bridge_fenced", ""); got != 1 {
			t.Errorf("shopstream_bridge_fenced = %v", got)
		}
		if resp := postSigned(t, newer.URL, bridge.ContentTypeStructured, bridgeStock("SKU-1", 5)); resp.StatusCode != http.StatusAccepted {
			t.Errorf("the newer bridge was fenced back: %d", resp.StatusCode)
		}
		seen := consumeIDs(t, e.brokers, kgo.ReadCommitted(), []string{inventory}, seenAll("br-SKU-1-1", "br-SKU-1-2", "br-SKU-1-5"))
		if seen["br-SKU-1-3"]+seen["br-SKU-1-4"] != 0 {
			t.Errorf("read_committed saw the fenced bridge's requests: %v", seen)
		}
	})
}

// gathered sums the samples of a counter or gauge, or of those with the
// label value.
func gathered(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
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
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// histogramSum is the sum of a histogram's observations.
func histogramSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetHistogram().GetSampleSum()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
