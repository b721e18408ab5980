package integration

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/topics"
)

// EnsureTopics creates the eight topics with the partitions and configs
// asked for, waits for their leaders, reports a pre-existing topic with
// another partition count without changing it, and creates nothing on a
// second run; DescribeTopics shows leaders, replicas, ISR and the configs.
func TestEnsureAndDescribeTopics(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnvSeeded(t, b, 3, topics.TopicOrder) // exists already, with 3 partitions
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var names []string
		for _, n := range admin.DefaultTopics() {
			names = append(names, e.topic(n))
		}
		order := e.topic(topics.TopicOrder)

		rep, err := admin.EnsureTopics(ctx, cl, names, 6, -1, nil)
		if err != nil {
			t.Fatalf("ensure: %v", err)
		}
		wantCreated := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == order })
		if got := rep.Created(); !slices.Equal(got, wantCreated) {
			t.Errorf("created %v, want %v", got, wantCreated)
		}
		if got := rep.Existing(); !slices.Equal(got, []string{order}) {
			t.Errorf("existing %v, want [%s]", got, order)
		}
		for _, et := range rep.Topics {
			if et.Topic == order {
				if et.Partitions != 3 || et.WantedPartitions != 6 || !et.PartitionsDiffer() ||
					!strings.Contains(strings.Join(et.Differences, "; "), "partitions: has 3, wanted 6") {
					t.Errorf("pre-existing topic: %+v, want its 3 partitions reported against 6", et)
				}
				continue
			}
			wantRetention := strconv.FormatInt(admin.SourceRetention.Milliseconds(), 10)
			if strings.HasSuffix(et.Topic, topics.DLQSuffix) {
				wantRetention = strconv.FormatInt(admin.DLQRetention.Milliseconds(), 10)
			}
			if et.Partitions != 6 || et.ReplicationFactor < 1 || et.Configs["retention.ms"] != wantRetention || et.Configs["cleanup.policy"] != "delete" {
				t.Errorf("created %s: %+v", et.Topic, et)
			}
			if _, ok := et.Configs["min.insync.replicas"]; ok {
				t.Errorf("%s: min.insync.replicas set with the broker-default replication factor", et.Topic)
			}
		}
		md, err := e.admin.Metadata(ctx, names...)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			want := 6
			if n == order {
				want = 3 // never changed
			}
			if got := len(md.Topics[n].Partitions); got != want {
				t.Errorf("%s has %d partitions, want %d", n, got, want)
			}
		}

		again, err := admin.EnsureTopics(ctx, cl, names, 6, -1, nil)
		if err != nil {
			t.Fatalf("second ensure: %v", err)
		}
		if len(again.Created()) != 0 || !slices.Equal(again.Existing(), names) || !slices.Equal(again.Differing(), []string{order}) {
			t.Errorf("second ensure: created %v, existing %v, differing %v; want nothing created, all existing, only %s differing",
				again.Created(), again.Existing(), again.Differing(), order)
		}

		descs, err := admin.DescribeTopics(ctx, cl, names)
		if err != nil {
			t.Fatalf("describe: %v", err)
		}
		if len(descs) != len(names) {
			t.Fatalf("described %d topics, want %d", len(descs), len(names))
		}
		for i, d := range descs {
			if d.Topic != names[i] || d.ID == "" || d.ReplicationFactor < 1 {
				t.Errorf("description %d: %s id %q rf %d", i, d.Topic, d.ID, d.ReplicationFactor)
			}
			for _, p := range d.Partitions {
				if p.Leader < 0 || !slices.Contains(p.ISR, p.Leader) || !slices.Contains(p.Replicas, p.Leader) || p.UnderReplicated() || p.Error != "" {
					t.Errorf("%s/%d: leader %d replicas %v ISR %v error %q", d.Topic, p.Partition, p.Leader, p.Replicas, p.ISR, p.Error)
				}
			}
			if d.Topic == order {
				continue // created without configs by the harness
			}
			cfg := map[string]admin.TopicConfig{}
			for _, c := range d.Configs {
				cfg[c.Key] = c
			}
			wantRetention := strconv.FormatInt(admin.SourceRetention.Milliseconds(), 10)
			if strings.HasSuffix(d.Topic, topics.DLQSuffix) {
				wantRetention = strconv.FormatInt(admin.DLQRetention.Milliseconds(), 10)
			}
			if c := cfg["retention.ms"]; c.Value != wantRetention || c.Source != "DYNAMIC_TOPIC_CONFIG" {
				t.Errorf("%s: retention.ms %+v, want %s set on the topic", d.Topic, c, wantRetention)
			}
			if c := cfg["cleanup.policy"]; c.Value != "delete" {
				t.Errorf("%s: cleanup.policy %+v", d.Topic, c)
			}
		}

		// A replication factor above the broker count is refused, naming
		// the topic and the fix; an unknown topic is named too.
		tooMany := int16(len(md.Brokers) + 1)
		extra := e.topic("extra.v1")
		if _, err := admin.EnsureTopics(ctx, cl, []string{extra}, 1, tooMany, nil); err == nil ||
			!strings.Contains(err.Error(), extra) || !strings.Contains(err.Error(), "lower --replication-factor") {
			t.Errorf("replication factor %d on %d brokers: err = %v", tooMany, len(md.Brokers), err)
		}
		if _, err := admin.DescribeTopics(ctx, cl, []string{extra}); err == nil ||
			!strings.Contains(err.Error(), "topic "+extra+" does not exist") || !strings.Contains(err.Error(), "topics ensure") {
			t.Errorf("describe of a missing topic: err = %v", err)
		}
	})
}

// min.insync.replicas=2 only with at least 3 replicas: with 2 of 2, one
// broker restart would stop every acks=all write.
func TestTopicConfigs(t *testing.T) {
	for _, c := range []struct {
		topic     string
		rf        int16
		retention time.Duration
		minISR    string
	}{
		{topics.TopicInventory, -1, admin.SourceRetention, ""},
		{topics.TopicInventory, 2, admin.SourceRetention, ""},
		{topics.TopicInventory, 3, admin.SourceRetention, "2"},
		{topics.DLQTopic(topics.TopicInventory), 3, admin.DLQRetention, "2"},
		{topics.DLQTopic(topics.TopicInventory), 1, admin.DLQRetention, ""},
	} {
		cfg := admin.TopicConfigs(c.topic, c.rf)
		if got := *cfg["retention.ms"]; got != strconv.FormatInt(c.retention.Milliseconds(), 10) {
			t.Errorf("%s rf %d: retention.ms %s", c.topic, c.rf, got)
		}
		if *cfg["cleanup.policy"] != "delete" {
			t.Errorf("%s: cleanup.policy %s", c.topic, *cfg["cleanup.policy"])
		}
		got := ""
		if v := cfg["min.insync.replicas"]; v != nil {
			got = *v
		}
		if got != c.minISR {
			t.Errorf("%s rf %d: min.insync.replicas %q, want %q", c.topic, c.rf, got, c.minISR)
		}
	}
}
