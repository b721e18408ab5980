package topics

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
)

// Envelope attributes that Decode reads, in the order of their checks.
const (
	attrSpecVersion = iota
	attrID
	attrSource
	attrType
	attrSubject
	attrTime
	attrVersion
	attrDataContentType
	attrData
	numAttrs
)

// attrNames are the attributes' names; canonSeps what precedes each
// attribute's value in the form Encode writes (see scanCanonical): the comma
// after the previous member (the brace before the first), the key, the
// colon and, for a string, the opening quote; foldedAttrNames the names
// folded (see foldKey), for the case-insensitive match encoding/json makes
// when no name matches exactly.
var (
	attrNames = [numAttrs]string{"specversion", "id", "source", "type", "subject", "time", "version", "datacontenttype", "data"}
	canonSeps = func() (k [numAttrs]objKey) {
		for a, n := range &attrNames {
			sep := `,"` + n + `":`
			if a == attrSpecVersion {
				sep = `{"` + n + `":`
			}
			if a != attrVersion && a != attrData {
				sep += `"`
			}
			k[a] = newObjKey(sep)
		}
		return k
	}()
	foldedAttrNames = func() (f [numAttrs]string) {
		for i, n := range &attrNames {
			f[i] = string(foldKey(nil, []byte(n)))
		}
		return f
	}()
)

// attr is what the last occurrence of an attribute left, following
// encoding/json's rules for the field types of a struct it would decode into:
// specversion, id, source, type and subject are strings (null leaves the
// previous value), time and datacontenttype *string (null unsets), version
// and data json.RawMessage (any value, null included, is kept raw).
type attr struct {
	set bool
	// str is the token of a string attribute; str.start and str.end are
	// the span of a raw attribute's value.
	str jsonString
}

// attrIndex returns the attribute that the member key t names, or -1.
func attrIndex(b []byte, t jsonString) int {
	key := t.text(b)
	switch string(key) {
	case "specversion":
		return attrSpecVersion
	case "id":
		return attrID
	case "source":
		return attrSource
	case "type":
		return attrType
	case "subject":
		return attrSubject
	case "time":
		return attrTime
	case "version":
		return attrVersion
	case "datacontenttype":
		return attrDataContentType
	case "data":
		return attrData
	}
	if len(key) > 3*len("datacontenttype") { // folding shortens a key by at most two thirds
		return -1
	}
	var buf [64]byte
	folded := foldKey(buf[:0], key)
	for i, n := range &foldedAttrNames {
		if string(folded) == n {
			return i
		}
	}
	return -1
}

// Decode parses and validates a record value of domain d and returns its
// event.
//
// The event aliases value: Raw is value itself and Data a sub-slice of it,
// neither copied, so the caller must not modify value afterwards. The string
// attributes are copies (one allocation for all of them).
//
// Every way a record can be unusable yields a *PoisonError whose Reason names
// the offending attribute or field: value is not valid JSON or not a JSON
// object; an attribute has the wrong JSON type; specversion is not "1.0"; id,
// source, type or subject is missing or empty; type is unknown or belongs to
// another domain; time is present but not RFC 3339; version is missing or
// below 1 on catalog and inventory, or present anywhere and not an integer >=
// 1; datacontenttype is present and not application/json (parameters such as
// charset are allowed); data is missing or null, or fails the type's JSON
// Schema (see SchemaJSON); the payload's key field (sku, order_id or
// customer_id) differs from subject; key is non-empty and differs from
// subject. An empty key is accepted: subject is the ordering key. JSON null
// for time, version or datacontenttype counts as absent.
//
// Decode reads the record as encoding/json would decode it into a struct of
// the attributes: attribute names match case-insensitively, the last of
// duplicate attributes wins, unknown (extension) attributes are skipped, and
// escapes and invalid UTF-8 in strings are decoded and replaced the same way.
// It checks data in one pass against rules compiled from the schemas; the
// package tests hold it to the reference (encoding/json plus a JSON Schema
// validator) field for field.
//
// A non-poison error means the caller is at fault or the package is broken:
// d is not one of the four domains, or the embedded schemas fail to compile.
func Decode(d Domain, key, value []byte) (*Event, error) {
	di := info(d)
	if di == nil {
		return nil, fmt.Errorf("topics: Decode: unknown domain %q", string(d))
	}

	// One pass over the record: syntax, and the last value of each attribute.
	var attrs [numAttrs]attr
	var early earlyData
	if !scanCanonical(d, value, &attrs, &early) {
		attrs, early = [numAttrs]attr{}, earlyData{}
		if err := scanRecord(d, value, &attrs, &early); err != nil {
			return nil, err
		}
	}

	// The checks, in order.
	text := func(a int) []byte {
		if !attrs[a].set {
			return nil
		}
		return attrs[a].str.text(value)
	}
	if sv := text(attrSpecVersion); string(sv) != SpecVersion {
		if len(sv) == 0 {
			return nil, poisonf("specversion: missing")
		}
		return nil, poisonf("specversion: got %q, want %q", clip(string(sv)), SpecVersion)
	}
	id, source, typ, subject := text(attrID), text(attrSource), text(attrType), text(attrSubject)
	switch {
	case len(id) == 0:
		return nil, poisonf("id: missing or empty")
	case len(source) == 0:
		return nil, poisonf("source: missing or empty")
	case len(typ) == 0:
		return nil, poisonf("type: missing or empty")
	case len(subject) == 0:
		return nil, poisonf("subject: missing or empty")
	}
	typeName, td, typeIndex, ok := early.typeName, early.domain, early.typeIndex, true
	if !early.typeKnown || early.typeStart != attrs[attrType].str.start {
		typeName, td, typeIndex, ok = lookupType(typ)
	}
	if !ok {
		return nil, poisonf("type: %q is unknown", clip(string(typ)))
	}
	if td != d {
		return nil, poisonf("type: %q belongs to domain %s, not %s", typeName, td, d)
	}
	if len(key) > 0 && string(key) != string(subject) {
		return nil, poisonf("key: record key %q differs from subject %q", clip(string(key)), clip(string(subject)))
	}

	var t time.Time
	if attrs[attrTime].set {
		tt := text(attrTime)
		if t, ok = parseTimeZ(tt); !ok {
			var err error
			if t, err = time.Parse(time.RFC3339, string(tt)); err != nil {
				return nil, poisonf("time: %q is not RFC 3339", clip(string(tt)))
			}
		}
	}

	var version int64
	if va := &attrs[attrVersion]; va.set && string(value[va.str.start:va.str.end]) != "null" {
		raw := value[va.str.start:va.str.end]
		v, ok := early.version, early.versionSmall
		if !ok {
			v, ok = parseInt(raw, math.MinInt64, math.MaxInt64)
		}
		if !ok {
			return nil, poisonf("version: got %s, want an integer", clip(string(raw)))
		}
		if v < 1 {
			return nil, poisonf("version: got %d, want >= 1", v)
		}
		version = v
	} else if di.versionRequired {
		return nil, poisonf("version: missing (required on %s events)", d)
	}

	var contentType []byte
	if attrs[attrDataContentType].set {
		contentType = text(attrDataContentType)
		if string(contentType) != "application/json" && !isJSONContentType(string(contentType)) {
			return nil, poisonf("datacontenttype: got %q, want application/json", clip(string(contentType)))
		}
	}

	da := attrs[attrData].str
	if !attrs[attrData].set {
		return nil, poisonf("data: missing")
	}
	data := value[da.start:da.end:da.end]
	if string(data) == "null" {
		return nil, poisonf("data: is null")
	}
	var keyOff int
	var keyTok jsonString // the key field's token, if the checker kept it
	if early.valid && early.start == da.start && early.typeStart == attrs[attrType].str.start {
		keyOff = early.keyOff - da.start
		if early.key.end > 0 {
			keyTok = early.key
			keyTok.start -= da.start
			keyTok.end -= da.start
		}
	} else {
		rules, err := compiledRules()
		if err != nil {
			return nil, err
		}
		if keyOff, err = checkData(&rules.byIndex[typeIndex], data); err != nil {
			return nil, err
		}
	}
	// The key field is a string if the schema says so; anything else (or
	// nothing) counts as "".
	var keyField []byte
	if keyOff >= 0 && data[keyOff] == '"' {
		if keyTok.end == 0 {
			ks := scanner{b: data, i: keyOff}
			keyTok, _ = ks.str()
		}
		keyField = keyTok.text(data)
	}
	if string(keyField) != string(subject) {
		return nil, poisonf("data.%s: %q differs from subject %q", di.keyField, clip(string(keyField)), clip(string(subject)))
	}

	// All checks passed: copy the strings out, in one allocation (the
	// common content type is a constant). Only the strings themselves:
	// copying the text from id to subject in one piece was no faster, and
	// it carried the type and the keys between them, ~60 bytes more of
	// garbage per record (make bench S1 allocates per record what the
	// collector then has to catch up with).
	ct := ""
	if string(contentType) == "application/json" {
		ct, contentType = "application/json", nil
	}
	var sb strings.Builder
	sb.Grow(len(id) + len(source) + len(subject) + len(contentType))
	sb.Write(id)
	sb.Write(source)
	sb.Write(subject)
	sb.Write(contentType)
	all := sb.String()
	sourceAt, subjectAt := len(id), len(id)+len(source)
	if ct == "" {
		ct = all[subjectAt+len(subject):]
	}
	return &Event{
		SpecVersion:     SpecVersion,
		ID:              all[:len(id)],
		Source:          all[sourceAt : sourceAt+len(source)],
		Type:            typeName,
		Subject:         all[subjectAt : subjectAt+len(subject)],
		Time:            t,
		Version:         version,
		DataContentType: ct,
		Data:            data,
		Raw:             value,
	}, nil
}

// scanRecord reads the record value in one pass: its syntax, and the last
// value of each attribute into attrs. The checker's scanner reads the whole
// record, so that data can be validated where it stands (see
// earlyData.check). It returns the poison error of a record that is not a
// JSON object or whose string attributes are not strings.
func scanRecord(d Domain, value []byte, attrs *[numAttrs]attr, early *earlyData) error {
	c := checker{s: scanner{b: value}}
	s := &c.s
	s.skipSpace()
	if s.i >= len(value) || value[s.i] != '{' {
		kind, ok := s.value()
		if !ok || !s.end() {
			return poisonf("invalid JSON: %s", s.err)
		}
		return poisonf("not a JSON object: got %s", kindName(kind))
	}
	typeErr, typeErrKind := -1, byte(0)
	empty, ok := s.open()
	if !ok {
		return poisonf("invalid JSON: %s", s.err)
	}
	if !empty {
		for {
			if s.i >= len(value) || value[s.i] != '"' {
				s.fail("invalid character looking for beginning of object key string:")
				return poisonf("invalid JSON: %s", s.err)
			}
			k, ok := s.str()
			if !ok || !s.colon() {
				return poisonf("invalid JSON: %s", s.err)
			}
			a := attrIndex(value, k)
			start := s.i
			var v jsonString
			var kind byte
			switch {
			case a == attrData && attrs[attrType].set:
				// data after type, as producers write it: validate it now,
				// in the same pass, if type names one of d's types.
				if !early.check(d, &c, attrs[attrType].str) {
					return poisonf("invalid JSON: %s", s.err)
				}
			case a >= 0 && a <= attrDataContentType && a != attrVersion && start < len(value) && value[start] == '"':
				kind = '"'
				if v, ok = s.str(); !ok {
					return poisonf("invalid JSON: %s", s.err)
				}
			default:
				if kind, ok = s.value(); !ok {
					return poisonf("invalid JSON: %s", s.err)
				}
			}
			switch a {
			case attrSpecVersion, attrID, attrSource, attrType, attrSubject, attrTime, attrDataContentType:
				switch {
				case kind == '"':
					attrs[a] = attr{set: true, str: v}
				case kind == 'n':
					if a == attrTime || a == attrDataContentType {
						attrs[a] = attr{}
					}
				case typeErr < 0:
					typeErr, typeErrKind = a, kind
				}
			case attrVersion, attrData:
				attrs[a] = attr{set: true, str: jsonString{start: start, end: s.i}}
			}
			more, ok := s.next('}')
			if !ok {
				return poisonf("invalid JSON: %s", s.err)
			}
			if !more {
				break
			}
		}
	}
	if !s.end() {
		return poisonf("invalid JSON: %s", s.err)
	}
	if typeErr >= 0 {
		return poisonf("%s: got %s, want string", attrNames[typeErr], kindName(typeErrKind))
	}
	return nil
}

// scanCanonical is the fast path of scanRecord, for a record value in the
// form Encode writes it, which producers follow: the attributes in Encode's
// order, each once (time, version and datacontenttype may be left out), no
// other member, no space outside data, the string attributes strings
// and version a number. It reports whether value has that form; if it has,
// attrs and early hold what scanRecord would leave in them. If it has not,
// they are to be discarded, and the record scanned again with scanRecord.
func scanCanonical(d Domain, value []byte, attrs *[numAttrs]attr, early *earlyData) bool {
	c := checker{s: scanner{b: value, depth: 1}}
	s := &c.s
	for a := range numAttrs {
		k := &canonSeps[a]
		var found bool
		if len(value)-s.i >= 24 { // at, inlined: k.text is at most 24 bytes long
			found = k.startOf(value[s.i : s.i+24])
		} else {
			found = k.at(value, s.i)
		}
		if !found {
			if a == attrTime || a == attrVersion || a == attrDataContentType {
				continue
			}
			return false
		}
		start := s.i + len(k.text)
		switch a {
		case attrVersion:
			if start >= len(value) || value[start] != '-' && (value[start] < '0' || value[start] > '9') {
				return false
			}
			s.i = start
			v, small, _, ok := s.number()
			if !ok {
				return false
			}
			early.version, early.versionSmall = v, small
			attrs[a] = attr{set: true, str: jsonString{start: start, end: s.i}}
		case attrData:
			s.i = start
			if !early.check(d, &c, attrs[attrType].str) {
				return false
			}
			attrs[a] = attr{set: true, str: jsonString{start: start, end: s.i}}
			if s.i >= len(value) || value[s.i] != '}' {
				return false
			}
			s.i++
			return s.end()
		default:
			s.i = start - 1 // the opening quote
			v, ok := s.str()
			if !ok {
				return false
			}
			attrs[a] = attr{set: true, str: v}
		}
	}
	return false
}

// earlyData is what the scan learned beyond the attributes: the value of
// version, and the outcome of validating data during the scan, with the type
// attribute seen so far.
type earlyData struct {
	// versionSmall reports that version is an integer literal of value
	// version (see scanner.number), if the scan looked.
	versionSmall bool
	version      int64

	// typeKnown reports that the type whose string token starts at
	// typeStart is the known type typeName of domain, at typeIndex in
	// the list of all types (see lookupType).
	typeKnown bool
	typeStart int
	typeName  string
	domain    Domain
	typeIndex int
	// valid reports that the data value at start conforms to the schema of
	// that type, keyOff is where the key field's value starts (-1 if
	// absent) and key its string token, if the checker read one (see
	// checker.object).
	valid         bool
	start, keyOff int
	key           jsonString
}

// check validates the data value at the position of c's scanner, if typ
// (the type attribute seen so far) names a type of domain d and the schemas
// compile, and moves the scanner past the value. It reports false on a
// syntax error. A violation is not recorded: after the scan, Decode
// validates the data again to find the reason, if the record is still poison
// by then.
func (e *earlyData) check(d Domain, c *checker, typ jsonString) bool {
	s := &c.s
	start, depth := s.i, s.depth
	name, td, idx, known := lookupType(typ.text(s.b))
	e.typeKnown, e.valid = known, false
	if known {
		e.typeStart, e.typeName, e.domain, e.typeIndex = typ.start, name, td, idx
	}
	if known && td == d {
		if rules, err := compiledRules(); err == nil {
			keyOff, key, valid := c.root(&rules.byIndex[idx])
			if valid {
				e.valid, e.start, e.keyOff, e.key = true, start, keyOff, key
				return true
			}
			if s.err != "" {
				return false
			}
			// A violation: scan the value again for its syntax only.
			s.i, s.depth = start, depth
		}
	}
	_, ok := s.value()
	return ok
}

// parseTimeZ parses the common form of RFC 3339 time that ends in Z,
// "2006-01-02T15:04:05Z" with an optional fraction of a second, exactly as
// time.Parse(time.RFC3339, ...) would, and reports false for anything else
// (which the caller leaves to time.Parse).
func parseTimeZ(s []byte) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") || s[len(s)-1] != 'Z' {
		return time.Time{}, false
	}
	// Three words, "2006-01-", "02T15:04" and "15:04:05", each checked for
	// its separators and digits at once; then pairs of digits combined.
	d0, ok0 := timeDigits(binary.LittleEndian.Uint64(s[0:8]), 0x2D0000_2D00000000, 0x00FFFF00FFFFFFFF)
	d1, ok1 := timeDigits(binary.LittleEndian.Uint64(s[8:16]), 0x00003A0000540000, 0xFFFF00FFFF00FFFF)
	d2, ok2 := timeDigits(binary.LittleEndian.Uint64(s[11:19]), 0x00003A00003A0000, 0xFFFF00FFFF00FFFF)
	if !ok0 || !ok1 || !ok2 {
		return time.Time{}, false
	}
	d0, d1, d2 = d0*10+d0>>8, d1*10+d1>>8, d2*10+d2>>8 // a pair's value in its first byte
	year, month := int(d0&0xFF)*100+int(d0>>16&0xFF), int(d0>>40&0xFF)
	day, hour, minute, sec := int(d1&0xFF), int(d1>>24&0xFF), int(d1>>48&0xFF), int(d2>>48&0xFF)
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := s[19 : len(s)-1]; len(frac) > 0 {
		if len(frac) < 2 || frac[0] != '.' {
			return time.Time{}, false
		}
		digits := frac[1:]
		for k, c := range digits {
			if c < '0' || c > '9' {
				return time.Time{}, false
			}
			if k < 9 {
				nsec = nsec*10 + int(c-'0')
			}
		}
		if len(digits) < 9 {
			nsec *= pow10[9-len(digits)]
		}
	}
	unix := daysSinceEpoch(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	return time.Unix(unix, int64(nsec)).UTC(), true
}

// pow10[k] is 10 to the k.
var pow10 = [...]int{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// timeDigits checks the eight bytes of w (little endian): where mask has
// 0xFF they must be decimal digits, elsewhere the bytes of seps. It returns
// the digits' values in their bytes, zero elsewhere.
func timeDigits(w, seps, mask uint64) (uint64, bool) {
	// The separators go to digits, for eightDigits, and the digits to zero.
	digits := eightDigits(w&mask | 0x3030303030303030&^mask)
	return w & mask & 0x0F0F0F0F0F0F0F0F, digits && w&^mask == seps
}

// daysSinceEpoch returns the number of days from 1970-01-01 to the date
// (proleptic Gregorian; year >= 0), by H. Hinnant's days_from_civil.
func daysSinceEpoch(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	m := int64(month)
	if m > 2 {
		m -= 3
	} else {
		m += 9
	}
	doy := (153*m+2)/5 + int64(day) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// daysIn returns the number of days in month of year (proleptic Gregorian).
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// isJSONContentType accepts application/json with optional parameters
// ("application/json; charset=utf-8"), ignoring case.
func isJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// timeLayout is RFC 3339 with exactly three fractional digits.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// encodedEvent is the envelope as Encode writes it.
type encodedEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            string          `json:"time,omitempty"`
	Version         int64           `json:"version,omitempty"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// Encode renders ev as a CloudEvents JSON record value. time is written in
// RFC 3339 with milliseconds in ev.Time's own offset (use UTC() for "Z") and
// left out when zero; version and datacontenttype are left out when zero.
// Nil Data is written as null. Encode does not validate: generators and tests
// use it to build poison records too. ev.Raw is ignored.
func Encode(ev *Event) ([]byte, error) {
	w := encodedEvent{
		SpecVersion:     ev.SpecVersion,
		ID:              ev.ID,
		Source:          ev.Source,
		Type:            ev.Type,
		Subject:         ev.Subject,
		Version:         ev.Version,
		DataContentType: ev.DataContentType,
		Data:            ev.Data,
	}
	if !ev.Time.IsZero() {
		if y := ev.Time.Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("topics: Encode: time %v: year outside 0000-9999", ev.Time)
		}
		w.Time = ev.Time.Format(timeLayout)
	}
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("topics: Encode: %w", err)
	}
	return b, nil
}
