package topics_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/shopstream/shopstream/topics"
)

// This file holds Decode and ValidateData to the reference implementation
// (reference_test.go: encoding/json for the envelope, the santhosh-tekuri
// JSON Schema validator for data): on every input both must accept or both
// reject; accepted events must be equal field for field; and reasons must
// agree, word for word for the envelope and naming the same fields (the same
// "data.x.y" list) where the JSON Schema validator words its messages its own
// way or encoding/json its syntax errors.

// refResult runs the reference Decode. It reports panicked if the reference
// panicked, which the JSON Schema validator does on a number whose exponent
// big.Rat refuses (such as a price of 1e-2000000): there is then nothing to
// compare with.
func refResult(d topics.Domain, key, value []byte) (ev *topics.Event, err error, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	ev, err = topics.RefDecode(d, key, value)
	return ev, err, false
}

func refValidate(eventType string, data []byte) (err error, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	return topics.RefValidateData(eventType, data), false
}

// checkSame fails t unless Decode and the reference agree on the record.
func checkSame(t testing.TB, d topics.Domain, key, value []byte) {
	t.Helper()
	got, gotErr := topics.Decode(d, key, value)
	want, wantErr, panicked := refResult(d, key, value)
	if panicked {
		return
	}
	if msg := diffResults(got, gotErr, want, wantErr); msg != "" {
		t.Fatalf("Decode(%s, key %q, %q):\n%s", d, key, value, msg)
	}
}

// diffResults describes how the fast result differs from the reference, or
// returns "".
func diffResults(got *topics.Event, gotErr error, want *topics.Event, wantErr error) string {
	switch {
	case gotErr == nil && wantErr == nil:
		if !reflect.DeepEqual(*got, *want) {
			return fmt.Sprintf("events differ:\n got %s\nwant %s", show(got), show(want))
		}
		if &got.Raw[0] != &want.Raw[0] {
			return "Raw is not the record value"
		}
		return ""
	case gotErr != nil && wantErr != nil:
		if topics.IsPoison(gotErr) != topics.IsPoison(wantErr) {
			return fmt.Sprintf("error classes differ:\n got %v\nwant %v", gotErr, wantErr)
		}
		if got != nil {
			return "an event returned with an error"
		}
		return diffReasons(gotErr.Error(), wantErr.Error())
	case gotErr != nil:
		return fmt.Sprintf("rejected by Decode: %v\naccepted by the reference: %s", gotErr, show(want))
	default:
		return fmt.Sprintf("accepted by Decode: %s\nrejected by the reference: %v", show(got), wantErr)
	}
}

// show renders an event for a failure message.
func show(ev *topics.Event) string {
	return fmt.Sprintf("{SpecVersion:%q ID:%q Source:%q Type:%q Subject:%q Time:%v (%v) Version:%d DataContentType:%q Data:%q Raw:%q}",
		ev.SpecVersion, ev.ID, ev.Source, ev.Type, ev.Subject, ev.Time, ev.Time.Location(), ev.Version, ev.DataContentType, ev.Data, ev.Raw)
}

// diffReasons compares two reasons: equal, or naming the same list of
// fields where the wording is the validator's own (data...) or a syntax
// error's (invalid JSON).
func diffReasons(got, want string) string {
	if got == want {
		return ""
	}
	gl, wl := reasonLabels(got), reasonLabels(want)
	if slices.Equal(gl, wl) && (wl[0] == "invalid JSON" || strings.HasPrefix(wl[0], "data")) {
		return ""
	}
	return fmt.Sprintf("reasons differ:\n got %q\nwant %q", got, want)
}

// reasonLabels returns the field (the text before ": ") of each message of
// a reason, or the message itself if it has none.
func reasonLabels(reason string) []string {
	reason = strings.TrimPrefix(reason, "poison record: ")
	// A message starts with "data" or is "and N more"; a "; " followed
	// by anything else is part of a quoted value.
	var msgs []string
	for i, m := range strings.Split(reason, "; ") {
		if i > 0 && !strings.HasPrefix(m, "data") && !strings.HasPrefix(m, "and ") {
			msgs[len(msgs)-1] += "; " + m
			continue
		}
		msgs = append(msgs, m)
	}
	var labels []string
	for _, m := range msgs {
		label, _, _ := strings.Cut(m, ": ")
		labels = append(labels, label)
	}
	return labels
}

// checkSameData fails t unless ValidateData and the reference agree.
func checkSameData(t testing.TB, eventType string, data []byte) {
	t.Helper()
	gotErr := topics.ValidateData(eventType, data)
	wantErr, panicked := refValidate(eventType, data)
	if panicked {
		return
	}
	switch {
	case (gotErr == nil) != (wantErr == nil):
		t.Fatalf("ValidateData(%s, %q) = %v, reference %v", eventType, data, gotErr, wantErr)
	case gotErr != nil:
		if topics.IsPoison(gotErr) != topics.IsPoison(wantErr) {
			t.Fatalf("ValidateData(%s, %q) = %v, reference %v", eventType, data, gotErr, wantErr)
		}
		if msg := diffReasons(gotErr.Error(), wantErr.Error()); msg != "" {
			t.Fatalf("ValidateData(%s, %q): %s", eventType, data, msg)
		}
	}
}

// interestingValues are JSON values that probe the type, format, bound,
// length, pattern and enum rules and the string decoding.
var interestingValues = []string{
	`null`, `true`, `false`, `0`, `-0`, `1`, `-1`, `2`, `3`, `4`, `5`, `0.0`, `-0.0`, `1.0`, `1.5`, `-1.5`,
	`1e0`, `1E+0`, `10e-1`, `1e3`, `0e5`, `1e-400`, `-1e-400`, `1e400`, `-1e400`, `1e308`, `1.7976931348623157e308`,
	`1.7976931348623159e308`, `1.797693134862315808e308`, `2e308`, `2147483647`, `2147483648`, `-2147483648`,
	`-2147483649`, `9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `99999999999999999999`,
	`0.000000000000000000001`, `1732701600123`, `""`, `"a"`, `"ab"`, `"abc"`, `"1.0"`, `"5"`, `"\u0041"`, `"\u0000"`,
	`"EUR"`, `"eur"`, `"EU"`, `"EURO"`, `"E\u0055R"`, `"EUR\n"`, `"@"`, `"a@"`, `"a@b"`, `"\u0040bc"`, `"é@"`, `"ab\u00e9"`,
	`"\ud800"`, `"\ud83d\ude00"`, `"\ud83d"`, "\"\xff\"", "\"a\xffb\"", "\"\xe2\x82\"", `"created"`, `"in_transit"`,
	`"delivered"`, `"exception"`, `"Created"`, `"application/json"`, `"APPLICATION/JSON ; charset=x"`,
	`"application/jsonx"`, `"1.0 "`, `"2026-11-27T10:00:00Z"`, `"2026-11-27T10:00:00.123456789123Z"`,
	`"2026-02-29T10:00:00Z"`, `"2024-02-29T23:59:59.5Z"`, `"2026-11-27T10:00:00+01:00"`, `"2026-11-27T10:00:00+00:00"`,
	`"2026-11-27T24:00:00Z"`, `"2026-11-27T10:00:60Z"`, `"2026-11-27t10:00:00z"`, `"2026-11-27T10:00:00,5Z"`,
	`"2026-11-27T10:00:00.Z"`, `"0000-01-01T00:00:00Z"`, `"SKU-12345"`, `"SKU-1"`, `"100000042"`, `"C-7"`,
	`[]`, `[1]`, `["a"]`, `["a",1]`, `{}`, `[{}]`, `[{"sku":"A","qty":1,"price":1}]`, `[{"sku":"","qty":0,"price":-1}]`,
	`[{"sku":"A","qty":1e-400,"price":0}]`, `{"a":[{"b":null}]}`,
	// Exponents that big.Rat refuses: the reference validator panics on
	// them where a bound applies (see TestDecodeHugeExponents).
	`1e-2000000`, `-1e-2000000`, `0e-2000000`, `1e2000000`, `1e99999999999999999999`, `-0e-99999999999999999999`,
}

// records returns valid records, poison records and hand-made tricky ones,
// each with the domain and key to decode it with.
func seedRecords(t testing.TB) []seedRecord {
	var recs []seedRecord
	for _, ex := range examples {
		v := marshal(t, envelope(ex))
		recs = append(recs, seedRecord{ex.domain, []byte(ex.subject), v}, seedRecord{ex.domain, nil, v})
		recs = append(recs, seedRecord{ex.domain, nil, mutate(t, ex.eventType, del("version"))})
	}
	for _, pc := range poisonCases() {
		var key []byte
		if pc.key != "" {
			key = []byte(pc.key)
		}
		recs = append(recs, seedRecord{poisonCaseDomain[pc.typ], key, pc.value(t)})
	}
	inv := func(s string) seedRecord { return seedRecord{topics.DomainInventory, nil, []byte(s)} }
	const head = `"specversion":"1.0","id":"i","source":"s","type":"inventory.stock.updated","subject":"A","version":1`
	const data = `"data":{"sku":"A","source_code":"d","quantity":1,"status":1}`
	for _, s := range []string{
		`{` + head + `,` + data + `}`,
		` { ` + strings.ReplaceAll(strings.ReplaceAll(head+`,`+data, ":", " :\t"), ",", "\r\n,\n ") + ` } `,
		`{` + data + `,` + head + `}`,
		// Case-insensitive names, escapes in names, folding of the Kelvin sign and the long s.
		`{"SpecVersion":"1.0","ID":"i","SOURCE":"s","Type":"inventory.stock.updated","subJect":"A","VERSION":1,"Data":{"sku":"A","source_code":"d","quantity":1,"status":1}}`,
		`{"\u0073pecversion":"1.0","id":"i","source":"s","type":"inventory.stock.updated","subject":"A","version":1,` + data + `}`,
		`{"specverſion":"1.0","id":"i","ſource":"s","type":"inventory.stock.updated","ſubject":"A","verſion":1,` + data + `}`,
		`{"specversion":"1.0","id":"i","source":"s","type":"inventory.stoc\u212a.updated","subject":"A","version":1,` + data + `}`,
		`{"specversion":"1.0","ıd":"i","source":"s","type":"inventory.stock.updated","subject":"A","version":1,` + data + `}`,
		`{"specversion":"1.0","İd":"i","id":"j","source":"s","type":"inventory.stock.updated","subject":"A","version":1,` + data + `}`,
		`{"specversion":"1.0","\u0130d":"i","id":"j","source":"s","type":"inventory.stock.updated","subject":"A","version":1,` + data + `}`,
		`{"specversion":"1.0","id":"i","source":"s","type":"inventory.stock.updated","subject":"A","version":1,"data\u212a":1,` + data + `}`,
		`{"specversion":"1.0","id":"i","source":"s","type":"inventory.stock.updated","subject":"A","version":1,"dat\u0041":{"sku":"A","source_code":"d","quantity":1,"status":1}}`,
		// Duplicates: the last wins; null leaves a string, unsets time and datacontenttype, and is kept in version and data.
		`{` + head + `,"id":"j","id":null,"subject":"B","subject":"A",` + data + `}`,
		`{` + head + `,"time":"x","time":null,"datacontenttype":"text/plain","datacontenttype":null,` + data + `}`,
		`{` + head + `,"version":null,` + data + `}`,
		`{` + head + `,"version":null,"version":3,` + data + `}`,
		`{` + head + `,` + data + `,"data":null}`,
		`{` + head + `,"data":null,` + data + `}`,
		`{` + head + `,"DATA":1,` + data + `,"Data":{"sku":"A","source_code":"d","quantity":1,"status":1}}`,
		`{` + head + `,"id":1,"id":"x",` + data + `}`,
		`{` + head + `,"id":"x","source":[],"time":{},` + data + `}`,
		`{` + head + `,"time":5,"specversion":"0.3",` + data + `}`,
		`{"specversion":"0.3","id":true,` + data + `}`,
		// Escapes and invalid UTF-8 in values.
		`{"specversion":"1\u002e0","id":"\ud800","source":"\\\/\b\f\n\r\t","type":"inventory\u002estock.updated","subject":"\u0041","version":1,` + data + `}`,
		"{\"specversion\":\"1.0\",\"id\":\"\xff\",\"source\":\"s\xc3\",\"type\":\"inventory.stock.updated\",\"subject\":\"A\xff\",\"version\":1,\"data\":{\"sku\":\"A\xfe\",\"source_code\":\"d\",\"quantity\":1,\"status\":1}}",
		"{\"specversion\":\"1.0\",\"id\":\"i\",\"source\":\"s\",\"type\":\"inventory.stock.updated\",\"subject\":\"A\xff\",\"version\":1,\"data\":{\"sku\":\"A\\ufffd\",\"source_code\":\"d\",\"quantity\":1,\"status\":1}}",
		`{` + head + `,"datacontenttype":"application\/json",` + data + `}`,
		`{` + head + `,"datacontenttype":" Application/JSON ;x",` + data + `}`,
		`{` + head + `,"time":"2026-11-27T10:00:00\u002e5Z",` + data + `}`,
		// Duplicate and escaped keys inside data.
		`{` + head + `,"data":{"sku":"B","sku":"A","source_code":"d","quantity":"x","quantity":1,"status":1}}`,
		`{` + head + `,"data":{"\u0073ku":"A","source_code":"d","quantity":1,"status":1,"Status":"x"}}`,
		`{` + head + `,"data":{"sku":"A","source_code":"d","quantity":1,"status":1,"status":null}}`,
		`{` + head + `,"data":{"SKU":"A","source_code":"d","quantity":1,"status":1}}`,
		`{` + head + `,"data":{"sku":"A","source_code":"","quantity":"1","status":2,"x":[}}`,
		`{` + head + `,"data":{"sku":"A","source_code":"d","quantity":1,"status":1,"deep":[[[[{"a":[]}]]]]}}`,
		// Syntax.
		`{` + head + `,` + data + `,}`, `{` + head + `,` + data + ``, `{` + head + `,` + data + `}}`,
		`{` + head + `,` + data + `} x`, `{` + head + `,` + data + `}` + "\x00", "\xef\xbb\xbf{" + head + `,` + data + `}`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":1e+}`, `{"a":+1}`, `{"a":tru}`, `{"a":nul}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, "{\"a\":\"\x01\"}", "{\"a\":\"\t\"}", `{"a" 1}`, `{1:1}`, `{"a":1 "b":2}`,
		`{"a":[1,]}`, `{"a":[1 2]}`, `{,}`, `{"a"}`, `{"a":}`, `[`, `]`, `"`, `"x`, `nul`, ` `, ``, `{}`, `[]`, `[{}]`, `true`, `-0`,
		`{"specversion":"1.0"`, `{"specversion":"1.0",`, `{"specversion":"1.0" `, `{"specversion":"1.`,
	} {
		recs = append(recs, inv(s))
	}
	// Nesting right at and just past encoding/json's limit, outside data
	// and inside it (validated during the scan when type comes first).
	for _, depth := range []int{9999, 10000, 10001} {
		nest := strings.Repeat("[", depth-2) + strings.Repeat("]", depth-2)
		recs = append(recs,
			inv(`{`+head+`,`+data+`,"x":[`+nest+`]}`),
			inv(`{`+head+`,"data":{"sku":"A","source_code":"d","quantity":1,"status":1,"x":`+nest+`}}`),
			inv(`{`+head+`,"data":{"sku":"A","source_code":"d","quantity":1,"status":[`+nest+`]}}`),
			inv(`{"data":{"sku":"A","source_code":"d","quantity":1,"status":1,"x":`+nest+`},`+head+`}`))
	}
	// Long values: reasons clip them on a rune boundary.
	for _, long := range []string{strings.Repeat("x", 64), strings.Repeat("x", 65), strings.Repeat("é", 40), "x" + strings.Repeat("é", 40)} {
		recs = append(recs,
			inv(`{`+strings.Replace(head, `"type":"inventory.stock.updated"`, `"type":"`+long+`"`, 1)+`,`+data+`}`),
			inv(`{`+strings.Replace(head, `"specversion":"1.0"`, `"specversion":"`+long+`"`, 1)+`,`+data+`}`),
			inv(`{`+head+`,"time":"`+long+`","datacontenttype":"`+long+`",`+data+`}`),
			inv(`{`+head+`,"data":{"sku":"`+long+`","source_code":"d","quantity":1,"status":1}}`),
			seedRecord{topics.DomainInventory, []byte(long), []byte(`{` + head + `,` + data + `}`)})
	}
	// A record key compares with the decoded subject.
	for _, key := range []string{"A\xff", "A\ufffd", "a", "A"} {
		recs = append(recs, seedRecord{topics.DomainInventory, []byte(key),
			[]byte("{\"specversion\":\"1.0\",\"id\":\"i\",\"source\":\"s\",\"type\":\"inventory.stock.updated\",\"subject\":\"A\xff\",\"version\":1,\"data\":{\"sku\":\"A\xfe\",\"source_code\":\"d\",\"quantity\":1,\"status\":1}}")})
	}
	return recs
}

type seedRecord struct {
	domain topics.Domain
	key    []byte
	value  []byte
}

// variants returns the example record of ex with one attribute or data
// field (at the top or in the first item) replaced by each interesting value
// or removed.
func variants(t testing.TB, ex example) [][]byte {
	var out [][]byte
	env := envelope(ex)
	rec := func(m map[string]any) []byte { return marshal(t, m) }
	for name := range env {
		if name == "data" {
			continue
		}
		for _, v := range interestingValues {
			m := envelope(ex)
			m[name] = json.RawMessage(v)
			out = append(out, rec(m))
		}
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal([]byte(ex.data), &data); err != nil {
		t.Fatal(err)
	}
	withData := func(f func(d map[string]json.RawMessage)) []byte {
		d := map[string]json.RawMessage{}
		for k, v := range data {
			d[k] = v
		}
		f(d)
		m := envelope(ex)
		m["data"] = d
		return rec(m)
	}
	for field := range data {
		out = append(out, withData(func(d map[string]json.RawMessage) { delete(d, field) }))
		for _, v := range interestingValues {
			out = append(out, withData(func(d map[string]json.RawMessage) { d[field] = json.RawMessage(v) }))
		}
		var items []map[string]json.RawMessage
		if json.Unmarshal(data[field], &items) != nil || len(items) == 0 {
			continue
		}
		for itemField := range items[0] {
			for _, v := range append([]string{"-"}, interestingValues...) {
				out = append(out, withData(func(d map[string]json.RawMessage) {
					item := map[string]json.RawMessage{}
					for k, x := range items[0] {
						item[k] = x
					}
					if v == "-" {
						delete(item, itemField)
					} else {
						item[itemField] = json.RawMessage(v)
					}
					d[field] = marshal(t, []any{item, items[0]})
				}))
			}
		}
	}
	out = append(out, withData(func(d map[string]json.RawMessage) {
		for k := range d {
			d[k] = json.RawMessage(`"x"`)
		}
	}))
	out = append(out, withData(func(d map[string]json.RawMessage) { clear(d) }))
	return out
}

// TestDecodeMatchesReference compares Decode with the reference on every
// seed record and every variant of every example, with each domain and key.
func TestDecodeMatchesReference(t *testing.T) {
	n := 0
	for _, r := range seedRecords(t) {
		for _, d := range topics.Domains() {
			checkSame(t, d, r.key, r.value)
			n++
		}
		checkSame(t, r.domain, []byte("A"), r.value)
	}
	for _, ex := range examples {
		for _, v := range variants(t, ex) {
			checkSame(t, ex.domain, nil, v)
			checkSame(t, ex.domain, []byte(ex.subject), v)
			n += 2
		}
	}
	t.Logf("%d records compared", n)
}

// TestValidateDataMatchesReference compares ValidateData with the reference
// on every example's data and its variants.
func TestValidateDataMatchesReference(t *testing.T) {
	for _, ex := range examples {
		checkSameData(t, ex.eventType, []byte(ex.data))
		for _, v := range variants(t, ex) {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(v, &m); err != nil {
				t.Fatal(err)
			}
			checkSameData(t, ex.eventType, m["data"])
		}
	}
	for _, data := range []string{``, ` `, `null`, ` null `, `{`, `{} x`, `[]`, `"x"`, ` {"sku":"A"} `} {
		checkSameData(t, topics.TypeStockUpdated, []byte(data))
	}
	checkSameData(t, "nope", []byte(`{}`))
}

// FuzzDecodeMatchesSchema feeds arbitrary records to Decode and to the
// reference and requires the same verdict, the same event and reasons that
// name the same fields. Every domain is tried, with the record's own key
// and with none. The data of the record also goes through ValidateData.
func FuzzDecodeMatchesSchema(f *testing.F) {
	for _, r := range seedRecords(f) {
		f.Add(r.key, r.value)
	}
	for _, ex := range examples {
		for i, v := range variants(f, ex) {
			if i%7 == 0 { // a sample: the variants are many
				f.Add([]byte(ex.subject), v)
			}
		}
	}
	f.Fuzz(func(t *testing.T, key, value []byte) {
		for _, d := range topics.Domains() {
			checkSame(t, d, key, value)
			checkSame(t, d, nil, value)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(value, &m) == nil {
			for _, typ := range []string{topics.TypeStockUpdated, topics.TypeOrderPlaced, topics.TypeProductCreated} {
				checkSameData(t, typ, m["data"])
			}
			if typ, ok := m["type"]; ok {
				var s string
				if json.Unmarshal(typ, &s) == nil {
					checkSameData(t, s, m["data"])
				}
			}
		}
	})
}

// TestDecodeHugeExponents covers the one place where the reference has no
// answer: a number with an exponent beyond big.Rat's limit (|exp| > 1e6)
// under a minimum or exclusiveMinimum makes the JSON Schema validator
// dereference a nil *big.Rat and panic. Decode compares such numbers
// exactly instead.
func TestDecodeHugeExponents(t *testing.T) {
	for _, tc := range []struct {
		data string
		ok   bool
	}{
		{`{"sku":"SKU-2","price":1e-2000000}`, true},
		{`{"sku":"SKU-2","price":0e-99999999999999999999}`, true},
		{`{"sku":"SKU-2","price":-1e-2000000}`, false},
		{`{"sku":"SKU-2","price":-0.0e-2000000}`, true},
		{`{"sku":"SKU-2","price":1e2000000}`, false}, // not a float64
	} {
		v := mutate(t, topics.TypePriceChanged, set("data", json.RawMessage(tc.data)))
		_, err := topics.Decode(topics.DomainCatalog, nil, v)
		if (err == nil) != tc.ok {
			t.Errorf("%s: Decode = %v, want ok %v", tc.data, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "data.price") {
			t.Errorf("%s: reason %v does not name data.price", tc.data, err)
		}
	}
	data := `{"order_id":"100000042","customer_id":"C-7","email":"a@b","grand_total":0,"currency":"EUR","items":[{"sku":"A","qty":1e-2000000,"price":0}]}`
	if _, err := topics.Decode(topics.DomainOrder, nil, mutate(t, topics.TypeOrderPlaced, set("data", json.RawMessage(data)))); err != nil {
		t.Errorf("qty 1e-2000000 > 0: %v", err)
	}
	data = strings.Replace(data, "1e-2000000", "-0e-2000000", 1)
	if _, err := topics.Decode(topics.DomainOrder, nil, mutate(t, topics.TypeOrderPlaced, set("data", json.RawMessage(data)))); err == nil {
		t.Error("qty -0e-2000000 accepted")
	}
	if _, panicked := refValidate(topics.TypePriceChanged, []byte(`{"sku":"A","price":1e-2000000}`)); !panicked {
		t.Log("the reference validator no longer panics on 1e-2000000: FuzzDecodeMatchesSchema now compares such records too")
	}
}

// TestSchemaPatterns checks each hand-written pattern matcher against the
// regular expression it stands for.
func TestSchemaPatterns(t *testing.T) {
	inputs := []string{"", "@", "a@b", "abc", "EUR", "eur", "EU", "EURO", "EUR\n", "\nEUR", "ÉUR", "E\x00R", "@@@",
		"a\u0040", "\xff@", "ABC", "ZZZ", "AZ[", "@EUR", "E U"}
	for expr, match := range topics.SchemaPatterns {
		re := regexp.MustCompile(expr)
		for _, in := range inputs {
			if got, want := match([]byte(in)), re.MatchString(in); got != want {
				t.Errorf("pattern %q on %q: got %v, want %v", expr, in, got, want)
			}
		}
	}
}

// TestSchemaCompilerRefuses checks that a schema using anything the fast
// validator does not implement fails to compile instead of being half
// enforced.
func TestSchemaCompilerRefuses(t *testing.T) {
	for _, s := range []string{
		`{"type":"object","additionalProperties":false}`,
		`{"type":"object","properties":{"a":{"type":"string","maxLength":3}}}`,
		`{"type":"object","properties":{"a":{"type":"string","pattern":"^x"}}}`,
		`{"type":"object","properties":{"a":{"type":"integer"}}}`,
		`{"type":"object","properties":{"a":{"type":"number","format":"int32"}}}`,
		`{"type":"object","properties":{"a":{"type":"number","enum":[1.5]}}}`,
		`{"type":"object","properties":{"a":{"type":"string","minimum":1}}}`,
		`{"type":"object","properties":{"a":{"type":["string","null"]}}}`,
		`{"type":"object","properties":{"a":{"$ref":"#"}}}`,
		`{"type":"object","properties":{"a":{"type":"boolean"}}}`,
		`{"type":"object","properties":{"a":{}}}`,
		`{"type":"object","properties":{"a":{"type":"array","items":[{"type":"string"}]}}}`,
		`{"type":"object","properties":{"a":{"type":"integer","format":"int32","enum":["x"]}}}`,
	} {
		if _, err := topics.CompileSchema([]byte(s)); err == nil {
			t.Errorf("schema %s compiled", s)
		}
	}
	if _, err := topics.CompileSchema([]byte(`{"type":"object","required":["a"],"properties":{"b":{"type":"integer","format":"int32","minimum":-1,"maximum":2.5,"enum":[0,1]}}}`)); err != nil {
		t.Error(err)
	}
}

// TestDecodeEventAliasesValue checks that Data and Raw alias the record
// value and that Data cannot grow into the rest of it.
func TestDecodeEventAliasesValue(t *testing.T) {
	ev, err := topics.Decode(topics.DomainInventory, nil, benchRecord)
	if err != nil {
		t.Fatal(err)
	}
	if &ev.Raw[0] != &benchRecord[0] {
		t.Error("Raw is a copy")
	}
	i := bytes.Index(benchRecord, []byte(`{"sku"`))
	if &ev.Data[0] != &benchRecord[i] || cap(ev.Data) != len(ev.Data) {
		t.Errorf("Data is a copy or has spare capacity (len %d, cap %d)", len(ev.Data), cap(ev.Data))
	}
}
