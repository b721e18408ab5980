package chaos

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRedisOutage cuts Redis (through a proxy, so Redis keeps its data)
// mid-stream for a while (20 s in the long version), then restores it: the
// groups pause, never skip the fence or dead-letter for it, and resume.
func TestRedisOutage(t *testing.T) {
	eachBackend(t, false, func(t *testing.T, b *backend) {
		t.Parallel()
		s := newStack(t, b, fastRetry)
		px := newProxy(t, s.redis.Addr())
		s.redisURL = "redis://" + px.addr + "/0"
		s.generate(stream(31, size(1500, 30000), 0.02))
		s.start()
		s.start()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fed := make(chan error, 1)
		go func() { fed <- s.feed(ctx, size(100, 1000), size(400*time.Millisecond, time.Second)) }()
		time.Sleep(2 * time.Second)
		outage := size(5*time.Second, 20*time.Second)
		px.down()
		t.Logf("redis cut for %s", outage)
		time.Sleep(outage)
		px.up()
		if err := <-fed; err != nil {
			t.Fatal(err)
		}
		s.waitCaughtUp(size(2*time.Minute, 10*time.Minute))
		requireOK(t, s.check("redis-outage"))
	})
}

// TestRedisRestartedEmpty restarts the (non-persistent) redis-server
// mid-stream: every fence version and dedupe id is gone. The processor
// detects it (processor/storereset.go: a per-group marker read back every
// commit tick) and reports it — an error log, shopstream_store_resets_total
// — and keeps going (see README, "Redis restarted empty"): stale copies read
// after the restart can then be applied over newer versions, and event ids
// applied before it can be applied again. The test requires the detection
// and that nothing is lost; regressions and duplicates are reported.
func TestRedisRestartedEmpty(t *testing.T) {
	eachBackend(t, false, func(t *testing.T, b *backend) {
		t.Parallel()
		s := newStack(t, b, fastRetry)
		s.generate(stream(41, size(1500, 30000), 0.02))
		p := s.start()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fed := make(chan error, 1)
		go func() { fed <- s.feed(ctx, size(100, 1000), size(400*time.Millisecond, time.Second)) }()
		time.Sleep(3 * time.Second)
		s.redis.Restart()
		t.Log("redis restarted empty")
		if err := <-fed; err != nil {
			t.Fatal(err)
		}
		s.waitCaughtUp(size(2*time.Minute, 10*time.Minute))
		v := s.check("redis-restarted-empty")
		if v.Lost != 0 || v.PoisonNotDLQ != 0 {
			t.Fatalf("lost records after a Redis restart:\n%s", v)
		}
		detected := strings.Count(tailFile(p.log, 1<<20), "store reset detected")
		t.Logf("store reset detected by %d of 6 groups; KNOWN GAP (keeps going): regressions %d, not at highest %d, duplicate applies %d",
			detected, v.Regressions, v.NotAtHighest, v.DuplicateApplies)
		if detected == 0 {
			t.Error("no group reported the store reset")
		}
	})
}
