// Package kafkatest chooses the Kafka a test suite runs on and gives each
// test its brokers: kfake (franz-go's in-process Kafka, a new cluster per
// test, spoken to over TCP) and a real Apache Kafka shared by the suite.
//
// The environment decides, the same way for every suite:
//
//   - SHOPSTREAM_TEST_KAFKA: both (default), kfake or real;
//   - SHOPSTREAM_TEST_BROKERS: a running real cluster to use; without it a
//     single real node is started from the cached Maven jars (test/realkafka).
package kafkatest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shopstream/shopstream/test/realkafka"
)

// Backend is a Kafka the suite runs on.
type Backend struct {
	// Name names the subtests: kfake, kafka (SHOPSTREAM_TEST_BROKERS) or kafka-<version>.
	Name string
	// Shared are the brokers of a real cluster; nil for kfake.
	Shared []string
	// Cluster is set when this process started the real cluster.
	Cluster *realkafka.Cluster
}

// Real reports whether b is a real Apache Kafka.
func (b *Backend) Real() bool { return b.Shared != nil }

// Brokers returns where the test's Kafka listens: the shared cluster, or a
// new kfake cluster closed when the test ends.
func (b *Backend) Brokers(t testing.TB) []string {
	t.Helper()
	if b.Shared != nil {
		return b.Shared
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// Setup returns the backends the environment asks for, starting a real node
// under dir when needed; stop releases it. suite names the suite in messages.
func Setup(suite, dir string) (backends []*Backend, stop func(), err error) {
	stop = func() {}
	mode := os.Getenv("SHOPSTREAM_TEST_KAFKA")
	switch mode {
	case "", "both", "kfake", "real":
	default:
		return nil, stop, fmt.Errorf("SHOPSTREAM_TEST_KAFKA=%q: want both (default), kfake or real", mode)
	}
	if mode != "real" {
		backends = append(backends, &Backend{Name: "kfake"})
	}
	if mode == "kfake" {
		return backends, stop, nil
	}
	if addrs := os.Getenv("SHOPSTREAM_TEST_BROKERS"); addrs != "" {
		fmt.Printf("%s: real Kafka at %s (SHOPSTREAM_TEST_BROKERS)\n", suite, addrs)
		return append(backends, &Backend{Name: "kafka", Shared: strings.Split(addrs, ",")}), stop, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := realkafka.Start(ctx, realkafka.Options{Dir: filepath.Join(dir, "kafka"), Log: func(f string, a ...any) { fmt.Printf(f+"\n", a...) }})
	if err != nil {
		return nil, stop, fmt.Errorf("start a real Kafka for the %s: %w\n(set SHOPSTREAM_TEST_BROKERS to use a running cluster, or SHOPSTREAM_TEST_KAFKA=kfake to run on kfake only)", suite, err)
	}
	fmt.Printf("%s: Apache Kafka %s at %s\n", suite, realkafka.Version, strings.Join(c.Brokers(), ","))
	return append(backends, &Backend{Name: "kafka-" + realkafka.Version, Shared: c.Brokers(), Cluster: c}), c.Stop, nil
}

// Each runs f as a subtest on every backend.
func Each(t *testing.T, backends []*Backend, f func(t *testing.T, b *Backend)) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) { f(t, b) })
	}
}

// EachReal runs f on every real Kafka backend. Without one (only when
// SHOPSTREAM_TEST_KAFKA=kfake opted out of real Kafka) the test is
// skipped, and says why.
func EachReal(t *testing.T, backends []*Backend, f func(t *testing.T, b *Backend)) {
	ran := false
	for _, b := range backends {
		if b.Real() {
			ran = true
			t.Run(b.Name, func(t *testing.T) { f(t, b) })
		}
	}
	if !ran {
		t.Skip("needs a real Kafka; SHOPSTREAM_TEST_KAFKA=kfake excluded it")
	}
}

// CreateTopics creates names with parts partitions (the broker's default
// replication) and waits until every partition has a leader.
func CreateTopics(ctx context.Context, adm *kadm.Client, parts int32, names ...string) error {
	resp, err := adm.CreateTopics(ctx, parts, -1, nil, names...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("create topics %v: %w", names, err)
	}
	for {
		md, err := adm.Metadata(ctx, names...)
		ready := err == nil
		for _, n := range names {
			td, ok := md.Topics[n]
			if !ok || td.Err != nil || len(td.Partitions) != int(parts) {
				ready = false
				break
			}
			for _, p := range td.Partitions {
				if p.Leader < 0 || p.Err != nil {
					ready = false
				}
			}
		}
		if ready {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("topics %v have no leaders: %w", names, ctx.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
