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
	if keyOff, ok := c.root(tr); ok {
		return keyOff, nil
	}
	c = checker{s: scanner{b: data}, explain: true}
	c.root(tr)
	return -1, &PoisonError{Reason: schemaReason(c.msgs)}
}

// root validates the value at the scanner's position against tr and returns
// the offset of the key field's value (-1 if absent).
func (c *checker) root(tr *typeRules) (keyOff int, ok bool) {
	if c.s.i < len(c.s.b) && c.s.b[c.s.i] == '{' {
		return c.object(tr.root, tr.keyProp)
	}
	return -1, c.check(tr.root)
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
func (c *checker) check(r *rule) bool {
	s := &c.s
	b := s.b
	start := s.i
	if start >= len(b) {
		return s.fail("")
	}
	switch r.typ {
	case typeObject:
		if b[start] == '{' {
			_, ok := c.object(r, -1)
			return ok
		}
	case typeArray:
		if b[start] == '[' {
			return c.array(r)
		}
	case typeString:
		if b[start] == '"' {
			t, ok := s.str()
			return ok && c.str(r, t)
		}
	case typeNumber, typeInteger:
		if ch := b[start]; ch == '-' || '0' <= ch && ch <= '9' {
			return s.number() && c.num(r, b[start:s.i])
		}
	}
	kind, ok := s.value()
	if ok && c.explain {
		c.fail("got %s, want %s", schemaKind(kind), r.typ)
	}
	return false
}

// schemaKind names a value kind (see scanner.value) as JSON Schema does.
func schemaKind(kind byte) string {
	if kind == 't' {
		return "boolean"
	}
	return kindName(kind)
}

// object validates an object and returns the offset of the value of
// r.props[want] (-1 if absent or want is -1).
func (c *checker) object(r *rule, want int) (int, bool) {
	if c.explain {
		return c.explainObject(r)
	}
	s := &c.s
	b := s.b
	// offs[j] is the offset of the last value of r.props[j], or -1; bad has
	// bit j set if that value violates r.props[j].rule.
	var buf [16]int
	var offs []int
	if len(r.props) <= len(buf) {
		offs = buf[:len(r.props)]
	} else {
		offs = make([]int, len(r.props))
	}
	for j := range offs {
		offs[j] = -1
	}
	var bad uint64
	if !s.enter() {
		return -1, false
	}
	if s.i < len(b) && b[s.i] == '}' {
		s.i++
		s.depth--
	} else {
		for {
			if s.i >= len(b) || b[s.i] != '"' {
				return -1, s.fail("invalid character looking for beginning of object key string:")
			}
			// Compare the key with the names before scanning it, by its
			// first word first.
			j := len(r.props)
			if s.i+8 <= len(b) {
				w := binary.LittleEndian.Uint64(b[s.i : s.i+8])
				for k := range r.props {
					if key := &r.props[k].key; key.mayBe(w) && s.plainKey(key) {
						j = k
						break
					}
				}
			}
			if j == len(r.props) {
				t, ok := s.str()
				if !ok || !s.colon() {
					return -1, false
				}
				key := t.text(b)
				for j = 0; j < len(r.props) && string(key) != r.props[j].name; j++ {
				}
			}
			start, depth := s.i, s.depth
			switch {
			case j == len(r.props) || r.props[j].rule == nil:
				if _, ok := s.value(); !ok {
					return -1, false
				}
			case c.check(r.props[j].rule):
				bad &^= 1 << j
			case s.err != "":
				return -1, false
			default:
				// A violation, unless a later duplicate replaces the value.
				bad |= 1 << j
				s.i, s.depth = start, depth
				if _, ok := s.value(); !ok {
					return -1, false
				}
			}
			if j < len(r.props) {
				offs[j] = start
			}
			if s.comma() {
				continue
			}
			more, ok := s.next('}')
			if !ok {
				return -1, false
			}
			if !more {
				break
			}
		}
	}
	if bad != 0 {
		return -1, false
	}
	for j := range r.props {
		if offs[j] < 0 && r.props[j].required {
			return -1, false
		}
	}
	if want < 0 {
		return -1, true
	}
	return offs[want], true
}

// explainObject is object in explain mode: it finds the last value of each
// property first, then validates those.
func (c *checker) explainObject(r *rule) (int, bool) {
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
			ok = c.check(p.rule) && ok
		}
		c.path = c.path[:len(c.path)-1]
	}
	s.i = end
	return -1, ok
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
				if !c.check(r.items) {
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

// num validates a number literal: type, then enum, then format, then the
// bounds, each failure of the first three hiding what follows, as in the
// JSON Schema validator.
func (c *checker) num(r *rule, lit []byte) bool {
	if r.typ == typeInteger { // always with format int32
		n, ok := parseInt(lit, math.MinInt32, math.MaxInt32)
		if !ok {
			if c.explain {
				c.explainInt32(r, lit)
			}
			return false
		}
		if r.intEnum != nil && !slices.Contains(r.intEnum, n) {
			if c.explain {
				c.fail("value must be one of %s", r.enumText)
			}
			return false
		}
	} else if r.format == formatDouble && !fitsFloat64(lit) {
		if c.explain {
			c.fail("%s is not valid double: out of the float64 range", lit)
		}
		return false
	}
	ok := true
	if b := r.minimum; b != nil && b.cmp(lit) < 0 {
		if !c.explain {
			return false
		}
		c.fail("minimum: got %s, want %s", lit, b.text)
		ok = false
	}
	if b := r.maximum; b != nil && b.cmp(lit) > 0 {
		if !c.explain {
			return false
		}
		c.fail("maximum: got %s, want %s", lit, b.text)
		ok = false
	}
	if b := r.exclusiveMinimum; b != nil && b.cmp(lit) <= 0 {
		if !c.explain {
			return false
		}
		c.fail("exclusiveMinimum: got %s, want %s", lit, b.text)
		ok = false
	}
	return ok
}

// cmp compares the number literal lit with the bound: -1, 0 or +1.
func (b *bound) cmp(lit []byte) int {
	if b.dec.zero() { // the common bound: only the sign matters
		return sign(lit)
	}
	d := parseDecimal(lit)
	return d.cmp(&b.dec)
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
