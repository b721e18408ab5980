package chaos

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// fastRetry is the topology tail most scenarios use: quick retries, short
// drain and revoke deadlines.
const fastRetry = `drain_timeout: 20s
revoke_timeout: 10s
groups:
  catalog: {retry: {max_attempts: 6, initial_backoff: 20ms, max_backoff: 500ms, max_elapsed: 30s}}
  inventory: {retry: {max_attempts: 6, initial_backoff: 20ms, max_backoff: 500ms, max_elapsed: 30s}}
  order-crm: {retry: {max_attempts: 6, initial_backoff: 20ms, max_backoff: 500ms, max_elapsed: 30s}}
  order-fraud: {retry: {max_attempts: 6, initial_backoff: 20ms, max_backoff: 500ms, max_elapsed: 30s}}
  order-email: {retry: {max_attempts: 6, initial_backoff: 20ms, max_backoff: 500ms, max_elapsed: 30s}}
  customer-crm: {retry: {max_attempts: 6, initial_backoff: 20ms, max_backoff: 500ms, max_elapsed: 30s}}
`

// TestKillNine: three processes share the groups; every few seconds one is
// SIGKILLed at a random moment and a new one started, while the stream is
// produced. A killed member's partitions stall until its session times out
// (kgo's default 45 s), so the short version kills once; the long one 10
// times over a 50 k-event stream.
//
// Real Kafka only: on kfake the group never finishes the rebalance after a
// member is SIGKILLed and a replacement joins — the survivors' offset
// commits time out for minutes (seen with 2 kills; Apache Kafka 4.4 passes
// the same scenario). Not yet investigated whether kfake or the processor
// is at fault; see the README's chaos section.
func TestKillNine(t *testing.T) {
	eachRealBackend(t, func(t *testing.T, b *backend) {
		rounds := size(1, 10)
		s := newStack(t, b, fastRetry)
		s.generate(stream(7, size(2000, 50000), 0.02))
		procs := []*proc{s.start(), s.start(), s.start()}

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fed := make(chan error, 1)
		go func() { fed <- s.feed(ctx, size(100, 1000), size(300*time.Millisecond, 500*time.Millisecond)) }()

		rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
		for r := range rounds {
			time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
			i := rng.IntN(len(procs))
			procs[i].kill()
			t.Logf("round %d: SIGKILL %s, starting a replacement", r+1, procs[i].name)
			procs[i] = s.start()
		}
		if err := <-fed; err != nil {
			t.Fatal(err)
		}
		s.waitCaughtUp(size(3*time.Minute, 15*time.Minute))
		requireOK(t, s.check("kill-9"))
	})
}
