package charttest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/bridge"
	"github.com/shopstream/shopstream/internal/devstack"
)

// Why the bridge is a StatefulSet, with the real binary and the rendered
// environment: a bridge pod that crashed left a transaction open on a
// partition, and read_committed consumers of that partition see nothing
// past it. A replacement with another pod name — what a Deployment gives —
// has another transactional id: it serves requests, but its committed
// events stay invisible behind the open transaction. The StatefulSet's
// replacement has the crashed pod's name, hence its id: starting, it
// aborts the open transaction, and consumers see every committed event at
// once, not after Kafka's transaction timeout.
func TestBridgeReplacementAbortsOpenTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real bridge against an embedded Kafka; skipped with -short")
	}
	var s *scenario
	for i := range scenarios {
		if sc := scenarios[i]; sc.bridge != nil && !sc.tls && !sc.sasl {
			s = &scenarios[i]
			break
		}
	}
	if s == nil {
		t.Fatal("no scenario with a bridge on plaintext Kafka")
	}
	m := decodeScenario(t, *s)
	topic := s.topics["inventory"]
	ctx := context.Background()
	kafka, err := devstack.StartKafka(ctx, devstack.KafkaOptions{Topics: []string{topic}, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	raw, _ := topologyOf(t, m)
	cfg := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(cfg, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	pod := bridgePodName(m, 1)

	// The crashed pod: a transaction of its id, open, with one record.
	crashed, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addrs()...), kgo.TransactionalID(pod),
		kgo.TransactionTimeout(10*time.Minute), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer crashed.Close()
	if err := crashed.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := crashed.ProduceSync(ctx, &kgo.Record{Key: []byte("SKU-CRASHED"), Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := map[string]bool{} // record keys read_committed consumers see
	poll := func(d time.Duration, until func() bool) {
		pctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		for !until() && pctx.Err() == nil {
			consumer.PollFetches(pctx).EachRecord(func(r *kgo.Record) { seen[string(r.Key)] = true })
		}
	}

	// A replacement named as a Deployment's would be.
	deployPod := m.Bridge.Name + "-7d9f8b6c5-x2x4q"
	b := startBridge(t, m, deployPod, cfg, kafka.Addrs())
	if code := b.post(t, "evt-deployment-pod", "SKU-DEPLOYMENT-POD"); code != http.StatusAccepted {
		t.Fatalf("bridge %s: POST answered %d\n%s", deployPod, code, b.logs)
	}
	b.stop(t)
	poll(2*time.Second, func() bool { return len(seen) > 0 })
	if len(seen) > 0 {
		t.Fatalf("read_committed consumers saw %v past the open transaction: the test does not show what it should", seen)
	}

	// The StatefulSet's replacement: the crashed pod's name.
	b = startBridge(t, m, pod, cfg, kafka.Addrs())
	defer b.stop(t)
	poll(15*time.Second, func() bool { return seen["SKU-DEPLOYMENT-POD"] })
	if !seen["SKU-DEPLOYMENT-POD"] {
		t.Fatalf("the bridge pod %s did not abort the open transaction of its id: read_committed consumers still wait\n%s", pod, b.logs)
	}
	if code := b.post(t, "evt-statefulset-pod", "SKU-STATEFULSET-POD"); code != http.StatusAccepted {
		t.Fatalf("bridge %s: POST answered %d\n%s", pod, code, b.logs)
	}
	poll(15*time.Second, func() bool { return seen["SKU-STATEFULSET-POD"] })
	if !seen["SKU-STATEFULSET-POD"] || seen["SKU-CRASHED"] {
		t.Errorf("read_committed consumers saw %v; want both accepted events and not the aborted one", seen)
	}
	// The crashed pod, were it a zombie, cannot commit any more.
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := crashed.EndTransaction(ectx, kgo.TryCommit); err == nil {
		t.Error("the crashed pod's producer could still commit after its replacement started: it was not fenced")
	}
}

// runningBridge is `shopstream bridge` started by startBridge.
type runningBridge struct {
	base    string
	secret  string
	cmd     *exec.Cmd
	exited  chan error
	logs    *syncBuffer
	stopped bool
}

// startBridge runs the binary as the bridge pod named pod would: the
// container's args and rendered environment, with the brokers, the
// topology file and the listen address replaced; it returns once /readyz
// (the readiness probe's path) answers 200.
func startBridge(t *testing.T, m *manifests, pod, cfg string, brokers []string) *runningBridge {
	t.Helper()
	c := bridgeContainer(t, m)
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	env := containerEnv(t, c, pod, bridgeSecrets(), map[string]string{
		"SHOPSTREAM_CONFIG":        cfg,
		"SHOPSTREAM_BROKERS":       strings.Join(brokers, ","),
		"SHOPSTREAM_BRIDGE_LISTEN": addr,
	})
	b := &runningBridge{base: "http://" + addr, exited: make(chan error, 1), logs: &syncBuffer{}}
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "SHOPSTREAM_BRIDGE_SECRETS="); ok {
			b.secret, _, _ = strings.Cut(v, ",")
		}
	}
	b.cmd = exec.Command(shopstreamBinary(t), c.Args...)
	b.cmd.Env = env
	b.cmd.Stdout, b.cmd.Stderr = b.logs, b.logs
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.exited <- b.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-b.exited:
			b.stopped = true
			t.Fatalf("bridge %s exited before it was ready: %v\n%s", pod, err, b.logs)
		default:
		}
		cl := http.Client{Timeout: 2 * time.Second}
		if resp, err := cl.Get(b.base + c.ReadinessProbe.HTTPGet.Path); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.stop(t)
			t.Fatalf("bridge %s not ready within 30s\n%s", pod, b.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if want := fmt.Sprintf(`"transactional_id":%q`, pod); !strings.Contains(b.logs.String(), want) {
		t.Errorf("bridge %s started without %s in its log\n%s", pod, want, b.logs)
	}
	return b
}

// post sends one signed inventory event and returns the status code.
func (b *runningBridge) post(t *testing.T, id, sku string) int {
	t.Helper()
	body := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"erp/warehouse-feed","type":"inventory.stock.updated","subject":%q,`+
		`"time":"2026-11-27T10:00:00.123Z","version":1732701600123,"datacontenttype":"application/json",`+
		`"data":{"sku":%q,"source_code":"default","quantity":12,"status":1}}`, id, sku, sku)
	req, err := http.NewRequest(http.MethodPost, b.base+"/v1/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", bridge.ContentTypeStructured)
	ts, sig := bridge.Sign([]byte(b.secret), time.Now(), []byte(body))
	req.Header.Set(bridge.HeaderTimestamp, ts)
	req.Header.Set(bridge.HeaderSignature, sig)
	cl := http.Client{Timeout: 30 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/events: %v\n%s", err, b.logs)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// stop sends SIGTERM, as the kubelet does, and expects a clean exit.
func (b *runningBridge) stop(t *testing.T) {
	t.Helper()
	if b.stopped {
		return
	}
	b.stopped = true
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-b.exited:
		if err != nil {
			t.Errorf("bridge after SIGTERM: %v\n%s", err, b.logs)
		}
	case <-time.After(30 * time.Second):
		b.cmd.Process.Kill()
		<-b.exited
		t.Errorf("bridge did not stop within 30s of SIGTERM\n%s", b.logs)
	}
}
