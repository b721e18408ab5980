package devstack_test

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/devstack"
)

// startKafka starts an embedded Kafka and a client for it, both closed at the
// end of the test.
func startKafka(t *testing.T, opts devstack.KafkaOptions) (*devstack.Kafka, *kgo.Client) {
	t.Helper()
	k, err := devstack.StartKafka(context.Background(), opts)
	if err != nil {
		t.Fatalf("StartKafka: %v", err)
	}
	t.Cleanup(k.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...))
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return k, cl
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStartKafkaCreatesDefaultTopics(t *testing.T) {
	t.Parallel()
	_, cl := startKafka(t, devstack.KafkaOptions{})
	details, err := kadm.NewClient(cl).ListTopics(testContext(t))
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	want := []string{
		"commerce.catalog.v1", "commerce.catalog.v1.dlq",
		"commerce.customer.v1", "commerce.customer.v1.dlq",
		"commerce.inventory.v1", "commerce.inventory.v1.dlq",
		"commerce.order.v1", "commerce.order.v1.dlq",
	}
	if got := details.Names(); !slices.Equal(got, want) {
		t.Fatalf("topics = %v, want %v", got, want)
	}
	for _, td := range details {
		if len(td.Partitions) != devstack.DefaultPartitions {
			t.Errorf("%s has %d partitions, want %d", td.Topic, len(td.Partitions), devstack.DefaultPartitions)
		}
	}
}

func TestStartKafkaOptions(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	listen := "127.0.0.1:" + strconv.Itoa(port)

	k, cl := startKafka(t, devstack.KafkaOptions{Listen: listen, Partitions: 2, Topics: []string{"a", "b.dlq"}})
	if got := k.Addrs(); !slices.Equal(got, []string{listen}) {
		t.Fatalf("Addrs() = %v, want [%s]", got, listen)
	}
	ctx := testContext(t)
	details, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	if got := details.Names(); !slices.Equal(got, []string{"a", "b.dlq"}) {
		t.Fatalf("topics = %v, want [a b.dlq]", got)
	}
	if n := len(details["a"].Partitions); n != 2 {
		t.Fatalf("a has %d partitions, want 2", n)
	}
	// Automatic topic creation is off.
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := cl.ProduceSync(pctx, &kgo.Record{Topic: "unknown", Value: []byte("x")}).FirstErr(); err == nil {
		t.Fatal("produce to an unknown topic succeeded")
	}
}

func TestStartKafkaRejectsBadOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts devstack.KafkaOptions
		want string
	}{
		{"unspecified host", devstack.KafkaOptions{Listen: "0.0.0.0:9092"}, "concrete address"},
		{"bad port", devstack.KafkaOptions{Listen: "127.0.0.1:http"}, "bad port"},
		{"no port", devstack.KafkaOptions{Listen: "127.0.0.1"}, "Listen"},
		{"negative partitions", devstack.KafkaOptions{Partitions: -1}, "Partitions"},
		{"empty topic", devstack.KafkaOptions{Topics: []string{"a", ""}}, "Topics[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := devstack.StartKafka(context.Background(), tc.opts)
			if err == nil {
				k.Close()
				t.Fatalf("StartKafka(%+v) succeeded", tc.opts)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}
