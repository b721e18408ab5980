package chaos

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// TestRebalanceStorm: processes join and leave (SIGTERM) every 1–3 s while
// the stream is produced; each cooperative-sticky revocation must drain and
// commit, so the invariants hold and duplicates stay rare.
func TestRebalanceStorm(t *testing.T) {
	eachBackend(t, false, func(t *testing.T, b *backend) {
		t.Parallel()
		s := newStack(t, b, fastRetry)
		s.generate(stream(71, size(2000, 50000), 0.02))
		procs := []*proc{s.start(), s.start()}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fed := make(chan error, 1)
		go func() { fed <- s.feed(ctx, size(100, 1000), size(300*time.Millisecond, 500*time.Millisecond)) }()
		rng := rand.New(rand.NewPCG(71, uint64(time.Now().UnixNano())))
		end := time.Now().Add(size(8*time.Second, 2*time.Minute))
		for time.Now().Before(end) {
			time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
			if len(procs) > 1 && rng.IntN(2) == 0 {
				i := rng.IntN(len(procs))
				p := procs[i]
				procs = append(procs[:i], procs[i+1:]...)
				go func() { _, _ = p.term(time.Minute) }() // leaves while the others rebalance
				t.Logf("leave: SIGTERM %s", p.name)
			} else {
				p := s.start()
				procs = append(procs, p)
				t.Logf("join: %s", p.name)
			}
		}
		if err := <-fed; err != nil {
			t.Fatal(err)
		}
		s.waitCaughtUp(size(2*time.Minute, 10*time.Minute))
		requireOK(t, s.check("rebalance-storm"))
	})
}
