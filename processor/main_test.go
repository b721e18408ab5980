package processor

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
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
