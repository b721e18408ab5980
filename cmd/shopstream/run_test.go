package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/internal/gctune"
	"github.com/shopstream/shopstream/internal/redistest"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// service is one `shopstream run`, configured by flags and environment like
// a deployment, with the simulator's sinks.
type service struct {
	httpAddr string
	logs     *syncBuffer
	cl       *kgo.Client
	manifest *devstack.Manifest
	sigterm  context.CancelFunc
	done     chan error
}

// startService starts `shopstream run` on kafka and the Redis at redisURL,
// produces gen's traffic and waits until every group has caught up.
func startService(t *testing.T, ctx context.Context, kafka *devstack.Kafka, redisURL string, sim *devstack.Simulator, gen devstack.GenConfig) *service {
	t.Helper()
	svc := &service{httpAddr: freeAddr(t), logs: &syncBuffer{}, done: make(chan error, 1)}
	env := map[string]string{
		"SHOPSTREAM_BROKERS":       strings.Join(kafka.Addrs(), ","),
		"SHOPSTREAM_REDIS_URL":     redisURL,
		"SHOPSTREAM_MAGENTO_TOKEN": sim.Token(),
		"SHOPSTREAM_CRM_URL":       sim.WebhookURL(devstack.SinkCRM),
		"SHOPSTREAM_FRAUD_URL":     sim.WebhookURL(devstack.SinkFraud),
		"SHOPSTREAM_EMAIL_URL":     sim.WebhookURL(devstack.SinkEmail),
	}
	args := []string{"run", "--magento-url", sim.URL(), "--http-addr", svc.httpAddr}
	runCtx, sigterm := context.WithCancel(ctx)
	svc.sigterm = sigterm
	go func() { svc.done <- run(runCtx, args, io.Discard, svc.logs, envOf(env)) }()
	t.Cleanup(func() {
		// Stopped already (stop put its result back), or the test ended
		// before stop: either way run's goroutine gets to finish.
		sigterm()
		select {
		case <-svc.done:
		case <-time.After(60 * time.Second):
		}
	})

	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	svc.cl = cl
	if svc.manifest, err = devstack.Generate(ctx, cl, gen); err != nil {
		t.Fatal(err)
	}
	if err := waitCaughtUp(ctx, kadm.NewClient(cl), 2*time.Minute); err != nil {
		t.Fatalf("%v\nlogs:\n%s", err, svc.logs)
	}
	return svc
}

// stop sends SIGTERM, requires a clean exit within 60 s and returns the
// verdict over what the simulator accepted and the DLQs hold.
func (svc *service) stop(t *testing.T, ctx context.Context, sim *devstack.Simulator) devstack.Verdict {
	t.Helper()
	svc.sigterm()
	select {
	case err := <-svc.done:
		svc.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("run returned %v after SIGTERM\nlogs:\n%s", err, svc.logs)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run did not stop within 60s of SIGTERM")
	}
	dlq, err := devstack.ReadDLQ(ctx, svc.cl, devstack.DLQTopics())
	if err != nil {
		t.Fatal(err)
	}
	return devstack.Check(svc.manifest, sim.Calls(), dlq, devstack.DefaultGroups())
}

// `shopstream run`, configured by flags and environment like a deployment,
// against an embedded broker, a real redis-server and the simulator: traffic
// from an outside producer is applied with the verdict holding, the HTTP
// endpoints answer, and SIGTERM exits cleanly.
func TestRunServiceEndToEnd(t *testing.T) {
	ctx := context.Background()
	kafka, err := devstack.StartKafka(ctx, devstack.KafkaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	rs := redistest.Start(t)
	sim := devstack.NewSimulator()
	if _, err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	sim.FailNext(devstack.SinkSourceItems, 3, 503, "")

	svc := startService(t, ctx, kafka, rs.URL(), sim, devstack.GenConfig{Seed: 7, SKUs: 20, StockUpdates: 150, Orders: 15, Customers: 8})
	httpAddr := svc.httpAddr

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d %s", code, body)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
	_, metrics := get("/metrics")
	for _, name := range []string{
		`shopstream_records_total{group="shopstream.inventory",outcome="applied",topic="commerce.inventory.v1"}`,
		"shopstream_retries_total", "shopstream_handler_duration_seconds", "shopstream_consumer_lag{",
		"shopstream_consumer_lag_seconds", "shopstream_inflight", "shopstream_paused", "shopstream_kafka_",
	} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	if v := svc.stop(t, ctx, sim); !v.OK() {
		t.Errorf("verdict failed:\n%s", v)
	}
	// Logs are JSON, one event per line, and never carry the token.
	for _, line := range strings.Split(strings.TrimSpace(svc.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			break
		}
	}
	if strings.Contains(svc.logs.String(), sim.Token()) {
		t.Error("the Magento token appears in the logs")
	}
	if !strings.Contains(svc.logs.String(), `"message":"record dead-lettered"`) {
		t.Error("no dead-letter log line, though the traffic has poison records")
	}
	// The collector is set before anything else starts (internal/gctune).
	wantGC := fmt.Sprintf(`"gc_percent":%d,"gc_percent_from":"default"`, gctune.DefaultPercent)
	if os.Getenv("GOGC") != "" {
		wantGC = `"gc_percent_from":"GOGC"`
	}
	if !strings.Contains(svc.logs.String(), wantGC) {
		t.Errorf("no garbage collector log line with %s", wantGC)
	}
}

// `shopstream demo --json` prints one JSON object with the contract totals
// and exits 0 with the verdict holding.
func TestDemoJSON(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"demo", "--json", "--skus", "15", "--stock-updates", "120", "--orders", "10", "--customers", "6"},
		&out, io.Discard, envOf(nil))
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	var rep map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("demo --json output is not one JSON object: %v\n%s", err, out.String())
	}
	for _, k := range []string{"applied", "skipped_stale", "skipped_duplicate", "dead_lettered", "lost", "groups"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("demo --json lacks %q", k)
		}
	}
	if rep["lost"] != float64(0) || rep["ok"] != true {
		t.Errorf("lost=%v ok=%v, want 0 and true", rep["lost"], rep["ok"])
	}
	if rep["applied"].(float64) == 0 || rep["dead_lettered"].(float64) == 0 || rep["skipped_stale"].(float64) == 0 {
		t.Errorf("the demo traffic should apply, dead-letter and skip stale records: %v", rep)
	}
}

func TestUnknownCommand(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"frobnicate"}, io.Discard, &stderr, envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "frobnicate") || !strings.Contains(stderr.String(), "usage") {
		t.Errorf("err=%v stderr=%q", err, stderr.String())
	}
}
