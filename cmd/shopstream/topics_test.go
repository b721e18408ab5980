package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/topics"
)

func TestTopicsFlagErrors(t *testing.T) {
	brokers := []string{"--brokers", "127.0.0.1:9"}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"no subcommand", nil, []string{"want ensure or describe"}},
		{"unknown subcommand", []string{"create"}, []string{`"create"`, "want ensure or describe"}},
		{"zero partitions", append([]string{"ensure", "--partitions", "0"}, brokers...), []string{"partitions: 0", "--partitions"}},
		{"bad replication factor", append([]string{"ensure", "--replication-factor", "-2"}, brokers...), []string{"replication-factor: -2", "--replication-factor"}},
		{"both at once", append([]string{"ensure", "--partitions", "-3", "--replication-factor", "0"}, brokers...), []string{"partitions: -3", "replication-factor: 0"}},
		{"not a number", append([]string{"ensure", "--partitions", "six"}, brokers...), []string{"-partitions"}},
		{"no brokers", []string{"describe"}, []string{"brokers: missing", "SHOPSTREAM_BROKERS"}},
		{"stray argument", append([]string{"describe", "commerce.order.v1"}, brokers...), []string{`unexpected argument "commerce.order.v1"`, "--flag"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := runTopics(context.Background(), c.args, io.Discard, io.Discard, envOf(nil))
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 2 {
				t.Fatalf("err = %v, want an exit-2 usage error", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// `topics ensure` creates the eight default topics, a second run creates
// nothing, a different partition count is reported and left alone, and
// `topics describe` shows partitions, leaders, ISR and the configs set.
func TestTopicsEnsureAndDescribe(t *testing.T) {
	ctx := context.Background()
	kafka, err := devstack.StartKafka(ctx, devstack.KafkaOptions{Topics: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	env := envOf(map[string]string{"SHOPSTREAM_BROKERS": strings.Join(kafka.Addrs(), ",")})
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := runTopics(ctx, args, &out, io.Discard, env)
		return out.String(), err
	}

	out, err := run("ensure", "--partitions", "3")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("topics ensure:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 10 || !strings.Contains(lines[9], "created 8, existed 0") {
		t.Fatalf("first ensure printed:\n%s", out)
	}
	for i, name := range admin.DefaultTopics() {
		f := strings.Fields(lines[i+1])
		retention := "retention.ms=604800000"
		if strings.HasSuffix(name, ".dlq") {
			retention = "retention.ms=2592000000"
		}
		if len(f) < 6 || f[0] != name || f[1] != "created" || f[2] != "3" || f[3] != "1" || !strings.Contains(lines[i+1], retention) {
			t.Errorf("row %q: want %s created with 3 partitions, RF 1, %s", lines[i+1], name, retention)
		}
	}

	out, err = run("ensure", "--partitions", "6", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep admin.EnsureReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Topics) != 8 || len(rep.Created()) != 0 || len(rep.Differing()) != 8 {
		t.Fatalf("second ensure: %+v", rep)
	}
	for _, et := range rep.Topics {
		if et.Partitions != 3 || et.WantedPartitions != 6 || !et.PartitionsDiffer() || !strings.Contains(strings.Join(et.Differences, ";"), "partitions: has 3, wanted 6") {
			t.Errorf("%s: %+v, want the partition difference reported", et.Topic, et)
		}
	}

	out, err = run("ensure", "--partitions", "3", "--topics", topics.TopicOrder)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, topics.TopicOrder) || !strings.Contains(out, "exists") || !strings.Contains(out, "as wanted") || !strings.Contains(out, "created 0, existed 1\n") {
		t.Errorf("ensure of an existing topic as wanted:\n%s", out)
	}

	if _, err := run("ensure", "--replication-factor", "3", "--topics", "extra.v1"); err == nil ||
		!strings.Contains(err.Error(), "extra.v1") || !strings.Contains(err.Error(), "1 brokers") || !strings.Contains(err.Error(), "lower --replication-factor") {
		t.Errorf("replication factor above the broker count: err = %v", err)
	}

	out, err = run("describe", "--topics", topics.TopicOrder+","+topics.DLQTopic(topics.TopicOrder))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("topics describe:\n%s", out)
	for _, want := range []string{
		topics.TopicOrder + "  3 partitions, replication factor 1",
		"retention.ms=604800000", "retention.ms=2592000000", "cleanup.policy=delete", "(DYNAMIC_TOPIC_CONFIG)",
		"PARTITION  LEADER  REPLICAS  ISR  STATUS",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	var descs []admin.TopicDescription
	out, err = run("describe", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &descs); err != nil {
		t.Fatal(err)
	}
	if len(descs) != 8 {
		t.Fatalf("describe --json: %d topics, want 8", len(descs))
	}
	for _, d := range descs {
		if len(d.Partitions) != 3 {
			t.Errorf("%s: %d partitions", d.Topic, len(d.Partitions))
		}
		for _, p := range d.Partitions {
			if p.Leader < 0 || len(p.ISR) == 0 || p.UnderReplicated() {
				t.Errorf("%s/%d: leader %d ISR %v replicas %v", d.Topic, p.Partition, p.Leader, p.ISR, p.Replicas)
			}
		}
	}

	if _, err := run("describe", "--topics", "nope.v1,"+topics.TopicOrder); err == nil ||
		!strings.Contains(err.Error(), "topic nope.v1 does not exist") || !strings.Contains(err.Error(), "shopstream topics ensure") {
		t.Errorf("describe of an unknown topic: err = %v", err)
	}
}
