package integration

import (
	"fmt"
	"os"
	"testing"

	"github.com/shopstream/shopstream/internal/kafkatest"
)

// backend is a Kafka the suite runs on: kfake (a new in-process cluster per
// test, over TCP) or a real Apache Kafka shared by the tests
// (internal/kafkatest).
type backend = kafkatest.Backend

var backends []*backend

// TestMain chooses the brokers the suite runs on: kfake, always (unless
// SHOPSTREAM_TEST_KAFKA=real), and a real Apache Kafka: the cluster named by
// SHOPSTREAM_TEST_BROKERS, or else a single node started here, unless
// SHOPSTREAM_TEST_KAFKA=kfake.
func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "shopstream-kafka-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bs, stop, err := kafkatest.Setup("integration suite", dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	backends = bs
	return m.Run()
}

// eachBackend runs f as a subtest on every backend.
func eachBackend(t *testing.T, f func(t *testing.T, b *backend)) {
	kafkatest.Each(t, backends, f)
}

// eachRealBackend runs f on every real Kafka backend (or skips, saying why).
func eachRealBackend(t *testing.T, f func(t *testing.T, b *backend)) {
	kafkatest.EachReal(t, backends, f)
}
