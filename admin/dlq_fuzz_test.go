package admin

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topics"
)

// FuzzParseDeadLetter feeds parseDeadLetter arbitrary contract header
// values: it must never panic, every header it cannot use is named in
// Problems (never silently dropped), and a value it accepts round-trips.
// The seeds in f.Add (and any corpus under testdata/fuzz) run in `go test`.
// Bit i of omit leaves out header i (keys below); shopstream.value.omitted
// is bit 10, so a corpus entry without it sets that bit.
func FuzzParseDeadLetter(f *testing.F) {
	good := []string{"commerce.inventory.v1", "3", "1042", "1732701600123", "shopstream.inventory",
		"sink answered 503", "retries_exhausted", "5", "2026-11-27T10:00:00.123Z", "1", "1048577"}
	f.Add(good[0], good[1], good[2], good[3], good[4], good[5], good[6], good[7], good[8], good[9], good[10], uint16(0x400))
	f.Add(good[0], good[1], good[2], good[3], good[4], good[5], good[6], good[7], good[8], good[9], good[10], uint16(0)) // value omitted
	f.Add("", "", "", "", "", "", "", "", "", "", "", uint16(0x7ff))                                                     // all missing
	f.Add("t", "-1", "x", "9999999999999999999999", "g", "e", "poison", "2147483648", "yesterday", "-1", "-1", uint16(0))
	f.Add("t\xff\xfe", "2147483647", "9223372036854775807", "-9223372036854775808", "\x00", "", "permanent", "0", "2026-11-27T10:00:00+01:00", "abc", "9223372036854775808", uint16(0))
	f.Add("t", " 1", "1 ", "+1", "g", "e", "c", "0x10", "2026-13-01T00:00:00Z", "", "+5", uint16(0x200))

	keys := []string{topics.HeaderOriginalTopic, topics.HeaderOriginalPartition, topics.HeaderOriginalOffset,
		topics.HeaderOriginalTimestamp, topics.HeaderGroup, topics.HeaderError, topics.HeaderErrorClass,
		topics.HeaderAttempts, topics.HeaderFailedAt, topics.HeaderRedriveCount, topics.HeaderValueOmitted}
	f.Fuzz(func(t *testing.T, topic, part, off, ts, group, msg, class, attempts, failedAt, redrives, omitted string, omit uint16) {
		vals := []string{topic, part, off, ts, group, msg, class, attempts, failedAt, redrives, omitted}
		r := &kgo.Record{Topic: "commerce.inventory.v1.dlq", Key: []byte("SKU-1"), Value: []byte("{}")}
		for i, k := range keys {
			if omit&(1<<i) == 0 {
				r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(vals[i])})
			}
		}
		// A duplicate header must not win: the first of a name counts.
		if omit&(1<<1) == 0 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: topics.HeaderOriginalPartition, Value: []byte("77")})
		}

		d := parseDeadLetter(r)
		named := func(key string) bool {
			for _, p := range d.Problems {
				if strings.HasPrefix(p, key+": ") {
					return true
				}
			}
			return false
		}
		for i, k := range keys {
			if k == topics.HeaderRedriveCount || k == topics.HeaderValueOmitted {
				continue // optional: absent means never redriven, value kept
			}
			if omit&(1<<i) != 0 && !named(k) {
				t.Errorf("missing %s not reported; problems %q", k, d.Problems)
			}
		}
		if omit&(1<<1) == 0 {
			if d.OriginalPartition == 77 {
				t.Errorf("the second %s header won", topics.HeaderOriginalPartition)
			}
			if d.OriginalPartition == -1 && part != "-1" && !named(topics.HeaderOriginalPartition) {
				t.Errorf("partition %q neither parsed nor reported", part)
			}
		}
		if omit&(1<<8) == 0 && d.FailedAt.IsZero() && !named(topics.HeaderFailedAt) {
			if _, err := time.Parse(time.RFC3339Nano, failedAt); err != nil {
				t.Errorf("failed.at %q neither parsed nor reported", failedAt)
			}
		}
		if omit&(1<<9) == 0 && d.RedriveCount == 0 && !isZero(redrives) && !named(topics.HeaderRedriveCount) {
			t.Errorf("redrive count %q neither parsed nor reported", redrives)
		}
		if omit&(1<<0) == 0 && d.OriginalTopic != topic {
			t.Errorf("original topic %q, want %q", d.OriginalTopic, topic)
		}
		// shopstream.value.omitted: present marks the value omitted whatever
		// it holds; a size is accepted only as plain decimal digits.
		switch {
		case omit&(1<<10) != 0:
			if d.ValueOmitted || d.ValueOmittedBytes != 0 || named(topics.HeaderValueOmitted) {
				t.Errorf("no %s header, yet omitted=%v bytes=%d problems %q", topics.HeaderValueOmitted, d.ValueOmitted, d.ValueOmittedBytes, d.Problems)
			}
		case !d.ValueOmitted:
			t.Errorf("%s %q present but the value is not marked omitted", topics.HeaderValueOmitted, omitted)
		case d.ValueOmittedBytes == -1:
			if !named(topics.HeaderValueOmitted) {
				t.Errorf("omitted size %q neither parsed nor reported", omitted)
			}
		case named(topics.HeaderValueOmitted):
			t.Errorf("omitted size %q parsed as %d and reported", omitted, d.ValueOmittedBytes)
		default:
			if n, err := strconv.ParseInt(omitted, 10, 64); !allDigits(omitted) || err != nil || n != d.ValueOmittedBytes {
				t.Errorf("omitted size %q accepted as %d", omitted, d.ValueOmittedBytes)
			}
		}
		// The JSON form must always encode (base64 for non-UTF-8) and decode.
		b, err := d.MarshalJSON()
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		var back DeadLetter
		if err := back.UnmarshalJSON(b); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if string(back.Key) != string(d.Key) || string(back.Value) != string(d.Value) {
			t.Errorf("key/value did not round-trip: %q %q", back.Key, back.Value)
		}
		if back.ValueOmitted != d.ValueOmitted || back.ValueOmittedBytes != d.ValueOmittedBytes {
			t.Errorf("value omitted %v/%d came back as %v/%d", d.ValueOmitted, d.ValueOmittedBytes, back.ValueOmitted, back.ValueOmittedBytes)
		}
	})
}

func allDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func isZero(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n == 0
}
