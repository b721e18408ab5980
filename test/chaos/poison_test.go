package chaos

import (
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/devstack"
)

// TestPoisonFlood: 10% of the records are malformed. All must reach the
// DLQ, none may block its partition, and the good records' throughput must
// stay within 2× of a clean run of the same stream shape, measured in the
// same test (first to last sink call, so group joins do not count).
// Timing on a shared 2-core CI box is noisy: the sample is a few thousand
// records and the bound is the 2×.
func TestPoisonFlood(t *testing.T) {
	eachBackend(t, false, func(t *testing.T, b *backend) {
		n := size(3000, 30000)
		run := func(name string, poison float64) (devstack.Verdict, float64) {
			s := newStack(t, b, fastRetry)
			s.generate(stream(61, n, poison))
			if err := s.feed(t.Context(), 0, 0); err != nil {
				t.Fatal(err)
			}
			s.start()
			s.waitCaughtUp(size(2*time.Minute, 10*time.Minute))
			v := s.check(name)
			calls := s.sim.Calls()
			if len(calls) < 2 {
				t.Fatalf("%s: %d sink calls", name, len(calls))
			}
			first, last := calls[0].At, calls[0].At
			for _, c := range calls {
				first, last = minTime(first, c.At), maxTime(last, c.At)
			}
			rate := float64(len(calls)) / max(last.Sub(first).Seconds(), 0.001)
			s.stopAll()
			return v, rate
		}
		clean, cleanRate := run("poison-flood (clean baseline)", -1)
		requireOK(t, clean)
		v, rate := run("poison-flood", 0.10)
		requireOK(t, v)
		poison := 0
		for _, g := range v.Groups {
			poison += g.Poison
		}
		ratio := cleanRate / rate
		t.Logf("good records/s: clean %.0f, with 10%% poison %.0f; slowdown ×%.2f (must be ≤ 2); %d poison records (per group), all on the DLQ",
			cleanRate, rate, ratio, poison)
		if poison == 0 {
			t.Fatal("no poison records generated")
		}
		if ratio > 2 {
			t.Errorf("good-record throughput fell ×%.2f with 10%% poison (limit ×2)", ratio)
		}
	})
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
