package topics

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
)

// schemaFiles holds one JSON Schema (draft 2020-12) per event type, named
// schemas/<type>.json.
//
//go:embed schemas/*.json
var schemaFiles embed.FS

// The schemas are the contract, and they are also what Decode enforces: on
// first use each file is compiled into a rule tree (below) that the fast
// validator in validate.go walks in one pass over the data, without building
// a document. The compiler understands exactly the subset of draft 2020-12
// that the schemas use and refuses anything else, so a schema can never say
// more than Decode checks. The package tests hold the result to the
// santhosh-tekuri/jsonschema validator (reference_test.go) on every example,
// every poison case, variants of them and fuzzed input
// (FuzzDecodeMatchesSchema, FuzzDecodeStructured).
//
// Supported keywords: type (one of object, array, string, number, integer),
// properties, required, items, minItems, minLength, pattern (only the
// patterns in schemaPatterns), enum (of strings on a string, of integers on
// an integer), format (int32 on an integer, double on a number), minimum,
// maximum and exclusiveMinimum on a number or an integer; and the
// annotations $schema, $id, title, description and $comment. Every
// integer must have format int32: the formats keep "valid by schema" equal to
// "decodes into the Go payload type", an int32 field being an integer
// literal that fits int32 and a double one that does not overflow float64.

// jsonType is the value of a schema's "type" keyword.
type jsonType uint8

const (
	typeObject jsonType = iota + 1
	typeArray
	typeString
	typeNumber
	typeInteger
)

var jsonTypeNames = map[string]jsonType{
	"object": typeObject, "array": typeArray, "string": typeString,
	"number": typeNumber, "integer": typeInteger,
}

func (t jsonType) String() string {
	for name, tt := range jsonTypeNames {
		if tt == t {
			return name
		}
	}
	return "any"
}

// numFormat is the value of a number's "format" keyword.
type numFormat uint8

const (
	formatNone numFormat = iota
	formatInt32
	formatDouble
)

// rule is a compiled schema. A nil *rule accepts any value.
type rule struct {
	typ jsonType

	// object; required has bit j set if props[j] is required, and
	// byFirst[c] is the first property whose name starts with the byte c
	// (len(props) if none), the next one prop.sameFirst
	props    []prop
	required uint64
	byFirst  *[128]uint8

	// array
	items    *rule
	minItems int

	// string; lengthOnly reports that minLength is all there is to check
	minLength  int
	pattern    *pattern
	strEnum    []string
	lengthOnly bool

	// integer or number
	intEnum          []int64
	format           numFormat
	minimum, maximum *bound
	exclusiveMinimum *bound
	// intRange reports that an integer literal of value v (small, see
	// scanner.number) passes the type, the format and the bounds if and
	// only if intLo <= v <= intHi: the bounds are all integers.
	intRange     bool
	intLo, intHi int64
	// anyNonNeg reports that any non-negative number literal without
	// exponent, of at most 300 bytes (which fits a float64), passes: a
	// number with no bounds but a minimum <= 0 or an exclusiveMinimum < 0.
	anyNonNeg bool

	// enumText lists the enum for reasons: `"a", "b"` or `0, 1`.
	enumText string
}

// prop is one property of an object rule: listed in "properties", in
// "required", or both.
type prop struct {
	name string
	// key is the name with its quotes and colon, `"name":`, for objKey.at.
	key      objKey
	required bool
	rule     *rule
	// sameFirst is the next property whose name starts with the same
	// byte, or len(props).
	sameFirst uint8
}

// bound is a numeric limit of a schema.
type bound struct {
	text string
	dec  decimal
	// isInt reports that the bound is an integer literal of value int.
	isInt bool
	int   int64
}

// pattern is a "pattern" the compiler knows how to match without regexp.
type pattern struct {
	expr  string
	match func(s []byte) bool
}

// schemaPatterns are the regular expressions the schemas may use, each with
// a matcher that agrees with regexp.MatchString (tested).
var schemaPatterns = map[string]func([]byte) bool{
	// An e-mail address must contain an at sign somewhere.
	"@": func(s []byte) bool { return bytes.IndexByte(s, '@') >= 0 },
	// A currency is exactly three upper-case ASCII letters.
	"^[A-Z]{3}$": func(s []byte) bool {
		return len(s) == 3 && isUpper(s[0]) && isUpper(s[1]) && isUpper(s[2])
	},
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

// typeRules is the compiled schema of one event type.
type typeRules struct {
	root *rule
	// keyProp is the index in root.props of the domain's key field, or -1.
	keyProp int
}

// ruleSet holds the compiled schema of every type, by position (see lookupType).
type ruleSet struct {
	byIndex []typeRules
}

// The outcome of compileRules, once; see compiledRules.
var (
	sharedRulesOnce sync.Once
	sharedRules     *ruleSet
	sharedRulesErr  error
)

// compiledRules compiles every schema on first use; the result is shared.
// (A sync.Once of its own costs less per call than sync.OnceValues.)
func compiledRules() (*ruleSet, error) {
	sharedRulesOnce.Do(func() { sharedRules, sharedRulesErr = compileRules() })
	return sharedRules, sharedRulesErr
}

func compileRules() (*ruleSet, error) {
	set := &ruleSet{}
	for _, d := range Domains() {
		di := info(d)
		for _, t := range di.types {
			b, err := schemaFiles.ReadFile("schemas/" + t + ".json")
			if err != nil {
				return nil, fmt.Errorf("topics: schema of %s: %w", t, err)
			}
			root, err := compileSchemaJSON(b)
			if err != nil {
				return nil, fmt.Errorf("topics: schema of %s: %w", t, err)
			}
			if root.typ != typeObject {
				return nil, fmt.Errorf("topics: schema of %s: type is %s, want object", t, root.typ)
			}
			tr := typeRules{root: root, keyProp: -1}
			for i, p := range root.props {
				if p.name == di.keyField {
					tr.keyProp = i
				}
			}
			set.byIndex = append(set.byIndex, tr)
		}
	}
	return set, nil
}

// compileSchemaJSON compiles a schema document.
func compileSchemaJSON(b []byte) (*rule, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	return compileSchema(doc, "#")
}

// compileSchema compiles the schema at JSON pointer loc.
func compileSchema(v any, loc string) (*rule, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: a schema must be an object", loc)
	}
	errf := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", loc, fmt.Sprintf(format, args...))
	}
	tn, _ := m["type"].(string)
	r := &rule{typ: jsonTypeNames[tn]}
	if r.typ == 0 {
		return nil, errf("type must be one of object, array, string, number, integer; got %v", m["type"])
	}
	// applies reports whether keyword kw may be used with the schema's type.
	applies := func(kw string, types ...jsonType) error {
		if !slices.Contains(types, r.typ) {
			return errf("%s does not apply to type %s", kw, r.typ)
		}
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var required []string
	for _, kw := range keys {
		val := m[kw]
		var err error
		switch kw {
		case "type", "$schema", "$id", "title", "description", "$comment":
		case "properties":
			if err = applies(kw, typeObject); err != nil {
				return nil, err
			}
			props, ok := val.(map[string]any)
			if !ok {
				return nil, errf("properties must be an object")
			}
			names := make([]string, 0, len(props))
			for name := range props {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				pr, err := compileSchema(props[name], loc+"/properties/"+name)
				if err != nil {
					return nil, err
				}
				r.props = append(r.props, prop{name: name, rule: pr})
			}
		case "required":
			if err = applies(kw, typeObject); err != nil {
				return nil, err
			}
			list, _ := val.([]any)
			for _, x := range list {
				name, ok := x.(string)
				if !ok {
					return nil, errf("required must list strings")
				}
				required = append(required, name)
			}
		case "items":
			if err = applies(kw, typeArray); err != nil {
				return nil, err
			}
			if r.items, err = compileSchema(val, loc+"/items"); err != nil {
				return nil, err
			}
		case "minItems":
			if err = applies(kw, typeArray); err != nil {
				return nil, err
			}
			if r.minItems, err = count(val); err != nil {
				return nil, errf("minItems: %v", err)
			}
		case "minLength":
			if err = applies(kw, typeString); err != nil {
				return nil, err
			}
			if r.minLength, err = count(val); err != nil {
				return nil, errf("minLength: %v", err)
			}
		case "pattern":
			if err = applies(kw, typeString); err != nil {
				return nil, err
			}
			expr, _ := val.(string)
			match := schemaPatterns[expr]
			if match == nil {
				return nil, errf("pattern %q has no matcher in schemaPatterns", expr)
			}
			r.pattern = &pattern{expr: expr, match: match}
		case "enum":
			if err = applies(kw, typeString, typeInteger); err != nil {
				return nil, err
			}
			list, _ := val.([]any)
			if len(list) == 0 {
				return nil, errf("enum must be a non-empty array")
			}
			var text []string
			for _, x := range list {
				switch x := x.(type) {
				case string:
					if r.typ != typeString {
						return nil, errf("enum value %q is not an integer", x)
					}
					r.strEnum = append(r.strEnum, x)
					text = append(text, quote(x))
				case json.Number:
					n, ok := parseInt([]byte(x), -1<<31, 1<<31-1)
					if r.typ != typeInteger || !ok {
						return nil, errf("enum value %s is not an int32", x)
					}
					r.intEnum = append(r.intEnum, n)
					text = append(text, string(x))
				default:
					return nil, errf("enum values must be strings or integers")
				}
			}
			r.enumText = strings.Join(text, ", ")
		case "format":
			switch {
			case val == "int32" && r.typ == typeInteger:
				r.format = formatInt32
			case val == "double" && r.typ == typeNumber:
				r.format = formatDouble
			default:
				return nil, errf("format %v on type %s is not supported", val, r.typ)
			}
		case "minimum", "maximum", "exclusiveMinimum":
			if err = applies(kw, typeNumber, typeInteger); err != nil {
				return nil, err
			}
			n, ok := val.(json.Number)
			if !ok {
				return nil, errf("%s must be a number", kw)
			}
			b := &bound{text: string(n), dec: parseDecimal([]byte(n))}
			b.int, b.isInt = parseInt([]byte(n), math.MinInt64, math.MaxInt64)
			switch kw {
			case "minimum":
				r.minimum = b
			case "maximum":
				r.maximum = b
			default:
				r.exclusiveMinimum = b
			}
		default:
			return nil, errf("keyword %s is not supported by the fast validator", kw)
		}
	}
	if r.typ == typeInteger && r.format != formatInt32 {
		return nil, errf("an integer must have format int32")
	}
	for _, name := range required {
		i := slices.IndexFunc(r.props, func(p prop) bool { return p.name == name })
		if i < 0 {
			r.props = append(r.props, prop{name: name})
			i = len(r.props) - 1
		}
		r.props[i].required = true
	}
	r.lengthOnly = r.typ == typeString && r.pattern == nil && r.strEnum == nil
	if r.typ == typeNumber || r.typ == typeInteger {
		r.intRange, r.intLo, r.intHi = intRange(r)
	}
	r.anyNonNeg = r.typ == typeNumber && r.maximum == nil &&
		(r.minimum == nil || r.minimum.dec.zero() || r.minimum.dec.neg) &&
		(r.exclusiveMinimum == nil || r.exclusiveMinimum.dec.neg)
	if len(r.props) > 64 {
		return nil, errf("more than 64 properties")
	}
	for i := range r.props {
		p := &r.props[i]
		for _, c := range []byte(p.name) {
			if !strSafe[c] {
				// The validator compares keys with the names as written.
				return nil, errf("property name %q is not printable ASCII without quotes and backslashes", p.name)
			}
		}
		p.key = newObjKey(`"` + p.name + `":`)
		if p.required {
			r.required |= 1 << i
		}
	}
	if r.typ == typeObject {
		r.byFirst = new([128]uint8)
		for c := range r.byFirst {
			r.byFirst[c] = uint8(len(r.props))
		}
		for i := len(r.props) - 1; i >= 0; i-- {
			if name := r.props[i].name; name != "" { // else found by the general path
				r.props[i].sameFirst, r.byFirst[name[0]] = r.byFirst[name[0]], uint8(i)
			}
		}
	}
	return r, nil
}

// intRange returns the range of the integer values that the number or
// integer rule r accepts, if its bounds are all integers (see rule.intRange).
func intRange(r *rule) (ok bool, lo, hi int64) {
	lo, hi = math.MinInt64, math.MaxInt64
	if r.typ == typeInteger { // always with format int32
		lo, hi = math.MinInt32, math.MaxInt32
	}
	for _, b := range []*bound{r.minimum, r.maximum, r.exclusiveMinimum} {
		if b != nil && !b.isInt {
			return false, 0, 0
		}
	}
	if b := r.minimum; b != nil {
		lo = max(lo, b.int)
	}
	if b := r.exclusiveMinimum; b != nil {
		if b.int == math.MaxInt64 {
			return false, 0, 0
		}
		lo = max(lo, b.int+1)
	}
	if b := r.maximum; b != nil {
		hi = min(hi, b.int)
	}
	return true, lo, hi
}

// count reads a non-negative integer keyword value.
func count(v any) (int, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("got %v, want a non-negative integer", v)
	}
	i, ok := parseInt([]byte(n), 0, 1<<31-1)
	if !ok {
		return 0, fmt.Errorf("got %s, want a non-negative integer", n)
	}
	return int(i), nil
}

// SchemaJSON returns the JSON Schema (draft 2020-12) of eventType's data as
// stored in the package, and false if eventType is unknown. The caller may
// modify the returned slice. Decode enforces exactly these schemas.
func SchemaJSON(eventType string) ([]byte, bool) {
	if _, ok := DomainOf(eventType); !ok {
		return nil, false
	}
	b, err := schemaFiles.ReadFile("schemas/" + eventType + ".json")
	return b, err == nil
}

// ValidateData checks data (a JSON document) against eventType's schema.
// It returns nil if data is valid, a *PoisonError naming the offending field
// if it is not (or if eventType is unknown), and a plain error only if the
// embedded schemas fail to compile, which the package tests rule out.
// ValidateData does not compare the key field with a subject; Decode does.
func ValidateData(eventType string, data []byte) error {
	_, _, idx, ok := lookupType([]byte(eventType))
	if !ok {
		return poisonf("type: %q is unknown", clip(eventType))
	}
	if len(data) == 0 {
		return poisonf("data: missing")
	}
	s := scanner{b: data}
	s.skipSpace()
	start := s.i
	kind, ok := s.value()
	if !ok || !s.end() {
		return poisonf("data: invalid JSON: %s", s.err)
	}
	if kind == 'n' {
		return poisonf("data: is null")
	}
	set, err := compiledRules()
	if err != nil {
		return err
	}
	_, err = checkData(&set.byIndex[idx], data[start:])
	return err
}

// maxSchemaMessages bounds how many schema violations a reason lists.
const maxSchemaMessages = 3

// maxReasonValue bounds how much of a record's own text a reason repeats.
const maxReasonValue = 64

// clip shortens s for use in a reason.
func clip(s string) string {
	if len(s) <= maxReasonValue {
		return s
	}
	// Cut on a rune boundary.
	i := maxReasonValue
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}
