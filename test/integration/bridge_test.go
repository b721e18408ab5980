package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(e.brokers...)}, bridge.ProducerOpts(10*time.Second)...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		h, err := bridge.New(bridge.Config{Producer: cl, Secrets: [][]byte{bridgeSecret},
			Topics: map[topics.Domain]string{topics.DomainInventory: topic}})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()

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

// Kafka unreachable: 503 with Retry-After within the produce timeout.
func TestBridgeKafkaDown(t *testing.T) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}, bridge.ProducerOpts(2*time.Second)...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	h, err := bridge.New(bridge.Config{Producer: cl, Secrets: [][]byte{bridgeSecret}, ProduceTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	start := time.Now()
	resp := postSigned(t, srv.URL, bridge.ContentTypeStructured, bridgeStock("SKU-1", 1))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d Retry-After=%q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("503 after %s; want it within the produce timeout", d)
	}
}
