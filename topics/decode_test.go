package topics_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/topics"
)

func TestExamplesCoverAllTypes(t *testing.T) {
	var want []string
	for _, d := range topics.Domains() {
		want = append(want, topics.Types(d)...)
	}
	if len(want) != 14 || len(examples) != len(want) {
		t.Fatalf("%d types, %d examples; want 14 of each", len(want), len(examples))
	}
	for i, ex := range examples {
		if ex.eventType != want[i] {
			t.Errorf("example %d is %s, want %s", i, ex.eventType, want[i])
		}
	}
}

func TestDecodeValid(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.eventType, func(t *testing.T) {
			value := marshal(t, envelope(ex))
			for _, key := range [][]byte{[]byte(ex.subject), nil} {
				ev, err := topics.Decode(ex.domain, key, value)
				if err != nil {
					t.Fatalf("Decode(key=%q): %v", key, err)
				}
				if ev.Type != ex.eventType || ev.Subject != ex.subject || ev.SpecVersion != "1.0" ||
					ev.ID != "01JD3YV7Q8K3M8Z3J3X1X0ABCD" || ev.Source != "erp/warehouse-feed" ||
					ev.Version != 1732701600123 || ev.DataContentType != "application/json" {
					t.Errorf("unexpected envelope: %+v", ev)
				}
				if want := time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC); !ev.Time.Equal(want) {
					t.Errorf("Time = %v, want %v", ev.Time, want)
				}
				if !bytes.Equal(ev.Raw, value) {
					t.Error("Raw is not the record value")
				}
				var got, want any
				if err := json.Unmarshal(ev.Data, &got); err != nil {
					t.Fatal(err)
				}
				_ = json.Unmarshal([]byte(ex.data), &want)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("Data = %s, want %s", ev.Data, ex.data)
				}
			}
		})
	}
}

func TestPayload(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.eventType, func(t *testing.T) {
			ev, err := topics.Decode(ex.domain, nil, marshal(t, envelope(ex)))
			if err != nil {
				t.Fatal(err)
			}
			p, err := ev.Payload()
			if err != nil {
				t.Fatal(err)
			}
			zero, ok := topics.NewPayload(ex.eventType)
			if !ok || reflect.TypeOf(p) != reflect.TypeOf(zero) || reflect.TypeOf(p).Kind() != reflect.Pointer {
				t.Fatalf("Payload type %T, NewPayload type %T (%v)", p, zero, ok)
			}
			// Re-marshalling the typed payload keeps every field of the example.
			var got, want map[string]any
			_ = json.Unmarshal(marshal(t, p), &got)
			_ = json.Unmarshal([]byte(ex.data), &want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("payload round trip: got %v, want %v", got, want)
			}
		})
	}

	ev, _ := topics.Decode(topics.DomainInventory, nil, marshal(t, envelope(exampleOf(t, topics.TypeStockUpdated))))
	var su topics.StockUpdated
	if err := ev.DecodeData(&su); err != nil {
		t.Fatal(err)
	}
	if want := (topics.StockUpdated{SKU: "SKU-12345", SourceCode: "default", Quantity: 12, Status: topics.StockStatusInStock}); su != want {
		t.Errorf("DecodeData = %+v, want %+v", su, want)
	}
	if err := ev.DecodeData(su); err == nil || topics.IsPoison(err) {
		t.Errorf("DecodeData(non-pointer) = %v, want a non-poison error", err)
	}
	var wrong topics.OrderPlaced
	bad := &topics.Event{Type: topics.TypeOrderPlaced, Data: json.RawMessage(`{"items":"x"}`)}
	if err := bad.DecodeData(&wrong); !topics.IsPoison(err) || !strings.Contains(err.Error(), "items") {
		t.Errorf("DecodeData(mismatch) = %v, want poison naming items", err)
	}
	if _, ok := topics.NewPayload("nope"); ok {
		t.Error("NewPayload(unknown) ok")
	}
}

// mutate returns the example of eventType, marshalled after f changed it.
func mutate(t testing.TB, eventType string, f func(m map[string]any)) []byte {
	m := envelope(exampleOf(t, eventType))
	if f != nil {
		f(m)
	}
	return marshal(t, m)
}

func set(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
func del(k string) func(map[string]any)        { return func(m map[string]any) { delete(m, k) } }

// poisonCase is a record that Decode must reject, with substrings of the
// reason.
type poisonCase struct {
	name  string
	typ   string // selects the domain passed to Decode
	key   string
	value func(testing.TB) []byte
	want  []string // substrings of the reason
}

// poisonCaseDomain maps the types poisonCases use to their domains.
var poisonCaseDomain = map[string]topics.Domain{
	topics.TypeStockUpdated: topics.DomainInventory, topics.TypePriceChanged: topics.DomainCatalog,
	topics.TypeOrderPlaced: topics.DomainOrder, topics.TypeCustomerCreated: topics.DomainCustomer,
}

// poisonCases lists the poison records of TestDecodePoison.
func poisonCases() []poisonCase {
	const (
		inv  = topics.TypeStockUpdated
		cat  = topics.TypePriceChanged
		ord  = topics.TypeOrderPlaced
		cust = topics.TypeCustomerCreated
	)
	raw := func(s string) func(testing.TB) []byte { return func(testing.TB) []byte { return []byte(s) } }
	with := func(typ string, f func(map[string]any)) func(testing.TB) []byte {
		return func(t testing.TB) []byte { return mutate(t, typ, f) }
	}
	withData := func(typ, data string) func(testing.TB) []byte {
		return with(typ, set("data", json.RawMessage(data)))
	}
	return []poisonCase{
		{"invalid JSON", inv, "", raw(`{"specversion":`), []string{"invalid JSON"}},
		{"empty value", inv, "", raw(``), []string{"invalid JSON"}},
		{"trailing garbage", inv, "", raw(`{} x`), []string{"invalid JSON"}},
		{"array", inv, "", raw(`[1,2]`), []string{"not a JSON object"}},
		{"string", inv, "", raw(`"x"`), []string{"not a JSON object"}},
		{"null", inv, "", raw(`null`), []string{"not a JSON object"}},
		{"number", inv, "", raw(` 12 `), []string{"not a JSON object"}},
		{"specversion missing", inv, "", with(inv, del("specversion")), []string{"specversion"}},
		{"specversion 0.3", inv, "", with(inv, set("specversion", "0.3")), []string{"specversion", "0.3"}},
		{"specversion number", inv, "", with(inv, set("specversion", 1.0)), []string{"specversion"}},
		{"id missing", inv, "", with(inv, del("id")), []string{"id"}},
		{"id empty", inv, "", with(inv, set("id", "")), []string{"id"}},
		{"id number", inv, "", with(inv, set("id", 7)), []string{"id"}},
		{"source missing", inv, "", with(inv, del("source")), []string{"source"}},
		{"type missing", inv, "", with(inv, del("type")), []string{"type"}},
		{"subject missing", inv, "", with(inv, del("subject")), []string{"subject"}},
		{"subject empty", inv, "", with(inv, set("subject", "")), []string{"subject"}},
		{"type unknown", inv, "", with(inv, set("type", "inventory.stock.exploded")), []string{"type", "unknown"}},
		{"type of other domain", cat, "", with(inv, nil), []string{"type", "inventory", "catalog"}},
		{"time not RFC 3339", inv, "", with(inv, set("time", "27/11/2026 10:00")), []string{"time"}},
		{"time date only", inv, "", with(inv, set("time", "2026-11-27")), []string{"time"}},
		{"time empty", inv, "", with(inv, set("time", "")), []string{"time"}},
		{"time number", inv, "", with(inv, set("time", 1732701600)), []string{"time"}},
		{"version missing on inventory", inv, "", with(inv, del("version")), []string{"version", "missing"}},
		{"version null on catalog", cat, "", with(cat, set("version", nil)), []string{"version", "missing"}},
		{"version 0", inv, "", with(inv, set("version", 0)), []string{"version"}},
		{"version negative", cat, "", with(cat, set("version", -5)), []string{"version"}},
		{"version float", inv, "", with(inv, set("version", 1.5)), []string{"version"}},
		{"version 1.0", inv, "", with(inv, set("version", json.RawMessage(`1.0`))), []string{"version"}},
		{"version exponent", inv, "", with(inv, set("version", json.RawMessage(`1e3`))), []string{"version"}},
		{"version string", inv, "", with(inv, set("version", "5")), []string{"version"}},
		{"version too big", inv, "", with(inv, set("version", json.RawMessage(`99999999999999999999`))), []string{"version"}},
		{"version 0 on order", ord, "", with(ord, set("version", 0)), []string{"version"}},
		{"version float on customer", cust, "", with(cust, set("version", 2.5)), []string{"version"}},
		{"version string on order", ord, "", with(ord, set("version", "3")), []string{"version"}},
		{"datacontenttype text/plain", inv, "", with(inv, set("datacontenttype", "text/plain")), []string{"datacontenttype"}},
		{"datacontenttype jsonx", inv, "", with(inv, set("datacontenttype", "application/jsonx")), []string{"datacontenttype"}},
		{"datacontenttype empty", inv, "", with(inv, set("datacontenttype", "")), []string{"datacontenttype"}},
		{"data missing", inv, "", with(inv, del("data")), []string{"data", "missing"}},
		{"data null", inv, "", with(inv, set("data", nil)), []string{"data", "null"}},
		{"data not object", inv, "", withData(inv, `[1]`), []string{"data"}},
		{"data string", cust, "", withData(cust, `"C-7"`), []string{"data"}},
		{"data missing sku", inv, "", withData(inv, `{"source_code":"default","quantity":1,"status":1}`), []string{"data.sku", "required"}},
		{"data quantity string", inv, "", withData(inv, `{"sku":"SKU-12345","source_code":"default","quantity":"1","status":1}`), []string{"data.quantity"}},
		{"data status enum", inv, "", withData(inv, `{"sku":"SKU-12345","source_code":"default","quantity":1,"status":2}`), []string{"data.status"}},
		{"data status 1.0", inv, "", withData(inv, `{"sku":"SKU-12345","source_code":"default","quantity":1,"status":1.0}`), []string{"data.status", "int32"}},
		{"data quantity overflow", inv, "", withData(inv, `{"sku":"SKU-12345","source_code":"default","quantity":1e400,"status":1}`), []string{"data.quantity"}},
		{"data source_code empty", inv, "", withData(inv, `{"sku":"SKU-12345","source_code":"","quantity":1,"status":1}`), []string{"data.source_code"}},
		{"data price negative", cat, "", withData(cat, `{"sku":"SKU-2","price":-1}`), []string{"data.price"}},
		{"data currency", ord, "", withData(ord, `{"order_id":"100000042","customer_id":"C-7","email":"a@b.c","grand_total":1,"currency":"eur","items":[{"sku":"A","qty":1,"price":1}]}`), []string{"data.currency"}},
		{"data email", ord, "", withData(ord, `{"order_id":"100000042","customer_id":"C-7","email":"nobody","grand_total":1,"currency":"EUR","items":[{"sku":"A","qty":1,"price":1}]}`), []string{"data.email"}},
		{"data items empty", ord, "", withData(ord, `{"order_id":"100000042","customer_id":"C-7","email":"a@b.c","grand_total":1,"currency":"EUR","items":[]}`), []string{"data.items"}},
		{"data item qty 0", ord, "", withData(ord, `{"order_id":"100000042","customer_id":"C-7","email":"a@b.c","grand_total":1,"currency":"EUR","items":[{"sku":"A","qty":0,"price":1}]}`), []string{"data.items.0.qty"}},
		{"data order_id number", ord, "", withData(ord, `{"order_id":100000042,"customer_id":"C-7","email":"a@b.c","grand_total":1,"currency":"EUR","items":[{"sku":"A","qty":1,"price":1}]}`), []string{"data.order_id"}},
		{"sku differs from subject", inv, "", withData(inv, `{"sku":"OTHER","source_code":"default","quantity":1,"status":1}`), []string{"data.sku", "subject"}},
		{"sku differs on catalog", cat, "", withData(cat, `{"sku":"OTHER","price":1}`), []string{"data.sku", "subject"}},
		{"order_id differs", ord, "", with(ord, set("subject", "100000043")), []string{"data.order_id", "subject"}},
		{"customer_id differs", cust, "", with(cust, set("subject", "C-8")), []string{"data.customer_id", "subject"}},
		{"record key differs", inv, "SKU-99", with(inv, nil), []string{"key", "subject"}},
	}
}

func TestDecodePoison(t *testing.T) {
	tests := poisonCases()
	dom := poisonCaseDomain
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var key []byte
			if tc.key != "" {
				key = []byte(tc.key)
			}
			ev, err := topics.Decode(dom[tc.typ], key, tc.value(t))
			if err == nil {
				t.Fatalf("Decode accepted %s: %+v", tc.value(t), ev)
			}
			if !topics.IsPoison(err) {
				t.Fatalf("Decode error %v is not poison", err)
			}
			if ev != nil {
				t.Errorf("Decode returned an event with an error")
			}
			var pe *topics.PoisonError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not *PoisonError", err)
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(pe.Reason, w) {
					t.Errorf("reason %q does not mention %q", pe.Reason, w)
				}
			}
			if len(pe.Reason) > 200 {
				t.Errorf("reason is %d bytes long: %q", len(pe.Reason), pe.Reason)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name  string
		typ   string
		check func(*testing.T, *topics.Event)
		f     func(map[string]any)
	}{
		{"time absent", topics.TypeStockUpdated, func(t *testing.T, ev *topics.Event) {
			if !ev.Time.IsZero() {
				t.Errorf("Time = %v", ev.Time)
			}
		}, del("time")},
		{"time with offset", topics.TypeStockUpdated, func(t *testing.T, ev *topics.Event) {
			if !ev.Time.Equal(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)) {
				t.Errorf("Time = %v", ev.Time)
			}
		}, set("time", "2026-11-27T10:00:00+01:00")},
		{"version absent on order", topics.TypeOrderPlaced, func(t *testing.T, ev *topics.Event) {
			if ev.Version != 0 {
				t.Errorf("Version = %d", ev.Version)
			}
		}, del("version")},
		{"version absent on customer", topics.TypeSegmentUpdated, nil, del("version")},
		{"version 1 on customer", topics.TypeCustomerCreated, func(t *testing.T, ev *topics.Event) {
			if ev.Version != 1 {
				t.Errorf("Version = %d", ev.Version)
			}
		}, set("version", 1)},
		{"datacontenttype absent", topics.TypeStockUpdated, nil, del("datacontenttype")},
		{"datacontenttype with charset", topics.TypeStockUpdated, func(t *testing.T, ev *topics.Event) {
			if ev.DataContentType != "application/json; charset=utf-8" {
				t.Errorf("DataContentType = %q", ev.DataContentType)
			}
		}, set("datacontenttype", "application/json; charset=utf-8")},
		{"extension attributes", topics.TypeStockUpdated, nil, set("traceparent", "00-abc-def-01")},
		{"additional payload fields", topics.TypeStockUpdated, nil,
			set("data", json.RawMessage(`{"sku":"SKU-12345","source_code":"default","quantity":12,"status":1,"note":"x"}`))},
		{"segments empty", topics.TypeSegmentUpdated, nil,
			set("data", json.RawMessage(`{"customer_id":"C-7","segments":[]}`))},
		{"return without items", topics.TypeReturnInitiated, nil,
			set("data", json.RawMessage(`{"order_id":"100000042","return_id":"R-1","reason":"x"}`))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex := exampleOf(t, tc.typ)
			ev, err := topics.Decode(ex.domain, []byte(ex.subject), mutate(t, tc.typ, tc.f))
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, ev)
			}
			if _, err := ev.Payload(); err != nil {
				t.Errorf("Payload: %v", err)
			}
		})
	}
}

func TestDecodeUnknownDomain(t *testing.T) {
	ex := exampleOf(t, topics.TypeStockUpdated)
	_, err := topics.Decode("warehouse", nil, marshal(t, envelope(ex)))
	if err == nil || topics.IsPoison(err) {
		t.Fatalf("Decode(unknown domain) = %v, want a non-poison error", err)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, ex := range examples {
		t.Run(ex.eventType, func(t *testing.T) {
			in := &topics.Event{
				SpecVersion:     topics.SpecVersion,
				ID:              "evt-1",
				Source:          "test",
				Type:            ex.eventType,
				Subject:         ex.subject,
				Time:            time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC),
				Version:         42,
				DataContentType: "application/json",
				Data:            json.RawMessage(ex.data),
			}
			b, err := topics.Encode(in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte(`"time":"2026-11-27T10:00:00.123Z"`)) {
				t.Errorf("time not RFC 3339 with milliseconds: %s", b)
			}
			out, err := topics.Decode(ex.domain, []byte(ex.subject), b)
			if err != nil {
				t.Fatal(err)
			}
			want := *in
			want.Time = in.Time.Truncate(time.Millisecond)
			want.Raw = b
			if !out.Time.Equal(want.Time) {
				t.Errorf("Time = %v, want %v", out.Time, want.Time)
			}
			out.Time, want.Time = time.Time{}, time.Time{}
			if !reflect.DeepEqual(*out, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", *out, want)
			}
		})
	}
}

func TestEncodeOmitsZeroValues(t *testing.T) {
	b, err := topics.Encode(&topics.Event{SpecVersion: "1.0", ID: "1", Source: "s", Type: topics.TypeCustomerCreated,
		Subject: "C-7", Data: json.RawMessage(`{"customer_id":"C-7","email":"a@b.c"}`)})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"specversion":"1.0","id":"1","source":"s","type":"customer.created","subject":"C-7","data":{"customer_id":"C-7","email":"a@b.c"}}`
	if string(b) != want {
		t.Errorf("Encode =\n%s\nwant\n%s", b, want)
	}
	if _, err := topics.Decode(topics.DomainCustomer, []byte("C-7"), b); err != nil {
		t.Error(err)
	}
	// A time in another zone keeps its offset.
	b, _ = topics.Encode(&topics.Event{Time: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.FixedZone("", -5*3600))})
	if !bytes.Contains(b, []byte(`"time":"2026-01-02T03:04:05.006-05:00"`)) {
		t.Errorf("Encode = %s", b)
	}
	if _, err := topics.Encode(&topics.Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Error("Encode accepted year 10000")
	}
	if _, err := topics.Encode(&topics.Event{Data: json.RawMessage(`{`)}); err == nil {
		t.Error("Encode accepted invalid data")
	}
}

// benchRecord is a typical inventory.stock.updated record (about 300 bytes).
var benchRecord = []byte(`{"specversion":"1.0","id":"01JD3YV7Q8K3M8Z3J3X1X0ABCD","source":"erp/warehouse-feed",` +
	`"type":"inventory.stock.updated","subject":"SKU-12345","time":"2026-11-27T10:00:00.123Z",` +
	`"version":1732701600123,"datacontenttype":"application/json",` +
	`"data":{"sku":"SKU-12345","source_code":"default","quantity":12,"status":1}}`)

func BenchmarkDecode(b *testing.B) {
	key := []byte("SKU-12345")
	if _, err := topics.Decode(topics.DomainInventory, key, benchRecord); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchRecord)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := topics.Decode(topics.DomainInventory, key, benchRecord); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeConcurrent decodes from many goroutines at once, including the
// first use that compiles the schemas (run with -race).
func TestDecodeConcurrent(t *testing.T) {
	t.Parallel()
	done := make(chan error)
	for i := range 8 {
		go func() {
			ex := examples[i%len(examples)]
			value := marshal(t, envelope(ex))
			var err error
			for range 50 {
				if _, err = topics.Decode(ex.domain, []byte(ex.subject), value); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
