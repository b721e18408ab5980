package topics

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// The primitives of the fast path, each held to the standard library
// function it stands in for.

func TestNeedsLook(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	special := []byte{'"', '\\', 0, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xff, 'a'}
	var w [8]byte
	for range 200000 {
		for k := range w {
			if rng.IntN(3) == 0 {
				w[k] = special[rng.IntN(len(special))]
			} else {
				w[k] = byte(rng.UintN(256))
			}
		}
		first := 8
		for k, c := range w {
			if !strSafe[c] {
				first = k
				break
			}
		}
		m := needsLook(binary.LittleEndian.Uint64(w[:]))
		got := 8
		if m != 0 {
			got = int(trailingZeros(m) >> 3)
		}
		if got != first {
			t.Fatalf("needsLook(%q) points at byte %d, want %d", w, got, first)
		}
	}
}

func trailingZeros(m uint64) uint {
	n := uint(0)
	for m&1 == 0 {
		m >>= 1
		n++
	}
	return n
}

// numberLiterals are valid JSON numbers around the edges that matter.
var numberLiterals = []string{
	"0", "-0", "0.0", "-0.0", "0e0", "0E-5", "-0e99999999999999999999", "1", "-1", "10", "100", "1.0", "1.5", "-1.5",
	"0.1", "0.10", "0.01", "1e1", "1E+1", "10e-1", "100e-2", "1e-1", "0.5e1", "5", "2147483647", "2147483648",
	"-2147483648", "-2147483649", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
	"-9223372036854775809", "12345678901234567890", "1e308", "1.7976931348623157e308", "1.7976931348623158e308",
	"1.7976931348623159e308", "1.797693134862315808e308", "17976931348623158e292", "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792", "1e309", "2e308", "1e400", "-1e400", "1e-400", "4.9e-324",
	"1e-2000000", "-1e-2000000", "1e2000000", "0.000001", "1e-6", "1000000e-6", "19.99", "59.97", "1732701600123",
}

func TestDecimal(t *testing.T) {
	for _, a := range numberLiterals {
		da := parseDecimal([]byte(a))
		ra, aok := new(big.Rat).SetString(a)
		if aok && da.isInteger() != ra.IsInt() {
			t.Errorf("%s: isInteger = %v", a, da.isInteger())
		}
		if aok && sign([]byte(a)) != ra.Sign() {
			t.Errorf("%s: sign = %d, want %d", a, sign([]byte(a)), ra.Sign())
		}
		for _, b := range numberLiterals {
			db := parseDecimal([]byte(b))
			rb, bok := new(big.Rat).SetString(b)
			if !aok || !bok {
				continue
			}
			if got, want := da.cmp(&db), ra.Cmp(rb); got != want {
				t.Errorf("cmp(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func TestParseIntAndFloat(t *testing.T) {
	for _, s := range append(numberLiterals, "", "-", "+", "+1", "-+1", "+-1", "00012", "-007", "0000000000000000000001", "1x", "١") {
		for _, r := range [][2]int64{{math.MinInt32, math.MaxInt32}, {math.MinInt64, math.MaxInt64}} {
			got, ok := parseInt([]byte(s), r[0], r[1])
			bitSize := 32
			if r[1] == math.MaxInt64 {
				bitSize = 64
			}
			want, err := strconv.ParseInt(s, 10, bitSize)
			if ok != (err == nil) || ok && got != want {
				t.Errorf("parseInt(%q, %d bits) = %d, %v; strconv: %d, %v", s, bitSize, got, ok, want, err)
			}
		}
	}
	for _, s := range numberLiterals {
		f, err := strconv.ParseFloat(s, 64)
		if want := err == nil && !math.IsInf(f, 0); fitsFloat64([]byte(s)) != want {
			t.Errorf("fitsFloat64(%s) = %v, want %v", s, !want, want)
		}
	}
}

func TestParseTimeZ(t *testing.T) {
	inputs := []string{
		"2026-11-27T10:00:00Z", "2026-11-27T10:00:00.123Z", "2026-11-27T10:00:00.123456789Z",
		"2026-11-27T10:00:00.1234567891234Z", "2026-11-27T10:00:00.Z", "2026-11-27T10:00:00.1.2Z",
		"2026-11-27T10:00:00,5Z", "2026-11-27t10:00:00Z", "2026-11-27T10:00:00z", "2026-02-29T00:00:00Z",
		"2024-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "0000-01-01T00:00:00Z",
		"0000-02-29T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z",
		"2026-01-00T00:00:00Z", "2026-04-31T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z",
		"2026-01-01T00:00:60Z", "2026-1-01T00:00:00Z", "+026-01-01T00:00:00Z", "2026-01-01T00:00:00+00:00",
		"1970-01-01T00:00:00Z", "1969-12-31T23:59:59.5Z", "2026-11-27T10:00:00 Z", "2026-11-27 10:00:00Z",
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		d := time.Date(rng.IntN(10000), time.Month(1+rng.IntN(12)), 1+rng.IntN(31), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1e9), time.UTC)
		inputs = append(inputs, d.Format(time.RFC3339Nano), d.Format("2006-01-02T15:04:05Z"))
	}
	for _, s := range inputs {
		got, ok := parseTimeZ([]byte(s))
		if !ok {
			continue // time.Parse decides
		}
		want, err := time.Parse(time.RFC3339, s)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseTimeZ(%q) = %v; time.Parse: %v, %v", s, got, want, err)
		}
	}
	if _, ok := parseTimeZ([]byte("2026-11-27T10:00:00.123Z")); !ok {
		t.Error("parseTimeZ rejects the common form")
	}
}

// TestAttrIndex checks the envelope's key matching against encoding/json's
// case-insensitive matching of struct fields.
func TestAttrIndex(t *testing.T) {
	keys := []string{"specversion", "SPECVERSION", "SpecVersion", "specverſion", "ſource", "ſubject", "verſion",
		"id", "ID", "Id", "ıd", "İd", "type", "TYPE", "time", "version", "datacontenttype", "DataContentType",
		"data", "DATA", "datA", "dat", "datas", "", "x", "specversion ", "\u212a", "sub\u0000ject",
		"\u017fource", "ſſource", "ſpecverſion", "ӏd"}
	for _, k := range keys {
		lit, _ := json.Marshal(k)
		var probe refWireEvent
		doc := `{` + string(lit) + `:"v"}`
		_ = json.Unmarshal([]byte(doc), &probe)
		want := -1
		v := reflect.ValueOf(probe)
		for i := range v.NumField() {
			if f := v.Field(i); !f.IsZero() {
				want = i
			}
		}
		s := scanner{b: []byte(doc), i: 1}
		tok, ok := s.str()
		if !ok {
			t.Fatalf("%q: %s", doc, s.err)
		}
		if got := attrIndex(s.b, tok); got != want {
			t.Errorf("attrIndex(%q) = %d, want %d", k, got, want)
		}
	}
}

// TestLookupType checks that lookupType numbers the types as compileRules
// stores their schemas, and finds only known types.
func TestLookupType(t *testing.T) {
	for i, typ := range allTypes() {
		name, d, idx, ok := lookupType([]byte(typ))
		if wd, _ := DomainOf(typ); !ok || name != typ || d != wd || idx != i {
			t.Errorf("lookupType(%s) = %s, %s, %d, %v; want index %d", typ, name, d, idx, ok, i)
		}
	}
	for _, bad := range []string{"", "order", "order.", "order.placedx", "x.order.placed", "catalog.order.placed", "Order.placed"} {
		if _, _, _, ok := lookupType([]byte(bad)); ok {
			t.Errorf("lookupType(%q) ok", bad)
		}
	}
	if n := testing.AllocsPerRun(100, func() { lookupType([]byte(TypeShipmentUpdated)) }); n != 0 {
		t.Errorf("lookupType allocates %v times", n)
	}
}
