package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/bridge"
)

func TestBridgeConfigErrors(t *testing.T) {
	_, err := parseBridgeConfig([]string{"--max-batch", "0", "--signature-window", "soon"}, envOf(map[string]string{envKafkaMechanism: "PLAIN"}))
	for _, w := range []string{"brokers: missing", "max-batch", "signature-window", "SHOPSTREAM_BRIDGE_SECRETS", "kafka-sasl-username"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	_, err = parseBridgeConfig([]string{"--nope"}, envOf(map[string]string{envBridgeSecrets: "bridge-secret-value-123456"}))
	if err == nil || strings.Contains(err.Error(), "bridge-secret-value-123456") || !strings.Contains(err.Error(), "secrets-file") {
		t.Errorf("usage: %v", err)
	}
	c, err := parseBridgeConfig(nil, envOf(map[string]string{"SHOPSTREAM_BROKERS": "k:9092", envBridgeSecrets: "new-secret-0123456789, old-secret-0123456789"}))
	if err != nil || len(c.Secrets) != 2 || string(c.Secrets[1]) != "old-secret-0123456789" || c.MaxBatch != 100 || c.Listen != ":8080" {
		t.Errorf("config %+v, %v", c, err)
	}
}

// The transactional id defaults to one derived from the host name (the pod
// name in Kubernetes: stable across restarts of a StatefulSet's pod); the
// environment, then the flag, override it.
func TestBridgeTransactionalID(t *testing.T) {
	env := map[string]string{"SHOPSTREAM_BROKERS": "k:9092", envBridgeSecrets: "new-secret-0123456789", "HOSTNAME": "bridge-2"}
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{nil, "", "shopstream-bridge-bridge-2"},
		{nil, "eu-west-bridge-a", "eu-west-bridge-a"},
		{[]string{"--transactional-id", "from-flag"}, "eu-west-bridge-a", "from-flag"},
	} {
		env["SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID"] = tc.env
		c, err := parseBridgeConfig(tc.args, envOf(env))
		if err != nil || c.TransactionalID != tc.want {
			t.Errorf("%v env %q: %q, %v; want %q", tc.args, tc.env, c.TransactionalID, err, tc.want)
		}
	}
	delete(env, "HOSTNAME")
	delete(env, "SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID")
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no host name:", err)
	}
	if c, err := parseBridgeConfig(nil, envOf(env)); err != nil || c.TransactionalID != "shopstream-bridge-"+host {
		t.Errorf("without HOSTNAME: %q, %v; want shopstream-bridge-%s", c.TransactionalID, err, host)
	}
}

// `shopstream bridge` over Kafka SASL_SSL: a signed event is acknowledged
// with 202 and is on Kafka; an unsigned one gets 401; /readyz and /metrics
// answer; SIGTERM stops it cleanly; its output holds no secret.
func TestBridgeCommandOverSASLSSL(t *testing.T) {
	k := secureKafka(t)
	secret := "bridge-Secret-5a6b7c8d9e0f"
	listen := freeAddr(t)
	env := map[string]string{
		"SHOPSTREAM_BROKERS":              strings.Join(k.cluster.SecureBrokers(), ","),
		"SHOPSTREAM_KAFKA_TLS_CA_FILE":    k.caFile,
		"SHOPSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
		"SHOPSTREAM_KAFKA_SASL_USERNAME":  kafkaUser,
		"SHOPSTREAM_KAFKA_SASL_PASSWORD":  kafkaPassword,
		"SHOPSTREAM_BRIDGE_SECRETS":       secret,
		"SHOPSTREAM_BRIDGE_LISTEN":        listen,
		// Unique per run: the cluster is shared by the package's tests.
		"SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID": fmt.Sprintf("bridge-cmd-%d", time.Now().UnixNano()),
	}
	var stdout, stderr syncBuffer
	ctx, sigterm := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"bridge"}, &stdout, &stderr, envOf(env)) }()
	base := "http://" + listen
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			sigterm()
			t.Fatalf("bridge not ready: %v\n%s", err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	body := `{"specversion":"1.0","id":"bridge-cmd-1","source":"magento","type":"customer.created","subject":"CUST-77","time":"2026-11-27T10:00:00.000Z","datacontenttype":"application/json","data":{"customer_id":"CUST-77","email":"zoe.quinn@example.org","first_name":"Zoe","last_name":"Quinn"}}`
	post := func(sign bool) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/events", strings.NewReader(body))
		req.Header.Set("Content-Type", bridge.ContentTypeStructured)
		if sign {
			ts, sig := bridge.Sign([]byte(secret), time.Now(), []byte(body))
			req.Header.Set(bridge.HeaderTimestamp, ts)
			req.Header.Set(bridge.HeaderSignature, sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(true); code != http.StatusAccepted {
		t.Errorf("signed: %d\n%s", code, stderr.String())
	}
	if code := post(false); code != http.StatusUnauthorized {
		t.Errorf("unsigned: %d", code)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var m bytes.Buffer
	io.Copy(&m, resp.Body)
	resp.Body.Close()
	for _, w := range []string{`shopstream_bridge_requests_total{status="202"} 1`, `shopstream_bridge_auth_failures_total{reason="missing"} 1`,
		`shopstream_bridge_events_total{type="customer.created"} 1`, "shopstream_bridge_produce_duration_seconds",
		`shopstream_bridge_transactions_total{outcome="committed"} 1`} {
		if !strings.Contains(m.String(), w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
	sigterm()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("bridge: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("bridge did not stop")
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(k.cluster.Brokers()...), kgo.ConsumeTopics("commerce.customer.v1"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The bridge wrote with the configured transactional id.
	txns, err := kadm.NewClient(cl).DescribeTransactions(fctx, env["SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID"])
	if d, ok := txns[env["SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID"]]; err != nil || !ok || d.Err != nil || d.ProducerID < 0 {
		t.Errorf("transactional id %s: %+v, %v", env["SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID"], d, err)
	}
	found := false
	for !found && fctx.Err() == nil {
		cl.PollFetches(fctx).EachRecord(func(r *kgo.Record) {
			if string(r.Key) == "CUST-77" && strings.Contains(string(r.Value), "bridge-cmd-1") {
				found = true
			}
		})
	}
	if !found {
		t.Error("the accepted event is not on commerce.customer.v1")
	}
	assertNoLeak(t, "the bridge's output", stdout.String()+stderr.String(), []string{secret, kafkaPassword}, []string{"zoe.quinn@example.org"})
}
