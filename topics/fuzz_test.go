package topics_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/shopstream/shopstream/topics"
)

// FuzzDecode checks that Decode never panics, that an error is always poison,
// and that an accepted record re-encodes into a record that decodes to the
// same event and whose payload decodes into its Go type.
func FuzzDecode(f *testing.F) {
	for i, ex := range examples {
		f.Add(uint8(i%4), []byte(ex.subject), marshal(f, envelope(ex)))
		f.Add(uint8(i%4), []byte(nil), mutate(f, ex.eventType, del("version")))
	}
	f.Add(uint8(1), []byte("SKU-12345"), benchRecord)
	f.Add(uint8(0), []byte(nil), []byte(`{"specversion":"1.0","data":null}`))
	f.Add(uint8(2), []byte(nil), []byte(`[]`))
	f.Add(uint8(3), []byte("x"), []byte(`{"time":"2026-11-27T10:00:00+23:59"}`))

	domains := topics.Domains()
	f.Fuzz(func(t *testing.T, di uint8, key, value []byte) {
		d := domains[int(di)%len(domains)]
		ev, err := topics.Decode(d, key, value)
		if err != nil {
			if !topics.IsPoison(err) {
				t.Fatalf("non-poison error: %v", err)
			}
			if ev != nil {
				t.Fatal("event returned with an error")
			}
			return
		}
		if _, err := ev.Payload(); err != nil {
			t.Fatalf("accepted record's payload does not decode: %v", err)
		}
		b, err := topics.Encode(ev)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		ev2, err := topics.Decode(d, key, b)
		if err != nil {
			t.Fatalf("re-encoded record %s rejected: %v", b, err)
		}
		if ev2.ID != ev.ID || ev2.Source != ev.Source || ev2.Type != ev.Type || ev2.Subject != ev.Subject ||
			ev2.Version != ev.Version || ev2.DataContentType != ev.DataContentType || ev2.SpecVersion != ev.SpecVersion {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", ev, ev2)
		}
		if ev.Time.IsZero() != ev2.Time.IsZero() || ev2.Time.Sub(ev.Time) > 0 || ev.Time.Sub(ev2.Time) >= 1e6 {
			t.Fatalf("round trip changed time: %v -> %v", ev.Time, ev2.Time)
		}
		if d1, d2 := generic(t, ev.Data), generic(t, ev2.Data); !reflect.DeepEqual(d1, d2) {
			t.Fatalf("round trip changed data: %s -> %s", ev.Data, ev2.Data)
		}
		b2, err := topics.Encode(ev2)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("Encode not stable: %s vs %s (%v)", b, b2, err)
		}
	})
}

// generic decodes JSON keeping numbers exact.
func generic(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}
