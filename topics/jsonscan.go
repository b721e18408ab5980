package topics

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// This file holds the JSON primitives of the fast decode path: a validating
// scanner that accepts exactly what encoding/json accepts (RFC 8259 syntax,
// invalid UTF-8 allowed inside strings, at most maxNestingDepth nested
// arrays and objects), string decoding with encoding/json's replacement of
// invalid UTF-8, its case-insensitive key folding, and exact decimal
// comparison of number literals.

// maxNestingDepth is encoding/json's limit on nested arrays and objects.
const maxNestingDepth = 10000

// strSafe[c] reports whether byte c stands for itself inside a JSON string
// and needs no further look: printable ASCII other than '"' and '\\'.
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hexDigit[c] reports whether c is a hexadecimal digit.
var hexDigit = func() (t [256]bool) {
	for _, c := range "0123456789abcdefABCDEF" {
		t[c] = true
	}
	return t
}()

// jsonString is a string token: b[start:end] is its text between the quotes.
type jsonString struct {
	start, end int
	// esc reports a backslash escape; high a byte >= 0x80.
	esc, high bool
}

// scanner walks a JSON text. Its methods leave i after what they read and, on
// a syntax error, return false with err set.
type scanner struct {
	b     []byte
	i     int
	depth int
	err   string
}

// fail records a syntax error at the current offset and returns false.
func (s *scanner) fail(what string) bool {
	if s.err == "" {
		if s.i >= len(s.b) {
			s.err = "unexpected end of JSON input"
		} else {
			s.err = what + " " + strconv.QuoteRune(rune(s.b[s.i])) + " at offset " + strconv.Itoa(s.i)
		}
	}
	return false
}

// skipSpace moves past white space.
func (s *scanner) skipSpace() {
	for s.i < len(s.b) && s.b[s.i] <= ' ' {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// objKey is a literal that objKey.at compares a word at a time: an object
// key and its colon as producers write them, `"id":`, or such a key with the
// bytes around it.
type objKey struct {
	text string
	// words are the first 24 bytes of text as little-endian words, and
	// masks the bits of them that text fills.
	words, masks [3]uint64
}

// newObjKey returns the objKey of the literal text.
func newObjKey(text string) objKey {
	k := objKey{text: text}
	var buf, mask [24]byte
	copy(buf[:], text)
	for i := range min(len(text), len(mask)) {
		mask[i] = 0xFF
	}
	for w := range k.words {
		k.words[w] = binary.LittleEndian.Uint64(buf[8*w:])
		k.masks[w] = binary.LittleEndian.Uint64(mask[8*w:])
	}
	return k
}

// mayBe reports whether a key that starts with the little-endian word w
// may be k, and is k if k.text is at most eight bytes long: a cheap test
// before at.
func (k *objKey) mayBe(w uint64) bool { return w&k.masks[0] == k.words[0] }

// at reports whether b[i:] starts with k.text, for 0 <= i <= len(b).
func (k *objKey) at(b []byte, i int) bool {
	if len(b)-i < len(k.masks)*8 || len(k.text) > len(k.masks)*8 {
		return len(b)-i >= len(k.text) && string(b[i:i+len(k.text)]) == k.text
	}
	return k.startOf(b[i : i+24])
}

// startOf reports whether w, 24 bytes, starts with k.text, which must be at
// most 24 bytes long.
func (k *objKey) startOf(w []byte) bool {
	return binary.LittleEndian.Uint64(w)&k.masks[0] == k.words[0] &&
		binary.LittleEndian.Uint64(w[8:])&k.masks[1] == k.words[1] &&
		binary.LittleEndian.Uint64(w[16:])&k.masks[2] == k.words[2]
}

// str reads a string token; b[i] must be '"'. The common token, short and
// plain, ends in its first eight-byte words, which str reads itself; strRest
// takes over from the first byte that needs a look otherwise.
func (s *scanner) str() (t jsonString, ok bool) {
	b := s.b
	i := s.i + 1
	t.start = i
	for ; i+8 <= len(b); i += 8 {
		if m := needsLook(binary.LittleEndian.Uint64(b[i : i+8])); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			if b[i] == '"' {
				t.end = i
				s.i = i + 1
				return t, true
			}
			break
		}
	}
	return s.strRest(t, i)
}

// strRest reads the rest of the string token t from b[i], where i is at
// most the offset of the first byte that is not strSafe.
func (s *scanner) strRest(t jsonString, i int) (jsonString, bool) {
	b := s.b
	for {
		// Eight bytes at a time to the first that needs a look, then (near
		// the end of b) one by one.
		for ; i+8 <= len(b); i += 8 {
			if m := needsLook(binary.LittleEndian.Uint64(b[i : i+8])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				goto look
			}
		}
		for i < len(b) && strSafe[b[i]] {
			i++
		}
	look:
		if i >= len(b) {
			s.i = i
			return t, s.fail("")
		}
		switch c := b[i]; {
		case c == '"':
			t.end = i
			s.i = i + 1
			return t, true
		case c == '\\':
			t.esc = true
			if i+1 >= len(b) {
				s.i = len(b)
				return t, s.fail("")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= len(b) {
						s.i = len(b)
						return t, s.fail("")
					}
					if !hexDigit[b[k]] {
						s.i = k
						return t, s.fail("invalid character in \\u escape:")
					}
				}
				i += 6
			default:
				s.i = i + 1
				return t, s.fail("invalid escape character")
			}
		case c < 0x20:
			s.i = i
			return t, s.fail("invalid control character in string:")
		default:
			t.high = true
			i++
		}
	}
}

// needsLook returns a mask of the bytes of w (little endian) that are not
// strSafe: '"', '\\', a control character or a byte >= 0x80. The mask may
// flag a byte above one that needs a look, but never below, so its lowest bit
// marks the first byte to look at exactly: below that byte no subtraction
// borrows, and each of the terms sets the high bit of a byte that is a
// control character, a quote or a backslash, or has it set already.
func needsLook(w uint64) uint64 {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	return ((w - 0x20*ones) | ((w ^ '"'*ones) - ones) | ((w ^ '\\'*ones) - ones) | w) & highs
}

// number reads a number token; b[i] must be '-' or a digit. If the token is
// an integer literal (no fraction, no exponent) of at most 18 digits, which
// always fits an int64, small is true and v its value; exp reports an
// exponent.
func (s *scanner) number() (v int64, small, exp, ok bool) {
	b := s.b
	i := s.i
	neg := b[i] == '-'
	if neg {
		i++
	}
	start, u := i, uint64(0)
	switch {
	case i >= len(b):
		s.i = i
		return 0, false, false, s.fail("")
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		for ; len(b)-i >= 8 && b[i+7]-'0' <= 9; i += 8 { // (the eighth byte first: a cheap test)
			w := binary.LittleEndian.Uint64(b[i:])
			if !eightDigits(w) {
				break
			}
			u = u*1e8 + eightDigitsValue(w)
		}
		for ; i < len(b); i++ {
			d := b[i] - '0'
			if d > 9 {
				break
			}
			u = u*10 + uint64(d)
		}
	default:
		s.i = i
		return 0, false, false, s.fail("invalid character in numeric literal:")
	}
	small = i-start <= 18
	if i < len(b) && b[i] == '.' {
		small = false
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			s.i = i
			return 0, false, false, s.fail("invalid character after decimal point:")
		}
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		small, exp = false, true
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			s.i = i
			return 0, false, false, s.fail("invalid character in exponent:")
		}
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	s.i = i
	if v = int64(u); neg {
		v = -v
	}
	return v, small, exp, true
}

// eightDigits reports whether the eight bytes of w are decimal digits.
func eightDigits(w uint64) bool {
	const f0, six, threes = 0xF0F0F0F0F0F0F0F0, 0x0606060606060606, 0x3333333333333333
	// A byte is a digit if its high nibble is 3 and, with 6 added, still 3;
	// adding 6 carries into the next byte only from a byte >= 0xFA, which
	// fails on its own.
	return w&f0|(w+six)&f0>>4 == threes
}

// eightDigitsValue returns the value of the eight decimal digits of w, the
// first in the low byte.
func eightDigitsValue(w uint64) uint64 {
	w -= 0x3030303030303030
	w = (w*10 + w>>8) & 0x00FF00FF00FF00FF // pairs of digits
	w = (w*100 + w>>16) & 0x0000FFFF0000FFFF
	return (w*10000 + w>>32) & 0xFFFFFFFF
}

// literal reads the literal lit (true, false or null).
func (s *scanner) literal(lit string) bool {
	for k := 0; k < len(lit); k++ {
		if s.i >= len(s.b) || s.b[s.i] != lit[k] {
			return s.fail("invalid character in literal " + lit + ":")
		}
		s.i++
	}
	return true
}

// value reads any value and returns its kind: the first byte of the value,
// with 't' for both booleans and '0' for numbers.
func (s *scanner) value() (kind byte, ok bool) {
	if s.i >= len(s.b) {
		return 0, s.fail("")
	}
	switch c := s.b[s.i]; c {
	case '"':
		_, ok = s.str()
		return '"', ok
	case '{':
		return '{', s.object()
	case '[':
		return '[', s.array()
	case 't':
		return 't', s.literal("true")
	case 'f':
		return 't', s.literal("false")
	case 'n':
		return 'n', s.literal("null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			_, _, _, ok = s.number()
			return '0', ok
		}
		return 0, s.fail("invalid character looking for beginning of value:")
	}
}

// enter counts one more level of nesting; b[i] is '{' or '['.
func (s *scanner) enter() bool {
	s.depth++
	if s.depth > maxNestingDepth {
		return s.fail("exceeded max depth at")
	}
	s.i++
	s.skipSpace()
	return true
}

// open enters the object at b[i] ('{') and reports whether it is empty,
// in which case it has read it whole, closing brace included.
func (s *scanner) open() (empty, ok bool) {
	if !s.enter() {
		return false, false
	}
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		s.depth--
		return true, true
	}
	return false, true
}

// object reads an object, checking only its syntax.
func (s *scanner) object() bool {
	if empty, ok := s.open(); empty || !ok {
		return ok
	}
	for {
		if !s.key() {
			return false
		}
		if _, ok := s.value(); !ok {
			return false
		}
		if more, ok := s.next('}'); !ok || !more {
			return ok
		}
	}
}

// key reads `"name"` and the colon after it, with the space around them.
func (s *scanner) key() bool {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return s.fail("invalid character looking for beginning of object key string:")
	}
	if _, ok := s.str(); !ok {
		return false
	}
	return s.colon()
}

// colon reads the colon after a key, with the space around it.
func (s *scanner) colon() bool {
	s.skipSpace()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return s.fail("invalid character after object key:")
	}
	s.i++
	s.skipSpace()
	return true
}

// comma reads a comma right after an element, and the space after it, and
// reports whether it did: the common case of next, inlined.
func (s *scanner) comma() bool {
	if s.i < len(s.b) && s.b[s.i] == ',' {
		s.i++
		s.skipSpace()
		return true
	}
	return false
}

// next reads the space after an element and then either a comma (more is
// true) or the closing byte (more is false, and the nesting level is left).
func (s *scanner) next(closing byte) (more, ok bool) {
	s.skipSpace()
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case ',':
			s.i++
			s.skipSpace()
			return true, true
		case closing:
			s.i++
			s.depth--
			return false, true
		}
	}
	return false, s.fail("invalid character after element:")
}

// array reads an array.
func (s *scanner) array() bool {
	if !s.enter() {
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.depth--
		return true
	}
	for {
		if _, ok := s.value(); !ok {
			return false
		}
		if more, ok := s.next(']'); !ok || !more {
			return ok
		}
	}
}

// end reads trailing space and reports whether the text ends there.
func (s *scanner) end() bool {
	s.skipSpace()
	if s.i < len(s.b) {
		return s.fail("invalid character after top-level value:")
	}
	return true
}

// clean reports whether the token's text is its value: no escapes and valid
// UTF-8.
func (t jsonString) clean(b []byte) bool {
	return !t.esc && (!t.high || utf8.Valid(b[t.start:t.end]))
}

// text returns the token's value as bytes, decoding escapes and replacing
// invalid UTF-8 as encoding/json does. The result aliases b when the token
// is clean.
func (t jsonString) text(b []byte) []byte {
	if !t.esc && !t.high {
		return b[t.start:t.end] // ASCII without escapes: the common case, inlined
	}
	return t.decode(b)
}

// decode is text for a token with escapes or bytes >= 0x80.
func (t jsonString) decode(b []byte) []byte {
	if t.clean(b) {
		return b[t.start:t.end]
	}
	var v string
	// The token is valid JSON, so this cannot fail.
	_ = json.Unmarshal(b[t.start-1:t.end+1], &v)
	return []byte(v)
}

// kindName names a value kind as encoding/json's UnmarshalTypeError does.
func kindName(kind byte) string {
	switch kind {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// foldKey appends the case-folded form of key to out, as encoding/json does
// to match object keys with struct fields: ASCII letters to upper case, any
// other rune to the smallest rune of its Unicode simple fold orbit (so the
// Kelvin sign folds to K and the long s to S).
func foldKey(out, key []byte) []byte {
	for i := 0; i < len(key); {
		if c := key[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(key[i:])
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		out = utf8.AppendRune(out, r)
		i += n
	}
	return out
}

// decimal is a number literal viewed as sign × 0.d₁d₂…dₙ × 10^point, where
// the digits (hi followed by lo, as parts of the literal) have no leading or
// trailing zeros. Zero has no digits. It compares literals exactly, as the
// JSON Schema validator does with big.Rat, without allocating.
type decimal struct {
	neg    bool
	hi, lo []byte
	point  int64
}

// maxExp bounds exponents while parsing; any literal shorter than that many
// digits compares correctly.
const maxExp = 1 << 50

// parseDecimal views a valid JSON number literal as a decimal.
func parseDecimal(lit []byte) decimal {
	var d decimal
	i := 0
	if lit[0] == '-' {
		d.neg = true
		i++
	}
	intStart := i
	for i < len(lit) && '0' <= lit[i] && lit[i] <= '9' {
		i++
	}
	intPart := lit[intStart:i]
	var frac []byte
	if i < len(lit) && lit[i] == '.' {
		i++
		fs := i
		for i < len(lit) && '0' <= lit[i] && lit[i] <= '9' {
			i++
		}
		frac = lit[fs:i]
	}
	var exp int64
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		i++
		eneg := false
		if lit[i] == '+' || lit[i] == '-' {
			eneg = lit[i] == '-'
			i++
		}
		for ; i < len(lit); i++ {
			if exp < maxExp {
				exp = exp*10 + int64(lit[i]-'0')
			}
		}
		if eneg {
			exp = -exp
		}
	}
	d.point = int64(len(intPart)) + exp
	// Leading zeros.
	for len(intPart) > 0 && intPart[0] == '0' {
		intPart = intPart[1:]
		d.point--
	}
	if len(intPart) == 0 {
		for len(frac) > 0 && frac[0] == '0' {
			frac = frac[1:]
			d.point--
		}
	}
	// Trailing zeros.
	for len(frac) > 0 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	if len(frac) == 0 {
		for len(intPart) > 0 && intPart[len(intPart)-1] == '0' {
			intPart = intPart[:len(intPart)-1]
		}
	}
	d.hi, d.lo = intPart, frac
	if d.zero() {
		d.neg = false
		d.point = 0
	}
	return d
}

func (d *decimal) zero() bool { return len(d.hi)+len(d.lo) == 0 }

func (d *decimal) digit(k int) byte {
	if k < len(d.hi) {
		return d.hi[k]
	}
	return d.lo[k-len(d.hi)]
}

// isInteger reports whether d has no fractional part.
func (d *decimal) isInteger() bool {
	return d.zero() || d.point >= int64(len(d.hi)+len(d.lo))
}

// cmp compares d and e: -1, 0 or +1.
func (d *decimal) cmp(e *decimal) int {
	switch {
	case d.zero() && e.zero():
		return 0
	case d.zero():
		if e.neg {
			return 1
		}
		return -1
	case e.zero():
		if d.neg {
			return -1
		}
		return 1
	case d.neg != e.neg:
		if d.neg {
			return -1
		}
		return 1
	}
	m := d.cmpAbs(e)
	if d.neg {
		return -m
	}
	return m
}

// cmpAbs compares the magnitudes of non-zero d and e.
func (d *decimal) cmpAbs(e *decimal) int {
	if d.point != e.point {
		if d.point < e.point {
			return -1
		}
		return 1
	}
	nd, ne := len(d.hi)+len(d.lo), len(e.hi)+len(e.lo)
	for k := 0; k < nd && k < ne; k++ {
		if a, b := d.digit(k), e.digit(k); a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	switch {
	case nd < ne:
		return -1
	case nd > ne:
		return 1
	}
	return 0
}

// sign returns the sign of a valid number literal: -1, 0 or +1.
func sign(lit []byte) int {
	for _, c := range lit {
		switch {
		case c == 'e' || c == 'E':
			return 0
		case '1' <= c && c <= '9':
			if lit[0] == '-' {
				return -1
			}
			return 1
		}
	}
	return 0
}

// fitsFloat64 reports whether strconv.ParseFloat accepts lit without
// overflowing to ±Inf.
func fitsFloat64(lit []byte) bool {
	if len(lit) <= 300 {
		exp := false
		for _, c := range lit {
			exp = exp || c|0x20 == 'e'
		}
		if !exp {
			return true // fewer than 300 digits before the point
		}
	}
	d := parseDecimal(lit)
	if d.zero() || d.point <= 308 { // |d| < 1e308 < MaxFloat64
		return true
	}
	if d.point > 309 { // |d| >= 1e309 > MaxFloat64
		return false
	}
	_, err := strconv.ParseFloat(string(lit), 64)
	return err == nil
}

// parseInt parses an integer literal within [lo, hi] as strconv.ParseInt
// with base 10 does: an optional sign and decimal digits.
func parseInt(lit []byte, lo, hi int64) (int64, bool) {
	neg := len(lit) > 0 && lit[0] == '-'
	digits := lit
	if len(lit) > 0 && (lit[0] == '-' || lit[0] == '+') {
		digits = lit[1:]
	}
	for len(digits) > 1 && digits[0] == '0' {
		digits = digits[1:]
	}
	// 19 digits cannot overflow uint64.
	if len(digits) == 0 || len(digits) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	const maxU = 1 << 63
	var v int64
	switch {
	case neg && u <= maxU:
		v = int64(-u) // -(1<<63) wraps to itself
	case !neg && u < maxU:
		v = int64(u)
	default:
		return 0, false
	}
	if v < lo || v > hi {
		return 0, false
	}
	return v, true
}
