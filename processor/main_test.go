package processor

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/shopstream/shopstream/topics"
)

// TestMain fails the package if a test leaves a goroutine behind (a kgo
// client that was not closed, a group worker that did not stop).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// inventoryCluster starts a one-broker kfake cluster with the inventory
// topic, in the given number of partitions, and its dead-letter topic; it
// stops when the test ends.
func inventoryCluster(t *testing.T, partitions int32) *kfake.Cluster {
	t.Helper()
	topic := topics.TopicInventory
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic, topics.DLQTopic(topic)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// stockValue is an inventory.stock.updated event of sku at one source, with
// event id id.
func stockValue(id, sku, source string, version int64) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"erp","type":"inventory.stock.updated","subject":%q,"version":%d,"data":{"sku":%q,"source_code":%q,"quantity":%d,"status":1}}`,
		id, sku, version, sku, source, version)
}

// produce writes recs to c and fails the test unless Kafka acknowledged
// them all.
func produce(ctx context.Context, t *testing.T, c *kfake.Cluster, recs ...*kgo.Record) {
	t.Helper()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// running runs p until the test ends, then stops it and checks that Run
// returned nil.
func running(ctx context.Context, t *testing.T, p *Processor) {
	t.Helper()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}
