package devstack_test

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/topics"
)

func TestReadDLQ(t *testing.T) {
	t.Parallel()
	k, cl := startKafka(t, devstack.KafkaOptions{})
	ctx := testContext(t)
	invDLQ := topics.DLQTopic(topics.TopicInventory)
	ordDLQ := topics.DLQTopic(topics.TopicOrder)

	// Nothing dead-lettered yet.
	recs, err := devstack.ReadDLQ(ctx, cl, devstack.DLQTopics())
	if err != nil || len(recs) != 0 {
		t.Fatalf("ReadDLQ of empty topics = %d records, %v", len(recs), err)
	}

	var produce []*kgo.Record
	for i := range 20 {
		produce = append(produce, &kgo.Record{
			Topic: invDLQ, Key: []byte(fmt.Sprintf("SKU-%d", i)), Value: []byte(fmt.Sprintf(`{"id":"e%d"}`, i)),
			Headers: []kgo.RecordHeader{{Key: topics.HeaderGroup, Value: []byte("inventory")}, {Key: topics.HeaderErrorClass, Value: []byte("poison")}},
		})
	}
	produce = append(produce, &kgo.Record{Topic: ordDLQ, Key: []byte("ORD-1"), Value: []byte("x")})
	if err := cl.ProduceSync(ctx, produce...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	// The reading client may be a group consumer: ReadDLQ reads with its own.
	group, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...), kgo.ConsumerGroup("g"), kgo.ConsumeTopics(topics.TopicOrder))
	if err != nil {
		t.Fatal(err)
	}
	defer group.Close()

	recs, err = devstack.ReadDLQ(ctx, group, devstack.DLQTopics())
	if err != nil {
		t.Fatalf("ReadDLQ: %v", err)
	}
	if len(recs) != 21 {
		t.Fatalf("read %d records, want 21", len(recs))
	}
	seen := make(map[string]bool)
	for i, r := range recs {
		if i > 0 {
			p := recs[i-1]
			if p.Topic > r.Topic || (p.Topic == r.Topic && (p.Partition > r.Partition || (p.Partition == r.Partition && p.Offset >= r.Offset))) {
				t.Fatalf("records not ordered by topic, partition, offset at %d", i)
			}
		}
		seen[r.Key] = true
		if r.Topic == invDLQ && (r.Headers[topics.HeaderGroup] != "inventory" || r.Headers[topics.HeaderErrorClass] != "poison") {
			t.Fatalf("headers lost: %+v", r.Headers)
		}
	}
	if !seen["SKU-0"] || !seen["SKU-19"] || !seen["ORD-1"] {
		t.Fatalf("records missing: %v", seen)
	}

	if _, err := devstack.ReadDLQ(ctx, cl, []string{"no-such-topic.dlq"}); err == nil {
		t.Fatal("ReadDLQ of a missing topic succeeded")
	}
}
