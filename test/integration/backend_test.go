package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shopstream/shopstream/test/realkafka"
)

// backend is a Kafka the suite runs on: kfake (a new in-process cluster per
// test, over TCP) or a real Apache Kafka shared by the tests.
type backend struct {
	name    string
	shared  []string           // brokers of a shared real cluster; nil for kfake
	cluster *realkafka.Cluster // set when this process started it
}

func (b *backend) real() bool { return b.shared != nil }

// brokers returns where the test's Kafka listens.
func (b *backend) brokers(t *testing.T) []string {
	t.Helper()
	if b.shared != nil {
		return b.shared
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

var backends []*backend

// TestMain chooses the brokers the suite runs on:
//
//   - kfake, always (unless SHOPSTREAM_TEST_KAFKA=real);
//   - a real Apache Kafka: the cluster named by SHOPSTREAM_TEST_BROKERS, or
//     else a single node started here from the cached Maven jars
//     (test/realkafka), unless SHOPSTREAM_TEST_KAFKA=kfake.
func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	mode := os.Getenv("SHOPSTREAM_TEST_KAFKA")
	switch mode {
	case "", "both", "kfake", "real":
	default:
		fmt.Fprintf(os.Stderr, "SHOPSTREAM_TEST_KAFKA=%q: want both (default), kfake or real\n", mode)
		return 2
	}
	if mode != "real" {
		backends = append(backends, &backend{name: "kfake"})
	}
	if mode != "kfake" {
		if addrs := os.Getenv("SHOPSTREAM_TEST_BROKERS"); addrs != "" {
			fmt.Printf("integration suite: real Kafka at %s (SHOPSTREAM_TEST_BROKERS)\n", addrs)
			backends = append(backends, &backend{name: "kafka", shared: strings.Split(addrs, ",")})
		} else {
			dir, err := os.MkdirTemp("", "shopstream-kafka-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			c, err := realkafka.Start(ctx, realkafka.Options{Dir: dir, Log: func(f string, a ...any) { fmt.Printf(f+"\n", a...) }})
			cancel()
			if err != nil {
				fmt.Fprintf(os.Stderr, "start a real Kafka for the integration suite: %v\n(set SHOPSTREAM_TEST_BROKERS to use a running cluster, or SHOPSTREAM_TEST_KAFKA=kfake to run on kfake only)\n", err)
				return 1
			}
			defer c.Stop()
			fmt.Printf("integration suite: Apache Kafka %s at %s\n", realkafka.Version, strings.Join(c.Brokers(), ","))
			backends = append(backends, &backend{name: "kafka-" + realkafka.Version, shared: c.Brokers(), cluster: c})
		}
	}
	return m.Run()
}

// eachBackend runs f as a subtest on every backend.
func eachBackend(t *testing.T, f func(t *testing.T, b *backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

// eachRealBackend runs f on every real Kafka backend. Without one (only
// when SHOPSTREAM_TEST_KAFKA=kfake opted out of real Kafka) the test is
// skipped, and says why.
func eachRealBackend(t *testing.T, f func(t *testing.T, b *backend)) {
	ran := false
	for _, b := range backends {
		if b.real() {
			ran = true
			t.Run(b.name, func(t *testing.T) { f(t, b) })
		}
	}
	if !ran {
		t.Skip("needs a real Kafka; SHOPSTREAM_TEST_KAFKA=kfake excluded it")
	}
}
