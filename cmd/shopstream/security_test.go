package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/internal/redistest"
	"github.com/shopstream/shopstream/internal/testcert"
	"github.com/shopstream/shopstream/test/realkafka"
)

// Secrets of the secure test stack; the output scans look for each.
const (
	kafkaUser     = "shopstream-svc"
	kafkaPassword = "kafka-Pw-7f3a9c2e"
	redisUser     = "shopstream-acl"
	redisPassword = "redis-Pw-41be0d77"
)

// secureStack is a real Apache Kafka with a SASL_SSL listener and its CA.
type secureStack struct {
	cluster *realkafka.Cluster
	caFile  string
	dir     string
	err     error
}

var (
	secureOnce sync.Once
	secure     secureStack
)

func TestMain(m *testing.M) {
	code := m.Run()
	if secure.cluster != nil {
		secure.cluster.Stop()
	}
	if secure.dir != "" {
		os.RemoveAll(secure.dir)
	}
	os.Exit(code)
}

// secureKafka starts (once per test binary) a single real Kafka node with a
// SASL_SSL listener: a certificate for 127.0.0.1 from a CA generated here,
// PLAIN and SCRAM users created at format time. SHOPSTREAM_TEST_KAFKA=kfake
// skips the tests that need it.
func secureKafka(t *testing.T) *secureStack {
	t.Helper()
	if os.Getenv("SHOPSTREAM_TEST_KAFKA") == "kfake" {
		t.Skip("SHOPSTREAM_TEST_KAFKA=kfake: the SASL_SSL tests need a real Kafka")
	}
	secureOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shopstream-secure-kafka-")
		if err != nil {
			secure.err = err
			return
		}
		secure.dir = dir
		ca, err := testcert.NewCA("shopstream test kafka CA")
		if err != nil {
			secure.err = err
			return
		}
		files, err := ca.WriteFiles(dir, "127.0.0.1", "localhost")
		if err != nil {
			secure.err = err
			return
		}
		secure.caFile = files.CA
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		secure.cluster, secure.err = realkafka.Start(ctx, realkafka.Options{
			Dir: filepath.Join(dir, "kafka"),
			SASLSSL: &realkafka.SASLSSL{CertFile: files.Cert, KeyFile: files.Key,
				Users: map[string]string{kafkaUser: kafkaPassword}},
		})
		if secure.err != nil {
			return
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(secure.cluster.Brokers()...))
		if err != nil {
			secure.err = err
			return
		}
		defer cl.Close()
		all := devstack.DefaultTopics()
		resp, err := kadm.NewClient(cl).CreateTopics(ctx, 6, -1, nil, all...)
		if err == nil {
			err = resp.Error()
		}
		secure.err = err
	})
	if secure.err != nil {
		t.Fatalf("secure Kafka: %v", secure.err)
	}
	return &secure
}

// secureEnv is the environment of a deployment on the secure stack, with
// the secrets in environment variables and files as the chart sets them.
func secureEnv(t *testing.T, k *secureStack, rs *redistest.Server, sim *devstack.Simulator, mechanism string) map[string]string {
	pwFile := filepath.Join(t.TempDir(), "kafka-password")
	if err := os.WriteFile(pwFile, []byte(kafkaPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"SHOPSTREAM_BROKERS":                  strings.Join(k.cluster.SecureBrokers(), ","),
		"SHOPSTREAM_KAFKA_TLS":                "true",
		"SHOPSTREAM_KAFKA_TLS_CA_FILE":        k.caFile,
		"SHOPSTREAM_KAFKA_SASL_MECHANISM":     mechanism,
		"SHOPSTREAM_KAFKA_SASL_USERNAME":      kafkaUser,
		"SHOPSTREAM_KAFKA_SASL_PASSWORD_FILE": pwFile,
		"SHOPSTREAM_REDIS_URL":                "rediss://" + redisUser + "@" + rs.Addr() + "/0",
		"SHOPSTREAM_REDIS_PASSWORD":           redisPassword,
		"SHOPSTREAM_REDIS_TLS_CA_FILE":        rs.CAFile(),
		"SHOPSTREAM_MAGENTO_URL":              sim.URL(),
		"SHOPSTREAM_MAGENTO_TOKEN":            sim.Token(),
		"SHOPSTREAM_CRM_URL":                  sim.WebhookURL(devstack.SinkCRM),
		"SHOPSTREAM_FRAUD_URL":                sim.WebhookURL(devstack.SinkFraud),
		"SHOPSTREAM_EMAIL_URL":                sim.WebhookURL(devstack.SinkEmail),
		"SHOPSTREAM_LOG_LEVEL":                "debug",
	}
}

func startSim(t *testing.T) *devstack.Simulator {
	sim := devstack.NewSimulator()
	if _, err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

var emailRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+`)

// emailsOf returns every e-mail address in the produced records.
func emailsOf(m *devstack.Manifest) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range m.Records {
		for _, e := range emailRE.FindAllString(string(r.Value), -1) {
			if !seen[e] {
				seen[e] = true
				out = append(out, e)
			}
		}
	}
	return out
}

// assertNoLeak fails when output holds a secret or an address.
func assertNoLeak(t *testing.T, what, output string, secrets, emails []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(output, s) {
			t.Errorf("%s contains the secret %q", what, s)
		}
	}
	for _, e := range emails {
		if strings.Contains(output, e) {
			t.Errorf("%s contains the customer e-mail %q", what, e)
		}
	}
}

// `shopstream run` over Kafka SASL_SSL (SCRAM-SHA-512, password from a
// file) and Redis TLS with an ACL user: the traffic is applied with the
// verdict holding, the admin commands work over the same settings, and
// nothing the process prints (stdout, stderr, debug logs included) holds a
// secret or a customer's e-mail, though orders are dead-lettered with the
// sinks' 4xx bodies.
func TestRunOverSASLSSLAndRedisTLS(t *testing.T) {
	k := secureKafka(t)
	rs := redistest.StartWith(t, redistest.Options{TLS: true, Users: map[string]string{redisUser: redisPassword}})
	sim := startSim(t)
	sim.SetToken("magento-Token-9c1d2e3f")
	// The email-marketing sink rejects every order with a 400 whose body
	// echoes the request, customer e-mail included, like many real APIs:
	// the processor logs the error and dead-letters the record.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"message":"invalid contact","request":%s}`, body)
	}))
	defer echo.Close()
	ctx := context.Background()
	env := secureEnv(t, k, rs, sim, "SCRAM-SHA-512")
	env["SHOPSTREAM_HTTP_ADDR"] = freeAddr(t)
	env["SHOPSTREAM_EMAIL_URL"] = echo.URL

	var stdout, stderr syncBuffer
	runCtx, sigterm := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(runCtx, []string{"run"}, &stdout, &stderr, envOf(env)) }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(k.cluster.Brokers()...)) // the plaintext listener, for the test's side
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	manifest, err := devstack.Generate(ctx, cl, devstack.GenConfig{Seed: 11, SKUs: 15, StockUpdates: 100, Orders: 20, Customers: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := waitCaughtUp(ctx, kadm.NewClient(cl), 3*time.Minute); err != nil {
		sigterm()
		<-done
		t.Fatalf("%v\nlogs:\n%s", err, stderr.String())
	}
	sigterm()
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("run did not stop within 60s")
	}
	if runErr != nil {
		t.Fatalf("run: %v\n%s", runErr, stderr.String())
	}
	dlq, err := devstack.ReadDLQ(ctx, cl, devstack.DLQTopics())
	if err != nil {
		t.Fatal(err)
	}
	var groups []devstack.GroupSpec
	for _, g := range devstack.DefaultGroups() {
		if g.Name != "order-email" { // its sink rejects everything here
			groups = append(groups, g)
		}
	}
	v := devstack.Check(manifest, sim.Calls(), dlq, groups)
	if !v.OK() {
		t.Errorf("verdict over SASL_SSL + Redis TLS failed:\n%s", v)
	}

	// The admin commands connect with the same settings (PLAIN this time).
	adminEnv := secureEnv(t, k, rs, sim, "PLAIN")
	var lagOut, lagErr bytes.Buffer
	if err := run(ctx, []string{"lag", "--json"}, &lagOut, &lagErr, envOf(adminEnv)); err != nil {
		t.Errorf("lag over SASL_SSL/PLAIN: %v\n%s", err, lagErr.String())
	} else if !strings.Contains(lagOut.String(), "shopstream.inventory") {
		t.Errorf("lag output lacks the inventory group:\n%s", lagOut.String())
	}

	emails := emailsOf(manifest)
	if len(emails) == 0 {
		t.Fatal("the traffic has no e-mail addresses to look for")
	}
	secrets := []string{kafkaPassword, redisPassword, sim.Token()}
	out := stdout.String() + stderr.String() + lagOut.String() + lagErr.String()
	if !strings.Contains(out, "record dead-lettered") || !strings.Contains(out, "[email redacted]") {
		t.Error("no error quoting an e-mail was logged: the scan would prove little")
	}
	assertNoLeak(t, "the output of run and lag", out, secrets, emails)
	emailDLQ := 0
	for _, r := range dlq {
		if r.Headers["shopstream.group"] == "shopstream.order-email" {
			emailDLQ++
		}
		assertNoLeak(t, "a dead letter's error header", r.Headers["shopstream.error"], secrets, emails)
	}
	if emailDLQ == 0 {
		t.Error("no order was dead-lettered by the rejecting email sink")
	}
}

// Wrong credentials and untrusted certificates stop the start-up at once
// with an error that names the setting to fix and holds no secret.
func TestStartupFailsFastOnBadCredentials(t *testing.T) {
	k := secureKafka(t)
	rs := redistest.StartWith(t, redistest.Options{TLS: true, Users: map[string]string{redisUser: redisPassword}})
	sim := startSim(t)
	otherCA, err := testcert.NewCA("someone else's CA")
	if err != nil {
		t.Fatal(err)
	}
	otherCAFile := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(otherCAFile, otherCA.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(env map[string]string)
		cmd   []string
		wants []string
	}{
		{"kafka wrong password", func(e map[string]string) {
			delete(e, "SHOPSTREAM_KAFKA_SASL_PASSWORD_FILE")
			e["SHOPSTREAM_KAFKA_SASL_PASSWORD"] = "not-the-password"
		}, []string{"run"}, []string{"SASL", "SHOPSTREAM_KAFKA_SASL_PASSWORD"}},
		{"kafka wrong password, admin", func(e map[string]string) {
			delete(e, "SHOPSTREAM_KAFKA_SASL_PASSWORD_FILE")
			e["SHOPSTREAM_KAFKA_SASL_PASSWORD"] = "not-the-password"
		}, []string{"topics", "describe"}, []string{"SASL", "SHOPSTREAM_KAFKA_SASL_PASSWORD"}},
		{"kafka untrusted CA", func(e map[string]string) { e["SHOPSTREAM_KAFKA_TLS_CA_FILE"] = otherCAFile },
			[]string{"run"}, []string{"not trusted", "SHOPSTREAM_KAFKA_TLS_CA_FILE"}},
		{"kafka TLS listener without TLS", func(e map[string]string) {
			for _, k := range []string{"SHOPSTREAM_KAFKA_TLS", "SHOPSTREAM_KAFKA_TLS_CA_FILE"} {
				delete(e, k)
			}
		}, []string{"lag"}, []string{"SHOPSTREAM_KAFKA_TLS"}},
		{"redis wrong password", func(e map[string]string) { e["SHOPSTREAM_REDIS_PASSWORD"] = "not-the-password" },
			[]string{"run"}, []string{"redis authentication failed", "SHOPSTREAM_REDIS_PASSWORD"}},
		{"redis untrusted CA", func(e map[string]string) { e["SHOPSTREAM_REDIS_TLS_CA_FILE"] = otherCAFile },
			[]string{"run"}, []string{"redis TLS", "SHOPSTREAM_REDIS_TLS_CA_FILE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := secureEnv(t, k, rs, sim, "SCRAM-SHA-256")
			env["SHOPSTREAM_HTTP_ADDR"] = freeAddr(t)
			tc.edit(env)
			var stdout, stderr syncBuffer
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			err := run(ctx, tc.cmd, &stdout, &stderr, envOf(env))
			took := time.Since(start)
			t.Logf("%s: %v", tc.name, err)
			if err == nil {
				t.Fatal("started, want a start-up error")
			}
			if took > 20*time.Second {
				t.Errorf("took %s to fail; want a fast start-up failure, not a retry loop", took)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			all := fmt.Sprint(err) + stdout.String() + stderr.String()
			assertNoLeak(t, "the error and output", all, []string{kafkaPassword, redisPassword, "not-the-password", sim.Token()}, nil)
		})
	}
}

// The demo's output (human and --json) holds none of its generated
// customers' e-mail addresses.
func TestDemoOutputHasNoCustomerEmails(t *testing.T) {
	var stdout, stderr syncBuffer
	err := run(context.Background(), []string{"demo", "--log-level", "debug", "--skus", "10", "--stock-updates", "60", "--orders", "25", "--customers", "12"},
		&stdout, &stderr, envOf(nil))
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, stdout.String())
	}
	out := stdout.String() + stderr.String()
	if m := emailRE.FindAllString(out, 5); len(m) > 0 {
		t.Errorf("the demo output holds e-mail addresses: %v", m)
	}
}
