package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/topics"
)

// Usage and configuration mistakes are exit code 2 and name the setting and
// the fix, before any broker is contacted.
func TestDLQFlagErrors(t *testing.T) {
	noEnv := envOf(nil)
	brokers := []string{"--brokers", "127.0.0.1:9"}
	cases := []struct {
		name string
		args []string
		env  func(string) string
		want []string
	}{
		{"no subcommand", nil, noEnv, []string{"want list or redrive"}},
		{"unknown subcommand", []string{"browse"}, noEnv, []string{`"browse"`, "want list or redrive"}},
		{"no topic", append([]string{"list"}, brokers...), noEnv, []string{"topic: missing", "--topic", "commerce.order.v1.dlq"}},
		{"not a dlq topic", append([]string{"list", "--topic", "commerce.order.v1"}, brokers...), noEnv,
			[]string{"not a dead-letter topic", "did you mean commerce.order.v1.dlq"}},
		{"bad error class", append([]string{"redrive", "--topic", "x.dlq", "--error-class", "perm"}, brokers...), noEnv,
			[]string{"error-class", `"perm"`, "poison, permanent or retries_exhausted"}},
		{"unknown group", append([]string{"list", "--topic", "x.dlq", "--group", "order-crn"}, brokers...), noEnv,
			[]string{`unknown group "order-crn"`, "order-crm", "full group id"}},
		{"bad since", append([]string{"list", "--topic", "x.dlq", "--since", "yesterday"}, brokers...), noEnv,
			[]string{"since", `"yesterday"`, "RFC 3339", "30m"}},
		{"negative since", append([]string{"list", "--topic", "x.dlq", "--since", "-5m"}, brokers...), noEnv, []string{"since", "positive duration"}},
		{"every problem at once", append([]string{"list", "--error-class", "x", "--since", "soon"}, brokers...), noEnv,
			[]string{"topic: missing", "error-class", "since"}},
		{"no brokers", []string{"list", "--topic", "x.dlq"}, noEnv, []string{"brokers: missing", "SHOPSTREAM_BROKERS"}},
		{"unknown flag", []string{"list", "--topics", "x.dlq"}, noEnv, []string{"-topics"}},
		{"stray argument", append([]string{"list", "--topic", "x.dlq", "extra"}, brokers...), noEnv, []string{`unexpected argument "extra"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := runDLQ(context.Background(), c.args, io.Discard, &stderr, c.env)
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

func TestDLQSince(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-11-27T10:00:00Z":      time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		"2026-11-27T11:00:00+01:00": time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
		"30m":                       now.Add(-30 * time.Minute),
		"24h":                       now.Add(-24 * time.Hour),
		"7d":                        now.Add(-7 * 24 * time.Hour),
		"1d12h":                     now.Add(-36 * time.Hour),
	} {
		got, err := dlqSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("since %q = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "0s", "-1h", "d", "xd", "1d-2d", "2026-11-27"} {
		if _, err := dlqSince(bad, now); err == nil {
			t.Errorf("since %q: no error", bad)
		}
	}
}

// An unreachable broker and an unknown topic are errors that say what to
// check.
func TestDLQUnreachableAndUnknownTopic(t *testing.T) {
	ctx := context.Background()
	err := runDLQ(ctx, []string{"list", "--topic", "x.dlq", "--brokers", freeAddr(t), "--timeout", "1s"}, io.Discard, io.Discard, envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "cannot reach Kafka") || !strings.Contains(err.Error(), "--brokers") {
		t.Errorf("unreachable broker: err = %v", err)
	}

	env, _ := dlqKafka(t)
	for _, sub := range []string{"list", "redrive"} {
		err := runDLQ(ctx, []string{sub, "--topic", "commerce.orders.v1.dlq"}, io.Discard, io.Discard, env)
		if err == nil || !strings.Contains(err.Error(), "commerce.orders.v1.dlq does not exist") || !strings.Contains(err.Error(), "shopstream topics describe") {
			t.Errorf("dlq %s of an unknown topic: err = %v", sub, err)
		}
	}
}

// dlqRecord builds a dead letter as the processor writes it.
func dlqRecord(key, group, class string, attempts int, origPartition int32, origOffset int64, failedAt time.Time, errText string, extra ...kgo.RecordHeader) *kgo.Record {
	hs := append([]kgo.RecordHeader{}, extra...)
	for _, kv := range [][2]string{
		{topics.HeaderOriginalTopic, topics.TopicOrder},
		{topics.HeaderOriginalPartition, strconv.Itoa(int(origPartition))},
		{topics.HeaderOriginalOffset, strconv.FormatInt(origOffset, 10)},
		{topics.HeaderOriginalTimestamp, strconv.FormatInt(failedAt.Add(-time.Minute).UnixMilli(), 10)},
		{topics.HeaderGroup, group},
		{topics.HeaderError, errText},
		{topics.HeaderErrorClass, class},
		{topics.HeaderAttempts, strconv.Itoa(attempts)},
		{topics.HeaderFailedAt, failedAt.Format(time.RFC3339Nano)},
	} {
		hs = append(hs, kgo.RecordHeader{Key: kv[0], Value: []byte(kv[1])})
	}
	return &kgo.Record{
		Topic: topics.DLQTopic(topics.TopicOrder), Partition: 0, Key: []byte(key),
		Value:   []byte(`{"specversion":"1.0","id":"evt-` + key + `"}`),
		Headers: hs,
	}
}

// `dlq list` prints a table (one row per dead letter, the error clipped)
// and JSON (every header, the full error); the filters select; `dlq
// redrive` is a dry run by default, writes back with the redrive headers
// under --execute, and a second run of the same filter redrives nothing.
func TestDLQListAndRedrive(t *testing.T) {
	ctx := context.Background()
	env, cl := dlqKafka(t)

	t0 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC) // long ago: --since 1h selects none
	longErr := "crm answered 422 Unprocessable Entity: " + strings.Repeat("contact field email is invalid; ", 4) + "END"
	recs := []*kgo.Record{
		dlqRecord("o-1", "shopstream.order-crm", topics.ErrorClassPermanent, 1, 2, 5, t0, longErr,
			kgo.RecordHeader{Key: "traceparent", Value: []byte("00-abc-01")}),
		dlqRecord("o-2", "shopstream.order-email", topics.ErrorClassRetriesExhausted, 8, 3, 7, t0.Add(time.Hour), "email 503"),
		dlqRecord("o-3", "shopstream.order-crm", topics.ErrorClassPoison, 0, 4, 9, t0.Add(2*time.Hour), "not JSON",
			kgo.RecordHeader{Key: topics.HeaderRedriveGroup, Value: []byte("shopstream.order-crm")},
			kgo.RecordHeader{Key: topics.HeaderRedriveCount, Value: []byte("1")}),
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dlq := topics.DLQTopic(topics.TopicOrder)
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := runDLQ(ctx, args, &out, io.Discard, env); err != nil {
			t.Fatalf("dlq %v: %v", args, err)
		}
		return out.String()
	}

	table := run("list", "--topic", dlq)
	t.Logf("dlq list:\n%s", table)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 5 { // header, 3 rows, summary
		t.Fatalf("table has %d lines, want 5:\n%s", len(lines), table)
	}
	for _, col := range []string{"ORIGINAL TOPIC", "PARTITION", "OFFSET", "KEY", "GROUP", "CLASS", "ATTEMPTS", "REDRIVES", "FAILED AT", "ERROR"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("table header lacks %s: %q", col, lines[0])
		}
	}
	row := strings.Fields(lines[1])
	if want := []string{topics.TopicOrder, "2", "5", "o-1", "shopstream.order-crm", "permanent", "1", "0", "2024-03-01T10:00:00Z", "crm"}; !fieldsStartWith(row, want) {
		t.Errorf("first row %q, want it to start with %q", lines[1], want)
	}
	if strings.Contains(table, "END") || !strings.Contains(lines[1], "…") {
		t.Errorf("the table must clip a long error: %q", lines[1])
	}
	if f := strings.Fields(lines[3]); len(f) < 8 || f[7] != "1" {
		t.Errorf("o-3 row %q: REDRIVES should be 1", lines[3])
	}
	if !strings.Contains(lines[4], "3 dead letters in "+dlq) {
		t.Errorf("summary %q", lines[4])
	}

	var got []map[string]any
	listJSON := run("list", "--topic", dlq, "--group", "order-crm", "--json")
	t.Logf("dlq list --json:\n%s", listJSON)
	if err := json.Unmarshal([]byte(listJSON), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0]["key"] != "o-1" || got[1]["key"] != "o-3" {
		t.Fatalf("--group order-crm --json: %v", got)
	}
	first := got[0]
	for k, v := range map[string]any{
		"topic": dlq, "original_topic": topics.TopicOrder, "original_partition": 2.0, "original_offset": 5.0,
		"group": "shopstream.order-crm", "error": longErr, "error_class": "permanent", "attempts": 1.0,
		"failed_at": "2024-03-01T10:00:00Z", "redrive_count": 0.0,
		"value": `{"specversion":"1.0","id":"evt-o-1"}`,
	} {
		if first[k] != v {
			t.Errorf("json %s = %v, want %v", k, first[k], v)
		}
	}
	hs := map[string]string{}
	for _, h := range first["headers"].([]any) {
		m := h.(map[string]any)
		hs[m["key"].(string)] = m["value"].(string)
	}
	for _, k := range []string{"traceparent", topics.HeaderOriginalTopic, topics.HeaderOriginalPartition, topics.HeaderOriginalOffset,
		topics.HeaderOriginalTimestamp, topics.HeaderGroup, topics.HeaderError, topics.HeaderErrorClass, topics.HeaderAttempts, topics.HeaderFailedAt} {
		if _, ok := hs[k]; !ok {
			t.Errorf("json headers lack %s: %v", k, hs)
		}
	}

	var typed []admin.DeadLetter
	if err := json.Unmarshal([]byte(listJSON), &typed); err != nil {
		t.Fatal(err)
	}
	if len(typed) != 2 || string(typed[0].Key) != "o-1" || typed[0].OriginalPartition != 2 || typed[0].Error != longErr ||
		!typed[0].FailedAt.Equal(t0) || len(typed[0].Headers) != 10 || typed[1].RedriveCount != 1 {
		t.Errorf("--json read back as []admin.DeadLetter: %+v", typed)
	}

	count := func(args ...string) int {
		t.Helper()
		var dls []json.RawMessage
		if err := json.Unmarshal([]byte(run(append([]string{"list", "--topic", dlq, "--json"}, args...)...)), &dls); err != nil {
			t.Fatal(err)
		}
		return len(dls)
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"--group", "shopstream.order-email"}, 1},
		{[]string{"--group", "order-fraud"}, 0},
		{[]string{"--error-class", "poison"}, 1},
		{[]string{"--key", "o-2"}, 1},
		{[]string{"--since", "2024-03-01T11:00:00Z"}, 2},
		{[]string{"--since", "1h"}, 0},
		{[]string{"--group", "order-crm", "--error-class", "permanent"}, 1},
	} {
		if n := count(c.args...); n != c.want {
			t.Errorf("list %v: %d dead letters, want %d", c.args, n, c.want)
		}
	}
	if out := run("list", "--topic", dlq, "--key", "nope"); !strings.Contains(out, "no dead letters in "+dlq+" match the filter") {
		t.Errorf("empty listing: %q", out)
	}

	adm := kadm.NewClient(cl)
	orderEnd := func() int64 {
		ends, err := adm.ListEndOffsets(ctx, topics.TopicOrder)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n
	}

	dry := run("redrive", "--topic", dlq, "--group", "order-crm")
	t.Logf("dlq redrive (dry run):\n%s", dry)
	if !strings.Contains(dry, "dry run: 2 of the 3 dead letters") || !strings.Contains(dry, "shopstream-redrive.order-crm") ||
		!strings.Contains(dry, "REDRIVE TO") || !strings.Contains(dry, "--execute") {
		t.Errorf("dry run output:\n%s", dry)
	}
	if n := orderEnd(); n != 0 {
		t.Fatalf("a dry run wrote %d records", n)
	}

	var rep struct {
		ConsumerGroup string          `json:"consumer_group"`
		Executed      bool            `json:"executed"`
		Read          int             `json:"read"`
		Selected      int             `json:"selected"`
		Redriven      int             `json:"redriven"`
		Committed     map[int32]int64 `json:"committed"`
		Records       []struct {
			Key          string `json:"key"`
			Group        string `json:"group"`
			Topic        string `json:"topic"`
			Partition    int32  `json:"partition"`
			Offset       int64  `json:"offset"`
			RedriveCount int    `json:"redrive_count"`
		} `json:"records"`
	}
	redriveJSON := run("redrive", "--topic", dlq, "--group", "order-crm", "--execute", "--json")
	t.Logf("dlq redrive --execute --json:\n%s", redriveJSON)
	if err := json.Unmarshal([]byte(redriveJSON), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.ConsumerGroup != "shopstream-redrive.order-crm" || !rep.Executed || rep.Read != 3 || rep.Selected != 2 || rep.Redriven != 2 ||
		rep.Committed[0] != 3 || len(rep.Records) != 2 {
		t.Fatalf("redrive report: %+v", rep)
	}
	for i, want := range []struct {
		key       string
		partition int32
		count     int
	}{{"o-1", 2, 1}, {"o-3", 4, 2}} {
		r := rep.Records[i]
		if r.Key != want.key || r.Group != "shopstream.order-crm" || r.Topic != topics.TopicOrder || r.Partition != want.partition || r.Offset != 0 || r.RedriveCount != want.count {
			t.Errorf("record %d: %+v, want key %s to %s/%d@0 with count %d", i, r, want.key, topics.TopicOrder, want.partition, want.count)
		}
	}
	// The records on the original topic: original key, value and headers,
	// no dead-letter header, exactly one redrive group and count.
	rd, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(env("SHOPSTREAM_BROKERS"), ",")...), kgo.ConsumeTopics(topics.TopicOrder), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var back []*kgo.Record
	for len(back) < 2 && pctx.Err() == nil {
		rd.PollFetches(pctx).EachRecord(func(r *kgo.Record) { back = append(back, r) })
	}
	if len(back) != 2 {
		t.Fatalf("read %d redriven records, want 2", len(back))
	}
	for _, r := range back {
		var shop []string
		for _, h := range r.Headers {
			if strings.HasPrefix(h.Key, "shopstream.") {
				shop = append(shop, h.Key+"="+string(h.Value))
			}
		}
		wantCount := map[string]string{"o-1": "1", "o-3": "2"}[string(r.Key)]
		want := []string{topics.HeaderRedriveGroup + "=shopstream.order-crm", topics.HeaderRedriveCount + "=" + wantCount}
		if strings.Join(shop, " ") != strings.Join(want, " ") {
			t.Errorf("%s: shopstream headers %v, want %v", r.Key, shop, want)
		}
		if string(r.Value) != `{"specversion":"1.0","id":"evt-`+string(r.Key)+`"}` {
			t.Errorf("%s: value changed: %s", r.Key, r.Value)
		}
		if string(r.Key) == "o-1" && (len(r.Headers) != 3 || r.Headers[0].Key != "traceparent") {
			t.Errorf("o-1 lost its own header: %v", r.Headers)
		}
	}

	again := run("redrive", "--topic", dlq, "--group", "order-crm", "--execute")
	if !strings.Contains(again, "redrove 0 of the 0 dead letters") || !strings.Contains(again, "nothing new to commit") {
		t.Errorf("second run:\n%s", again)
	}
	email := run("redrive", "--topic", dlq, "--group", "order-email", "--execute")
	t.Logf("dlq redrive --execute:\n%s", email)
	if !strings.Contains(email, "redrove 1 of the 3 dead letters") || !strings.Contains(email, "shopstream-redrive.order-email") ||
		!strings.Contains(email, "REDRIVEN TO") || !strings.Contains(email, topics.TopicOrder+"/3@0") {
		t.Errorf("order-email run:\n%s", email)
	}
	if n := orderEnd(); n != 3 {
		t.Errorf("the order topic has %d records, want 3", n)
	}
}

// Keys and values that are not UTF-8 survive --json as base64.
func TestDeadLetterJSONRoundTrip(t *testing.T) {
	in := admin.DeadLetter{
		Topic: "x.dlq", Partition: 1, Offset: 2, Key: []byte{0xff, 0x00}, Value: []byte("{not json"),
		Headers: []admin.Header{{Key: "a", Value: "1"}, {Key: "a", Value: "2"}}, OriginalPartition: -1, OriginalOffset: -1,
		Problems: []string{"shopstream.group: missing"},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["key"] != nil || m["key_base64"] != "/wA=" || m["value"] != "{not json" {
		t.Errorf("json %s", b)
	}
	var out admin.DeadLetter
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Key, in.Key) || !bytes.Equal(out.Value, in.Value) || len(out.Headers) != 2 || out.Headers[1].Value != "2" ||
		out.OriginalPartition != -1 || len(out.Problems) != 1 {
		t.Errorf("round trip: %+v", out)
	}
	b, _ = json.Marshal(admin.DeadLetter{})
	if !strings.Contains(string(b), `"key":null`) || !strings.Contains(string(b), `"headers":[]`) {
		t.Errorf("empty dead letter: %s", b)
	}
}

func fieldsStartWith(got, want []string) bool {
	if len(got) < len(want) {
		return false
	}
	for i := range want {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// A record on a DLQ without the contract headers (written by hand, say) is
// listed with what is known, and redrive skips it, saying why, instead of
// sending it to every group.
func TestDLQMalformedDeadLetter(t *testing.T) {
	ctx := context.Background()
	env, cl := dlqKafka(t)
	dlq := topics.DLQTopic(topics.TopicInventory)
	rec := &kgo.Record{Topic: dlq, Key: []byte("SKU-1"), Value: []byte("hand-written"),
		Headers: []kgo.RecordHeader{{Key: topics.HeaderOriginalTopic, Value: []byte(topics.TopicInventory)}, {Key: topics.HeaderAttempts, Value: []byte("many")}}}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := runDLQ(ctx, args, &out, io.Discard, env); err != nil {
			t.Fatalf("dlq %v: %v", args, err)
		}
		return out.String()
	}
	table := run("list", "--topic", dlq)
	if f := strings.Fields(strings.Split(table, "\n")[1]); len(f) < 9 || f[0] != topics.TopicInventory || f[1] != "?" || f[2] != "?" || f[3] != "SKU-1" || f[4] != "?" {
		t.Errorf("row of a malformed dead letter:\n%s", table)
	}
	if !strings.Contains(table, "1 of them lack contract headers or carry malformed ones") {
		t.Errorf("no note about the malformed record:\n%s", table)
	}
	var dls []admin.DeadLetter
	if err := json.Unmarshal([]byte(run("list", "--topic", dlq, "--json")), &dls); err != nil {
		t.Fatal(err)
	}
	problems := strings.Join(dls[0].Problems, "; ")
	for _, want := range []string{topics.HeaderOriginalPartition + ": missing", topics.HeaderGroup + ": missing", topics.HeaderAttempts + `: "many" is not an integer`} {
		if !strings.Contains(problems, want) {
			t.Errorf("problems %q lack %q", problems, want)
		}
	}
	out := run("redrive", "--topic", dlq, "--execute")
	if !strings.Contains(out, "skipped: no valid "+topics.HeaderOriginalPartition) || !strings.Contains(out, "redrove 0 of the 1 dead letters") || !strings.Contains(out, "skipped 1") {
		t.Errorf("redrive of a malformed dead letter:\n%s", out)
	}
	if out := run("redrive", "--topic", dlq, "--execute"); !strings.Contains(out, "redrove 0 of the 0 dead letters") {
		t.Errorf("a skipped record is passed over for good:\n%s", out)
	}
}

// A dead letter written without its value (too large for Kafka) is marked
// in the table with the value's size, carries value_omitted_bytes in
// --json, and is redriven from its original; one whose original was
// deleted is listed as not redriven, and the run fails, naming it.
func TestDLQValueOmitted(t *testing.T) {
	ctx := context.Background()
	env, cl := dlqKafka(t)

	value := `{"specversion":"1.0","id":"evt-o-9","note":"` + strings.Repeat("x", 5000) + `"}`
	srcs := []*kgo.Record{
		{Topic: topics.TopicOrder, Partition: 1, Key: []byte("o-9"), Value: []byte(value)},
		{Topic: topics.TopicOrder, Partition: 2, Key: []byte("o-8"), Value: []byte("deleted")},
		{Topic: topics.TopicOrder, Partition: 2, Key: []byte("o-7"), Value: []byte("kept")},
	}
	if err := cl.ProduceSync(ctx, srcs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: topics.TopicOrder, Partition: 2, At: 1, LeaderEpoch: -1})
	if resp, err := adm.DeleteRecords(ctx, del); err != nil || resp.Error() != nil {
		t.Fatalf("delete records: %v %v", err, resp.Error())
	}
	t0 := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	omitted := func(r *kgo.Record, size string) *kgo.Record {
		r.Value = nil
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: topics.HeaderValueOmitted, Value: []byte(size)})
		return r
	}
	size := strconv.Itoa(len(value))
	dls := []*kgo.Record{
		omitted(dlqRecord("o-9", "shopstream.order-crm", topics.ErrorClassPermanent, 1, 1, 0, t0, "crm 422"), size),
		omitted(dlqRecord("o-8", "shopstream.order-crm", topics.ErrorClassPermanent, 1, 2, 0, t0, "crm 422"), "7"),
		omitted(dlqRecord("o-9", "shopstream.order-email", topics.ErrorClassPermanent, 1, 1, 0, t0, "email 400"), "5 KB"),
	}
	if err := cl.ProduceSync(ctx, dls...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dlq := topics.DLQTopic(topics.TopicOrder)
	run := func(args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		err := runDLQ(ctx, args, &out, io.Discard, env)
		return out.String(), err
	}

	table, err := run("list", "--topic", dlq)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dlq list:\n%s", table)
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 7 { // header, 3 rows, summary, malformed note, omitted note
		t.Fatalf("table has %d lines, want 7:\n%s", len(lines), table)
	}
	for i, want := range []string{"[value omitted, " + size + " bytes] crm 422", "[value omitted, 7 bytes] crm 422", "[value omitted, ? bytes] email 400"} {
		if !strings.Contains(lines[1+i], want) {
			t.Errorf("row %d %q lacks %q", i, lines[1+i], want)
		}
	}
	if !strings.Contains(lines[5], "1 of them lack contract headers or carry malformed ones") || !strings.Contains(lines[6], "3 of them were too large for Kafka") {
		t.Errorf("notes:\n%s\n%s", lines[5], lines[6])
	}

	listJSON, err := run("list", "--topic", dlq, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(listJSON), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0]["value_omitted"] != true || got[0]["value_omitted_bytes"] != float64(len(value)) ||
		got[2]["value_omitted_bytes"] != -1.0 || !strings.Contains(fmt.Sprint(got[2]["problems"]), topics.HeaderValueOmitted+`: "5 KB" is not a size in bytes`) {
		t.Errorf("--json:\n%s", listJSON)
	}

	dry, err := run("redrive", "--topic", dlq)
	t.Logf("dlq redrive (dry run):\n%s", dry)
	if err != nil || !strings.Contains(dry, "dry run: 2 of the 3 dead letters") || !strings.Contains(dry, "(2 of them from the original") ||
		!strings.Contains(dry, "1 have lost their original") || !strings.Contains(dry, "not redriven: original "+topics.TopicOrder+"/2@0 is gone") {
		t.Errorf("dry run (err %v):\n%s", err, dry)
	}

	out, err := run("redrive", "--topic", dlq, "--execute")
	t.Logf("dlq redrive --execute:\n%s", out)
	if err == nil || !strings.Contains(err.Error(), topics.TopicOrder+"/2@0 is gone") {
		t.Errorf("redrive with a lost original: err = %v, want it named", err)
	}
	if !strings.Contains(out, "redrove 2 of the 3 dead letters") || !strings.Contains(out, "2 from the original") ||
		!strings.Contains(out, "1 not redriven, their original gone") || !strings.Contains(out, "committed partition:offset 0:1") {
		t.Errorf("redrive output:\n%s", out)
	}
}

// dlqKafka starts an embedded broker for the test and returns the command
// environment pointing at it and a client (manual partitioner) for the
// test's own records; both are closed with the test.
func dlqKafka(t *testing.T) (func(string) string, *kgo.Client) {
	t.Helper()
	kafka, err := devstack.StartKafka(context.Background(), devstack.KafkaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kafka.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return envOf(map[string]string{"SHOPSTREAM_BROKERS": strings.Join(kafka.Addrs(), ",")}), cl
}
