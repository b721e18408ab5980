package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/topics"
)

// kcat runs Debian's kcat (librdkafka), an outside client, against brokers.
func kcat(t *testing.T, brokers []string, stdin string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed: apt-get install kcat (.ci/run does)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"-b", strings.Join(brokers, ",")}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %v: %v\n%s", args, err, errOut.String())
	}
	return out.String()
}

// kcatRecord is one record of kcat -J.
type kcatRecord struct {
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Timestamp int64    `json:"ts"`
	Headers   []string `json:"headers"`
	Key       string   `json:"key"`
	Payload   string   `json:"payload"`
}

func (r kcatRecord) header(k string) (string, bool) {
	for i := 0; i+1 < len(r.Headers); i += 2 {
		if r.Headers[i] == k {
			return r.Headers[i+1], true
		}
	}
	return "", false
}

func kcatConsume(t *testing.T, brokers []string, topic string) []kcatRecord {
	t.Helper()
	out := kcat(t, brokers, "", "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J")
	var recs []kcatRecord
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r kcatRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("kcat -J line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

// Contract events produced by kcat (an outside librdkafka client) are
// processed: order by version via the fence, poison to the DLQ; kcat reads
// the DLQ record shopstream wrote back, with every contract header and the
// producer's own header kept.
func TestKcatInterop(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		topic := e.topic(topics.TopicInventory)
		var lines []string
		for _, v := range []int{2, 1, 4, 3, 5} {
			lines = append(lines, fmt.Sprintf(`SKU-KC|{"specversion":"1.0","id":"kc-%d","source":"erp/kcat","type":"inventory.stock.updated","subject":"SKU-KC","version":%d,"data":{"sku":"SKU-KC","source_code":"default","quantity":%d,"status":1}}`, v, v, v*10))
		}
		lines = append(lines, `SKU-BAD|{"specversion":"1.0","id":"kc-bad","source":"erp/kcat","type":"inventory.stock.updated","subject":"SKU-BAD","version":1,"data":{"source_code":"default","quantity":1,"status":1}}`)
		kcat(t, e.brokers, strings.Join(lines, "\n")+"\n", "-P", "-t", topic, "-K", "|", "-H", "traceparent=00-kcat-01")

		s := newSink()
		r := e.start(e.options(), e.inventoryGroup(s.handler(nil)))
		eventually(t, 60*time.Second, "6 records finished", func() bool { return r.proc.Stats()[0].Consumed == 6 })
		applied, _, _, _ := s.snapshot()
		if got := applied["SKU-KC"]; !slices.IsSorted(got) || got[len(got)-1] != 5 {
			t.Errorf("SKU-KC applied %v: versions must rise and end at 5", got)
		}
		st := r.proc.Stats()[0]
		if st.Applied+st.SkippedStale != 5 || st.DeadLettered != 1 {
			t.Errorf("applied+stale=%d dead_lettered=%d, want 5 and 1", st.Applied+st.SkippedStale, st.DeadLettered)
		}

		dlq := kcatConsume(t, e.brokers, topics.DLQTopic(topic))
		if len(dlq) != 1 {
			t.Fatalf("kcat read %d DLQ records, want 1", len(dlq))
		}
		d := dlq[0]
		if d.Key != "SKU-BAD" || !strings.Contains(d.Payload, `"id":"kc-bad"`) {
			t.Errorf("DLQ record key %q payload %q: want the original", d.Key, d.Payload)
		}
		want := map[string]string{
			topics.HeaderOriginalTopic: topic,
			topics.HeaderGroup:         e.groupID("inventory"),
			topics.HeaderErrorClass:    topics.ErrorClassPoison,
			topics.HeaderAttempts:      "0",
			"traceparent":              "00-kcat-01",
		}
		for k, v := range want {
			if got, _ := d.header(k); got != v {
				t.Errorf("DLQ header %s = %q, want %q", k, got, v)
			}
		}
		for _, k := range []string{topics.HeaderOriginalPartition, topics.HeaderOriginalOffset, topics.HeaderOriginalTimestamp, topics.HeaderError, topics.HeaderFailedAt} {
			if v, ok := d.header(k); !ok || v == "" {
				t.Errorf("DLQ header %s missing", k)
			}
		}
		if v, _ := d.header(topics.HeaderError); !strings.Contains(v, "sku") {
			t.Errorf("DLQ error %q does not say what was wrong", v)
		}
		// The original coordinates point at the record kcat produced.
		src := kcatConsume(t, e.brokers, topic)
		p, _ := d.header(topics.HeaderOriginalPartition)
		o, _ := d.header(topics.HeaderOriginalOffset)
		found := false
		for _, r := range src {
			if strconv.Itoa(int(r.Partition)) == p && strconv.FormatInt(r.Offset, 10) == o {
				found = r.Key == "SKU-BAD"
				if ts, _ := d.header(topics.HeaderOriginalTimestamp); ts != strconv.FormatInt(r.Timestamp, 10) {
					t.Errorf("original timestamp %s, kcat says %d", ts, r.Timestamp)
				}
			}
		}
		if !found {
			t.Errorf("DLQ coordinates %s/%s do not point at the poison record", p, o)
		}
	})
}
