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
// On kfake each kill waits until every process is ready and every group
// Stable with exactly the three live processes as members (the replacement
// joined, the killed member expired); the moment is random within the
// processing, not within a join. kfake's classic groups never expire a member that
// joins (first JoinGroup with its member id) and dies while that JoinGroup
// waits in the join barrier: the member's pending-join session timer is
// stopped when it enters the barrier (groups.go addMemberAndRebalance →
// stopPending), and a session timer is armed again only after a response
// is delivered (group.reply → updateHeartbeat only when clientReq.reply
// returns true, which for a closed connection is a coin toss between the
// buffered respCh and cc.done). The dead member then counts as joined,
// takes partitions in the next generation that nobody consumes, and every
// later rebalance waits for it until kfake's rebalance timer (60 s,
// restarted by every join) fires, while the survivors sit in JoinGroup or
// SyncGroup with their commits blocked (kgo holds CommitOffsetsSync during
// join and sync) and their JoinGroups time out (rebalance timeout + 10 s):
// the run needs minutes to converge. A replacement started into a 45 s
// barrier and killed 1–3 s later is exactly that member. Apache Kafka
// reschedules every member's heartbeat expiration when a join completes,
// delivered or not, so there the dead member is gone after
// session.timeout.ms; the real-Kafka run keeps the fully random moment.
func TestKillNine(t *testing.T) {
	eachBackend(t, true, func(t *testing.T, b *backend) {
		rounds := size(1, 10)
		// On kfake a round lasts a session timeout (the wait for Stable),
		// so the long stream is fed slowly enough to span the rounds.
		pause := size(300*time.Millisecond, 500*time.Millisecond)
		if !b.Real() {
			pause = size(300*time.Millisecond, 10*time.Second)
		}
		s := newStack(t, b, fastRetry)
		s.generate(stream(7, size(2000, 50000), 0.02))
		procs := []*proc{s.start(), s.start(), s.start()}

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fed := make(chan error, 1)
		go func() { fed <- s.feed(ctx, size(100, 1000), pause) }()

		rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
		for r := range rounds {
			if !b.Real() {
				s.waitSettled(procs, 3*time.Minute)
			}
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
