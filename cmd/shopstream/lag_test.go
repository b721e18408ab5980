package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/topics"
)

// lagFixture is an embedded Kafka with the default topics, and a client.
type lagFixture struct {
	t     *testing.T
	kafka *devstack.Kafka
	cl    *kgo.Client
	env   func(string) string
}

func newLagFixture(t *testing.T) *lagFixture {
	t.Helper()
	k, err := devstack.StartKafka(context.Background(), devstack.KafkaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &lagFixture{t: t, kafka: k, cl: cl, env: envOf(map[string]string{"SHOPSTREAM_BROKERS": strings.Join(k.Addrs(), ",")})}
}

// stock produces versions first..last of sku to partition p of the
// inventory topic, with timestamp ts.
func (f *lagFixture) stock(p int32, sku string, first, last int64, ts time.Time) {
	f.t.Helper()
	var recs []*kgo.Record
	for v := first; v <= last; v++ {
		data := fmt.Sprintf(`{"sku":%q,"source_code":"default","quantity":%d,"status":1}`, sku, v)
		value := fmt.Sprintf(`{"specversion":"1.0","id":"evt-%s-%d","source":"test","type":"inventory.stock.updated","subject":%q,"time":"2026-11-27T10:00:00.000Z","version":%d,"datacontenttype":"application/json","data":%s}`,
			sku, v, sku, v, data)
		recs = append(recs, &kgo.Record{Topic: topics.TopicInventory, Partition: p, Key: []byte(sku), Value: []byte(value), Timestamp: ts})
	}
	if err := f.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		f.t.Fatal(err)
	}
}

func (f *lagFixture) commit(group, topic string, offsets map[int32]int64) {
	f.t.Helper()
	os := kadm.Offsets{}
	for p, o := range offsets {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: o, LeaderEpoch: -1})
	}
	if err := kadm.NewClient(f.cl).CommitAllOffsets(context.Background(), group, os); err != nil {
		f.t.Fatal(err)
	}
}

func (f *lagFixture) committed(group, topic string) map[int32]int64 {
	f.t.Helper()
	resp, err := kadm.NewClient(f.cl).FetchOffsets(context.Background(), group)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// run runs one command function and returns stdout and the error.
func (f *lagFixture) run(cmd func(context.Context, []string, io.Writer, io.Writer, func(string) string) error, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := cmd(context.Background(), args, &out, &errOut, f.env)
	return out.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return 1
	}
	return 0
}

// Usage mistakes are exit code 2 and name the flag, before any broker is
// contacted.
func TestLagFlagErrors(t *testing.T) {
	brokers := []string{"--brokers", "127.0.0.1:9"}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"negative fail-over", append([]string{"--fail-over", "-1"}, brokers...), []string{"fail-over", "-1", "negative"}},
		{"stray argument", append([]string{"inventory"}, brokers...), []string{`unexpected argument "inventory"`, "--flag"}},
		{"empty group", append([]string{"--group", ","}, brokers...), []string{"-group", "empty group name"}},
		{"no brokers", nil, []string{"brokers: missing", "SHOPSTREAM_BROKERS"}},
		{"bad broker", []string{"--brokers", "kafka"}, []string{"brokers", `"kafka"`, "host:port"}},
		{"unknown flag", append([]string{"--groups", "x"}, brokers...), []string{"-groups"}},
	}
	for _, c := range cases {
		err := runLag(context.Background(), c.args, io.Discard, io.Discard, envOf(nil))
		if exitCode(err) != 2 {
			t.Errorf("%s: exit %d (%v), want 2", c.name, exitCode(err), err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
	err := runLag(context.Background(), []string{"--brokers", "127.0.0.1:9", "--timeout", "300ms"}, io.Discard, io.Discard, envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "cannot reach Kafka at 127.0.0.1:9") {
		t.Errorf("unreachable brokers: %v", err)
	}
}

// lag --json is one object per (group, topic, partition) with the contract
// fields; the default is every shopstream.* group and only those; the table
// has aligned columns, a totals row per group with state and members, and a
// note for partitions without a commit; --fail-over exits 3 above N.
func TestLagOutput(t *testing.T) {
	f := newLagFixture(t)
	hourAgo := time.Now().Add(-time.Hour)
	f.stock(0, "SKU-A", 1, 5, hourAgo)
	f.stock(1, "SKU-B", 1, 3, hourAgo)
	f.commit("shopstream.inventory", topics.TopicInventory, map[int32]int64{0: 2}) // partition 1: no commit
	f.commit("shopstream.order-crm", topics.TopicOrder, map[int32]int64{0: 0})
	f.commit("someone-else", topics.TopicInventory, map[int32]int64{0: 0})

	out, err := f.run(runLag, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("lag --json is not a JSON array: %v\n%s", err, out)
	}
	if len(rows) != 2*devstack.DefaultPartitions {
		t.Fatalf("%d rows, want %d (two shopstream groups × %d partitions):\n%s", len(rows), 2*devstack.DefaultPartitions, devstack.DefaultPartitions, out)
	}
	var inv []map[string]any
	for _, r := range rows {
		for _, k := range []string{"group", "topic", "partition", "committed", "end", "lag", "lag_seconds", "members", "state", "start", "no_commit"} {
			if _, ok := r[k]; !ok {
				t.Errorf("row %v lacks %q", r, k)
			}
		}
		switch r["group"] {
		case "shopstream.inventory":
			inv = append(inv, r)
		case "shopstream.order-crm":
			if r["lag"] != float64(0) || r["topic"] != topics.TopicOrder {
				t.Errorf("order-crm row %v", r)
			}
		default:
			t.Errorf("row of group %v: only shopstream.* groups are listed by default", r["group"])
		}
	}
	p0, p1 := inv[0], inv[1]
	if p0["committed"] != float64(2) || p0["end"] != float64(5) || p0["lag"] != float64(3) || p0["no_commit"] != false ||
		p0["state"] != "Empty" || p0["members"] != float64(0) {
		t.Errorf("partition 0: %v", p0)
	}
	if s := p0["lag_seconds"].(float64); s < 3590 || s > 3700 {
		t.Errorf("partition 0: lag_seconds %v, want about 3600 (records an hour old)", s)
	}
	if p1["committed"] != float64(-1) || p1["no_commit"] != true || p1["lag"] != float64(3) {
		t.Errorf("partition 1 (no commit): %v", p1)
	}

	out, err = f.run(runLag, "--group", "inventory")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	header := lines[0]
	if strings.Join(strings.Fields(header), " ") != "GROUP TOPIC PARTITION COMMITTED END LAG TIME-LAG STATE MEMBERS" {
		t.Fatalf("header %q", header)
	}
	col := func(name string) int { return strings.Index(header, name) }
	row := func(prefix string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("no line starting %q in\n%s", prefix, out)
		return ""
	}
	at := func(line string, c int) string { return strings.Fields(line[c:])[0] }
	r0 := row("shopstream.inventory  " + topics.TopicInventory + "  0 ")
	if at(r0, col("COMMITTED")) != "2" || at(r0, col("END")) != "5" || at(r0, col(" LAG")+1) != "3" || !strings.HasPrefix(at(r0, col("TIME-LAG")), "1h0m") {
		t.Errorf("partition 0 row not aligned or wrong:\n%s\n%s", header, r0)
	}
	r1 := row("shopstream.inventory  " + topics.TopicInventory + "  1 ")
	if at(r1, col("COMMITTED")) != "-*" || at(r1, col(" LAG")+1) != "3" {
		t.Errorf("partition 1 row:\n%s\n%s", header, r1)
	}
	total := row("shopstream.inventory  TOTAL")
	if at(total, col(" LAG")+1) != "6" || at(total, col("STATE")) != "Empty" || at(total, col("MEMBERS")) != "0" {
		t.Errorf("totals row:\n%s\n%s", header, total)
	}
	if !strings.Contains(out, "* no committed offset (5 partitions)") {
		t.Errorf("no note for partitions without commit:\n%s", out)
	}

	if _, err := f.run(runLag, "--group", "inventory", "--fail-over", "6"); err != nil {
		t.Errorf("--fail-over 6 with lag 6: %v, want success", err)
	}
	_, err = f.run(runLag, "--fail-over", "5")
	if exitCode(err) != 3 || !strings.Contains(err.Error(), "shopstream.inventory (6)") || strings.Contains(err.Error(), "order-crm") {
		t.Errorf("--fail-over 5 with lag 6: %v (exit %d), want exit 3 naming shopstream.inventory only", err, exitCode(err))
	}

	_, err = f.run(runLag, "--group", "nope")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "group nope not found") || !strings.Contains(err.Error(), "shopstream.inventory, shopstream.order-crm") {
		t.Errorf("unknown group: %v", err)
	}
	_, err = f.run(runLag, "--topic", "commerce.nope.v1")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "topic commerce.nope.v1 not found") {
		t.Errorf("unknown topic: %v", err)
	}
}

// With no shopstream group, the table says so and the JSON is [].
func TestLagNoGroups(t *testing.T) {
	f := newLagFixture(t)
	out, err := f.run(runLag)
	if err != nil || !strings.Contains(out, "no shopstream consumer groups") {
		t.Errorf("lag on an empty cluster: %q, %v", out, err)
	}
	out, err = f.run(runLag, "--json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("lag --json on an empty cluster: %q, %v", out, err)
	}
}
