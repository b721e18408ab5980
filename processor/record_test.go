package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topics"
)

var contractHeaders = []string{
	topics.HeaderOriginalTopic,
	topics.HeaderOriginalPartition,
	topics.HeaderOriginalOffset,
	topics.HeaderOriginalTimestamp,
	topics.HeaderGroup,
	topics.HeaderError,
	topics.HeaderErrorClass,
	topics.HeaderAttempts,
	topics.HeaderFailedAt,
}

func TestDLQHeaders(t *testing.T) {
	orig := []kgo.RecordHeader{
		{Key: "traceparent", Value: []byte("00-abc-def-01")},
		{Key: topics.HeaderError, Value: []byte("old error")},
		{Key: "x-dup", Value: []byte("1")},
		{Key: topics.HeaderAttempts, Value: []byte("3")},
		{Key: topics.HeaderRedriveGroup, Value: []byte("shopstream.inventory")},
		{Key: topics.HeaderRedriveCount, Value: []byte("1")},
		{Key: "x-dup", Value: []byte("2")},
		{Key: topics.HeaderFailedAt, Value: []byte("2001-01-01T00:00:00Z")},
		{Key: topics.HeaderGroup, Value: []byte("shopstream.other")},
	}
	rec := &kgo.Record{
		Topic:     topics.TopicInventory,
		Partition: 7,
		Offset:    1234567890123,
		Timestamp: time.UnixMilli(1717171717123).In(time.FixedZone("CEST", 2*3600)),
		Key:       []byte("SKU-1"),
		Headers:   slices.Clone(orig),
	}
	failedAt := time.Date(2025, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	cause := fmt.Errorf("magento put SKU-1: %w", errors.New("422 unprocessable"))

	got := dlqHeaders(rec, "shopstream.inventory", cause, topics.ErrorClassPermanent, 8, failedAt)

	if !slices.EqualFunc(rec.Headers, orig, headerEqual) {
		t.Errorf("dlqHeaders modified the record's headers: %v", rec.Headers)
	}

	// The original non-contract headers, in order, then the nine contract ones.
	wantKept := []kgo.RecordHeader{orig[0], orig[2], orig[4], orig[5], orig[6]}
	if len(got) != len(wantKept)+len(contractHeaders) {
		t.Fatalf("dlqHeaders returned %d headers, want %d: %v", len(got), len(wantKept)+len(contractHeaders), dump(got))
	}
	if !slices.EqualFunc(got[:len(wantKept)], wantKept, headerEqual) {
		t.Errorf("kept headers = %v, want %v", dump(got[:len(wantKept)]), dump(wantKept))
	}

	counts := map[string]int{}
	for _, h := range got {
		counts[h.Key]++
	}
	for _, k := range contractHeaders {
		if counts[k] != 1 {
			t.Errorf("header %s appears %d times, want exactly once", k, counts[k])
		}
	}

	want := map[string]string{
		topics.HeaderOriginalTopic:     topics.TopicInventory,
		topics.HeaderOriginalPartition: "7",
		topics.HeaderOriginalOffset:    "1234567890123",
		topics.HeaderOriginalTimestamp: "1717171717123",
		topics.HeaderGroup:             "shopstream.inventory",
		topics.HeaderError:             "magento put SKU-1: 422 unprocessable",
		topics.HeaderErrorClass:        "permanent",
		topics.HeaderAttempts:          "8",
	}
	for k, v := range want {
		if h, _ := lastHeader(got, k); h != v {
			t.Errorf("header %s = %q, want %q", k, h, v)
		}
	}

	fa, _ := lastHeader(got, topics.HeaderFailedAt)
	parsed, err := time.Parse(time.RFC3339, fa)
	if err != nil {
		t.Errorf("header %s = %q is not RFC 3339: %v", topics.HeaderFailedAt, fa, err)
	} else if !parsed.Equal(failedAt) {
		t.Errorf("header %s = %q parses to %v, want %v", topics.HeaderFailedAt, fa, parsed, failedAt)
	}
	// The redrive headers are no dead-letter headers: they pass through.
	if v, _ := lastHeader(got, topics.HeaderRedriveGroup); v != "shopstream.inventory" {
		t.Errorf("header %s = %q, want it kept", topics.HeaderRedriveGroup, v)
	}
}

func TestDLQHeadersPoisonNoHeaders(t *testing.T) {
	rec := &kgo.Record{Topic: "commerce.order.v1", Partition: 0, Offset: 0, Timestamp: time.UnixMilli(0)}
	got := dlqHeaders(rec, "shopstream.order-crm", errors.New("not json"), topics.ErrorClassPoison, 0, time.Unix(0, 0).UTC())
	if len(got) != len(contractHeaders) {
		t.Fatalf("dlqHeaders of a record without headers returned %d headers, want %d", len(got), len(contractHeaders))
	}
	for i, k := range contractHeaders {
		if got[i].Key != k {
			t.Errorf("header %d = %s, want %s", i, got[i].Key, k)
		}
	}
	for k, v := range map[string]string{
		topics.HeaderOriginalPartition: "0",
		topics.HeaderOriginalOffset:    "0",
		topics.HeaderOriginalTimestamp: "0",
		topics.HeaderAttempts:          "0",
		topics.HeaderErrorClass:        "poison",
		topics.HeaderError:             "not json",
		topics.HeaderFailedAt:          "1970-01-01T00:00:00Z",
	} {
		if h, _ := lastHeader(got, k); h != v {
			t.Errorf("header %s = %q, want %q", k, h, v)
		}
	}
}

func TestDLQHeadersAttemptsDecimal(t *testing.T) {
	rec := &kgo.Record{Topic: "t"}
	for _, n := range []int{1, 9, 10, 123} {
		got := dlqHeaders(rec, "g", errors.New("x"), topics.ErrorClassRetriesExhausted, n, time.Now())
		if v, _ := lastHeader(got, topics.HeaderAttempts); v != strconv.Itoa(n) {
			t.Errorf("attempts header for %d = %q", n, v)
		}
	}
}

func TestHeader(t *testing.T) {
	rec := &kgo.Record{Headers: []kgo.RecordHeader{
		{Key: "a", Value: []byte("1")},
		{Key: "empty", Value: nil},
		{Key: "a", Value: []byte("2")},
	}}
	tests := []struct {
		key    string
		want   string
		wantOK bool
	}{
		{"a", "1", true}, // the first one
		{"empty", "", true},
		{"missing", "", false},
		{"A", "", false}, // keys are case-sensitive
	}
	for _, tt := range tests {
		got, ok := header(rec, tt.key)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("header(%q) = %q, %v; want %q, %v", tt.key, got, ok, tt.want, tt.wantOK)
		}
	}
	if _, ok := header(&kgo.Record{}, "a"); ok {
		t.Errorf("header of a record without headers reported a value")
	}
}

func TestSleep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if sleep(ctx, time.Hour) {
		t.Errorf("sleep(cancelled ctx, 1h) = true, want false")
	}

	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if sleep(ctx, time.Hour) {
		t.Errorf("sleep(ctx ending during the wait, 1h) = true, want false")
	}

	start := time.Now()
	if !sleep(context.Background(), 5*time.Millisecond) {
		t.Errorf("sleep(live ctx, 5ms) = false, want true")
	}
	if d := time.Since(start); d < 5*time.Millisecond {
		t.Errorf("sleep(live ctx, 5ms) returned after %v", d)
	}
}

func headerEqual(a, b kgo.RecordHeader) bool {
	return a.Key == b.Key && string(a.Value) == string(b.Value)
}

func lastHeader(hs []kgo.RecordHeader, key string) (string, bool) {
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].Key == key {
			return string(hs[i].Value), true
		}
	}
	return "", false
}

func dump(hs []kgo.RecordHeader) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Key + "=" + string(h.Value)
	}
	return out
}

// A slim dead letter keeps the key, the contract headers and the redrive
// history, drops the value and every other original header, and names the
// original's size.
func TestSlimDeadLetter(t *testing.T) {
	rec := &kgo.Record{Topic: "commerce.inventory.v1", Partition: 2, Offset: 9, Key: []byte("SKU-1"), Value: make([]byte, 1234),
		Headers: []kgo.RecordHeader{
			{Key: "traceparent", Value: []byte("00-abc")},
			{Key: topics.HeaderRedriveGroup, Value: []byte("shopstream.inventory")},
			{Key: topics.HeaderRedriveCount, Value: []byte("2")},
		}}
	d := newDeadLetter(rec, "shopstream.inventory", errors.New("too big"), topics.ErrorClassPoison, 0)
	d.slim = true
	r := d.record("commerce.inventory.v1.dlq")
	if r.Value != nil || string(r.Key) != "SKU-1" {
		t.Fatalf("slim dead letter value %d bytes, key %q", len(r.Value), r.Key)
	}
	got := map[string]string{}
	for _, h := range r.Headers {
		if _, dup := got[h.Key]; dup {
			t.Errorf("header %s twice", h.Key)
		}
		got[h.Key] = string(h.Value)
	}
	if _, ok := got["traceparent"]; ok {
		t.Error("an original header other than the redrive history was kept")
	}
	for k, want := range map[string]string{
		topics.HeaderValueOmitted: "1234", topics.HeaderRedriveCount: "2", topics.HeaderRedriveGroup: "shopstream.inventory",
		topics.HeaderOriginalOffset: "9", topics.HeaderOriginalPartition: "2", topics.HeaderErrorClass: topics.ErrorClassPoison,
	} {
		if got[k] != want {
			t.Errorf("header %s = %q, want %q", k, got[k], want)
		}
	}
}
