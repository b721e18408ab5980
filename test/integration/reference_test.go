package integration

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/test/realkafka"
	"github.com/shopstream/shopstream/topics"
)

// describeGroup runs Kafka's own kafka-consumer-groups --describe and
// returns, per partition of topic, CURRENT-OFFSET and LOG-END-OFFSET.
func describeGroup(t *testing.T, brokers []string, group, topic string) (current, end map[int32]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := realkafka.ConsumerGroups(ctx, "", brokers, "--describe", "--group", group)
	if err != nil {
		t.Fatal(err)
	}
	current, end = map[int32]int64{}, map[int32]int64{}
	var cols []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "GROUP" {
			cols = f
			continue
		}
		if cols == nil || len(f) < 5 || f[1] != topic {
			continue
		}
		row := map[string]string{}
		for i, c := range cols {
			if i < len(f) {
				row[c] = f[i]
			}
		}
		p, _ := strconv.Atoi(row["PARTITION"])
		if v, err := strconv.ParseInt(row["CURRENT-OFFSET"], 10, 64); err == nil {
			current[int32(p)] = v
		}
		if v, err := strconv.ParseInt(row["LOG-END-OFFSET"], 10, 64); err == nil {
			end[int32(p)] = v
		}
	}
	if len(end) == 0 {
		t.Fatalf("kafka-consumer-groups printed no partition of %s:\n%s", topic, out)
	}
	return current, end
}

// Kafka's own kafka-consumer-groups sees the offsets shopstream committed:
// after a clean stop every partition is committed to its log end. (Real
// Kafka only: the tool is the reference for the real broker.)
func TestReferenceToolSeesCommits(t *testing.T) {
	eachRealBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		e.produce(e.stockBatch(30, 1, 4)...)
		s := newSink()
		r := e.start(e.options(), e.inventoryGroup(s.handler(nil)))
		eventually(t, 60*time.Second, "all applied", func() bool { return s.total() == 120 })
		r.stop(t)

		group, topic := e.groupID("inventory"), e.topic(topics.TopicInventory)
		current, end := describeGroup(t, e.brokers, group, topic)
		ours := e.committed(group, topic)
		for p, o := range e.endOffsets(topic) {
			if end[p] != o {
				t.Errorf("partition %d: tool says log end %d, kadm %d", p, end[p], o)
			}
			if o == 0 {
				continue
			}
			if current[p] != o || ours[p] != o {
				t.Errorf("partition %d: tool committed %d, kadm committed %d, log end %d", p, current[p], ours[p], o)
			}
		}
	})
}
