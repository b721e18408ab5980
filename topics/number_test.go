package topics

import (
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// TestNumberValue holds scanner.number's value of small integer literals to
// strconv.ParseInt, and its other results to the literal's form.
func TestNumberValue(t *testing.T) {
	lits := []string{"0", "-0", "1", "-1", "9", "10", "12", "99999999", "100000000", "123456789",
		"1732701600123", "999999999999999999", "-999999999999999999", "1000000000000000000",
		"9223372036854775807", "-9223372036854775808", "1.5", "0.5", "-0.0", "1e3", "1E+3", "2.5e-3", "0e0",
		"12345678.9", "12345678e1", strings.Repeat("9", 40)}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := 1 + r.IntN(20)
		var sb strings.Builder
		if r.IntN(4) == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(byte('1' + r.IntN(9)))
		for range n - 1 {
			sb.WriteByte(byte('0' + r.IntN(10)))
		}
		lits = append(lits, sb.String())
	}
	for _, lit := range lits {
		for _, tail := range []string{"", ",", "}", " ", "x1234567"} {
			s := scanner{b: []byte(lit + tail)}
			v, small, exp, ok := s.number()
			if !ok || s.i != len(lit) {
				t.Fatalf("number(%q) = ok %v at %d", lit+tail, ok, s.i)
			}
			if wantExp := strings.ContainsAny(lit, "eE"); exp != wantExp {
				t.Errorf("number(%q): exp = %v", lit, exp)
			}
			digits := strings.TrimPrefix(lit, "-")
			wantSmall := !strings.ContainsAny(lit, ".eE") && len(digits) <= 18
			if small != wantSmall {
				t.Errorf("number(%q): small = %v", lit, small)
				continue
			}
			if small {
				if want, err := strconv.ParseInt(lit, 10, 64); err != nil || v != want {
					t.Errorf("number(%q) = %d, want %d (%v)", lit, v, want, err)
				}
			}
		}
	}
}

// TestEightDigits compares eightDigits and eightDigitsValue with a byte by
// byte reading on random words, most of them near digits.
func TestEightDigits(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		var b [8]byte
		for k := range b {
			switch r.IntN(8) {
			case 0:
				b[k] = byte(r.IntN(256))
			case 1:
				b[k] = byte('0' - 8 + r.IntN(26))
			default:
				b[k] = byte('0' + r.IntN(10))
			}
		}
		w := binary.LittleEndian.Uint64(b[:])
		want, value := true, uint64(0)
		for _, c := range b {
			want = want && '0' <= c && c <= '9'
			value = value*10 + uint64(c-'0')
		}
		if got := eightDigits(w); got != want {
			t.Fatalf("eightDigits(%q) = %v", b, got)
		}
		if want && eightDigitsValue(w) != value {
			t.Fatalf("eightDigitsValue(%q) = %d, want %d", b, eightDigitsValue(w), value)
		}
	}
}
