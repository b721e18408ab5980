package topics

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// checker validates one data value against a compiled schema (see schema.go)
// without building a document. Duplicate object keys count once, the last
// one winning, as when encoding/json decodes into a map.
//
// Without explain the checker is the fast path: it validates each value as
// it scans it, in one pass, and stops at the first violation. It also checks
// the syntax, so that Decode can run it on a record it has not finished
// scanning: a false result with s.err set is a syntax error, without it a
// violation.
//
// With explain the checker runs on text known to be valid JSON, goes on past
// violations and records each as "data.path: message", as the JSON Schema
// validator reports them, to build the poison reason.
type checker struct {
	s       scanner
	explain bool
	msgs    []string
	path    []string
}

// checkData validates data, which starts with a valid JSON value, against
// tr. It returns the offset in data of the value of the domain's key field
// (-1 if absent), or a *PoisonError naming every offending field.
func checkData(tr *typeRules, data []byte) (keyOff int, err error) {
	c := checker{s: scanner{b: data}}
	if keyOff, _, ok := c.root(tr); ok {
		return keyOff, nil
	}
	c = checker{s: scanner{b: data}, explain: true}
	c.root(tr)
	return -1, &PoisonError{Reason: schemaReason(c.msgs)}
}

// root validates the value at the scanner's position against tr and returns
// the offset of the key field's value (-1 if absent) and its token, as
// object does.
func (c *checker) root(tr *typeRules) (keyOff int, key jsonString, ok bool) {
	if c.s.i < len(c.s.b) && c.s.b[c.s.i] == '{' {
		return c.object(tr.root, tr.keyProp)
	}
	_, ok = c.check(tr.root)
	return -1, key, ok
}

// schemaReason sorts the messages and keeps the first few, like the
// reference validator's reason.
func schemaReason(msgs []string) string {
	if len(msgs) == 0 {
		return "data: fails schema"
	}
	slices.Sort(msgs)
	msgs = slices.Compact(msgs)
	if len(msgs) > maxSchemaMessages {
		msgs = append(msgs[:maxSchemaMessages], fmt.Sprintf("and %d more", len(msgs)-maxSchemaMessages))
	}
	return strings.Join(msgs, "; ")
}

// fail records a violation at the current path (explain mode only).
func (c *checker) fail(format string, args ...any) {
	var sb strings.Builder
	sb.WriteString("data")
	for _, tok := range c.path {
		sb.WriteByte('.')
		sb.WriteString(clip(tok))
	}
	sb.WriteString(": ")
	sb.WriteString(clip(fmt.Sprintf(format, args...)))
	c.msgs = append(c.msgs, sb.String())
}

// check validates the value at the scanner's position and moves past it.
// It returns the token of a string value that r checked (else the zero
// jsonString).
func (c *checker) check(r *rule) (t jsonString, ok bool) {
	s := &c.s
	b := s.b
	start := s.i
	if start >= len(b) {
		return t, s.fail("")
	}
	switch r.typ {
	case typeObject:
		if b[start] == '{' {
			_, _, ok := c.object(r, -1)
			return t, ok
		}
	case typeArray:
		if b[start] == '[' {
			return t, c.array(r)
		}
	case typeString:
		if b[start] == '"' {
			if t, ok = s.str(); !ok {
				return t, false
			}
			if r.lengthOnly && !t.esc && !t.high && t.end-t.start >= r.minLength {
				return t, true // c.str's common case
			}
			return t, c.str(r, t)
		}
	case typeNumber, typeInteger:
		if ch := b[start]; ch == '-' || '0' <= ch && ch <= '9' {
			v, small, exp, ok := s.number()
			if !ok {
				return t, false
			}
			if small && r.intRange && v >= r.intLo && v <= r.intHi &&
				(r.intEnum == nil || slices.Contains(r.intEnum, v)) ||
				r.anyNonNeg && b[start] != '-' && !exp && s.i-start <= 300 {
				return t, true // c.num's common cases
			}
			return t, c.num(r, b[start:s.i], v, small, exp)
		}
	}
	kind, ok := s.value()
	if ok && c.explain {
		c.fail("got %s, want %s", schemaKind(kind), r.typ)
	}
	return t, false
}

// schemaKind names a value kind (see scanner.value) as JSON Schema does.
func schemaKind(kind byte) string {
	if kind == 't' {
		return "boolean"
	}
	return kindName(kind)
}

// object validates an object and returns the offset of the value of
// r.props[want] (-1 if absent or want is -1) and, if that value is a string
// that the property's rule checked, its token (else the zero jsonString).
func (c *checker) object(r *rule, want int) (keyOff int, key jsonString, ok bool) {
	if c.explain {
		return -1, key, c.explainObject(r)
	}
	s := &c.s
	b := s.b
	// seen has bit j set if r.props[j] occurs, bad if its last value
	// violates r.props[j].rule.
	var seen, bad uint64
	keyOff = -1
	empty, ok := s.open()
	if !ok {
		return -1, key, false
	}
	if !empty {
		for {
			if s.i >= len(b) || b[s.i] != '"' {
				return -1, key, s.fail("invalid character looking for beginning of object key string:")
			}
			// Compare the key with the names that start with its first
			// byte before scanning it, by its first word first.
			j := len(r.props)
			if s.i+8 <= len(b) && b[s.i+1] < utf8.RuneSelf {
				w := binary.LittleEndian.Uint64(b[s.i:])
				for k := int(r.byFirst[b[s.i+1]]); k < len(r.props); k = int(r.props[k].sameFirst) {
					if pk := &r.props[k].key; pk.mayBe(w) && (len(pk.text) <= 8 || pk.at(b, s.i)) {
						j = k
						s.i += len(pk.text)
						s.skipSpace()
						break
					}
				}
			}
			if j == len(r.props) {
				t, ok := s.str()
				if !ok || !s.colon() {
					return -1, key, false
				}
				name := t.text(b)
				for j = 0; j < len(r.props) && string(name) != r.props[j].name; j++ {
				}
			}
			start, depth := s.i, s.depth
			if j == len(r.props) {
				if _, ok := s.value(); !ok {
					return -1, key, false
				}
			} else {
				bit := uint64(1) << (j & 63) // (j < 64: the mask spares the shift a check)
				var t jsonString
				vok := true
				if pr := r.props[j].rule; pr != nil {
					t, vok = c.check(pr)
				} else if _, ok := s.value(); !ok {
					return -1, key, false
				}
				switch {
				case vok:
					bad &^= bit
				case s.err != "":
					return -1, key, false
				default:
					// A violation, unless a later duplicate replaces the value.
					bad |= bit
					s.i, s.depth = start, depth
					if _, ok := s.value(); !ok {
						return -1, key, false
					}
				}
				seen |= bit
				if j == want {
					keyOff, key = start, t
				}
			}
			if s.comma() {
				continue
			}
			more, ok := s.next('}')
			if !ok {
				return -1, key, false
			}
			if !more {
				break
			}
		}
	}
	if bad != 0 || seen&r.required != r.required {
		return -1, key, false
	}
	return keyOff, key, true
}

// explainObject is object in explain mode: it finds the last value of each
// property first, then validates those.
func (c *checker) explainObject(r *rule) bool {
	s := &c.s
	b := s.b
	offs := make([]int, len(r.props))
	for j := range offs {
		offs[j] = -1
	}
	s.enter()
	if b[s.i] == '}' {
		s.i++
		s.depth--
	} else {
		for {
			t, _ := s.str()
			s.colon()
			key := t.text(b)
			for j := range r.props {
				if string(key) == r.props[j].name {
					offs[j] = s.i
					break
				}
			}
			s.value()
			if more, _ := s.next('}'); !more {
				break
			}
		}
	}
	end := s.i
	ok := true
	for j := range r.props {
		p := &r.props[j]
		c.path = append(c.path, p.name)
		switch {
		case offs[j] < 0:
			if p.required {
				c.fail("required")
				ok = false
			}
		case p.rule != nil:
			s.i = offs[j]
			_, pok := c.check(p.rule)
			ok = pok && ok
		}
		c.path = c.path[:len(c.path)-1]
	}
	s.i = end
	return ok
}

// array validates an array.
func (c *checker) array(r *rule) bool {
	s := &c.s
	if !s.enter() {
		return false
	}
	n := 0
	ok := true
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.depth--
	} else {
		for {
			if r.items == nil {
				if _, vok := s.value(); !vok {
					return false
				}
			} else {
				if c.explain {
					c.path = append(c.path, strconv.Itoa(n))
				}
				if _, iok := c.check(r.items); !iok {
					if !c.explain {
						return false
					}
					ok = false
				}
				if c.explain {
					c.path = c.path[:len(c.path)-1]
				}
			}
			n++
			if s.comma() {
				continue
			}
			more, nok := s.next(']')
			if !nok {
				return false
			}
			if !more {
				break
			}
		}
	}
	if n < r.minItems {
		if !c.explain {
			return false
		}
		c.fail("minItems: got %d, want %d", n, r.minItems)
		ok = false
	}
	return ok
}

// str validates a string token.
func (c *checker) str(r *rule, t jsonString) bool {
	v := t.text(c.s.b)
	if r.strEnum != nil && !slices.Contains(r.strEnum, string(v)) {
		if c.explain {
			c.fail("value must be one of %s", r.enumText)
		}
		return false
	}
	ok := true
	if r.minLength > 0 {
		n := len(v)
		if t.esc || t.high {
			n = utf8.RuneCount(v)
		}
		if n < r.minLength {
			if !c.explain {
				return false
			}
			c.fail("minLength: got %d, want %d", n, r.minLength)
			ok = false
		}
	}
	if r.pattern != nil && !r.pattern.match(v) {
		if !c.explain {
			return false
		}
		c.fail("%s does not match pattern %s", quote(string(v)), quote(r.pattern.expr))
		ok = false
	}
	return ok
}

// num validates the number literal lit (of value v if small, with an
// exponent if exp, see scanner.number): type, then enum, then format, then
// the bounds, each failure of the first three hiding what follows, as in the
// JSON Schema validator.
func (c *checker) num(r *rule, lit []byte, v int64, small, exp bool) bool {
	if r.typ == typeInteger { // always with format int32
		if !small || v < math.MinInt32 || v > math.MaxInt32 {
			if c.explain {
				c.explainInt32(r, lit)
			}
			return false
		}
		if r.intEnum != nil && !slices.Contains(r.intEnum, v) {
			if c.explain {
				c.fail("value must be one of %s", r.enumText)
			}
			return false
		}
	} else if r.format == formatDouble && (exp || len(lit) > 300) && !fitsFloat64(lit) {
		// (fitsFloat64 accepts any other literal without looking.)
		if c.explain {
			c.fail("%s is not valid double: out of the float64 range", lit)
		}
		return false
	}
	ok := true
	if b := r.minimum; b != nil && b.cmp(lit, v, small) < 0 {
		if !c.explain {
			return false
		}
		c.fail("minimum: got %s, want %s", lit, b.text)
		ok = false
	}
	if b := r.maximum; b != nil && b.cmp(lit, v, small) > 0 {
		if !c.explain {
			return false
		}
		c.fail("maximum: got %s, want %s", lit, b.text)
		ok = false
	}
	if b := r.exclusiveMinimum; b != nil && b.cmp(lit, v, small) <= 0 {
		if !c.explain {
			return false
		}
		c.fail("exclusiveMinimum: got %s, want %s", lit, b.text)
		ok = false
	}
	return ok
}

// cmp compares the number literal lit with the bound: -1, 0 or +1. If small
// is true, lit is an integer literal of value v.
func (b *bound) cmp(lit []byte, v int64, small bool) int {
	switch {
	case small && b.isInt:
		return cmpInt(v, b.int)
	case b.dec.zero(): // the common bound: only the sign matters
		return sign(lit)
	}
	d := parseDecimal(lit)
	return d.cmp(&b.dec)
}

// cmpInt compares a and b: -1, 0 or +1.
func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// quote quotes s in single quotes, as the JSON Schema validator's messages
// do.
func quote(s string) string {
	s = strconv.Quote(s)
	s = strings.ReplaceAll(s, `\"`, `"`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s[1:len(s)-1] + "'"
}

// explainInt32 says why lit, which is not an int32 literal, fails r.
func (c *checker) explainInt32(r *rule, lit []byte) {
	d := parseDecimal(lit)
	if !d.isInteger() {
		c.fail("got number, want integer")
		return
	}
	if r.intEnum != nil {
		in := false
		for _, n := range r.intEnum {
			e := parseDecimal([]byte(strconv.FormatInt(n, 10)))
			in = in || d.cmp(&e) == 0
		}
		if !in {
			c.fail("value must be one of %s", r.enumText)
			return
		}
	}
	c.fail("%s is not valid int32: want an int32 integer literal", lit)
}
