package ordering_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/internal/redistest"
	"github.com/shopstream/shopstream/ordering"
)

// storeServer starts one empty server speaking the Redis protocol and returns
// its address and a function that stops it (clients then see errors).
type storeServer func(t *testing.T) (addr string, stop func())

// TestStoreConformance runs the one store suite against every implementation
// of the Redis protocol we rely on, in the manner of Watermill's pubsub/tests:
// a real redis-server, and miniredis, which fast unit tests elsewhere use in
// its place. A difference between them (Lua semantics, TTL handling, error
// behaviour) fails here rather than only in production.
func TestStoreConformance(t *testing.T) {
	t.Parallel()
	servers := []struct {
		name  string
		start storeServer
	}{
		{"redis-server", func(t *testing.T) (string, func()) {
			srv := redistest.Start(t)
			return srv.Addr(), srv.Stop
		}},
		{"miniredis", func(t *testing.T) (string, func()) {
			m := miniredis.RunT(t)
			return m.Addr(), m.Close
		}},
	}
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			runStoreSuite(t, s.start)
		})
	}
}

// connect starts a fresh server and returns a client for it that reports an
// outage at once (no command retries, one short dial attempt), and the
// server's stop.
func connect(t *testing.T, start storeServer) (*redis.Client, func()) {
	t.Helper()
	addr, stop := start(t)
	rdb := redis.NewClient(&redis.Options{
		Addr:          addr,
		MaxRetries:    -1,
		DialTimeout:   500 * time.Millisecond,
		DialerRetries: 1, // one dial attempt per command
	})
	t.Cleanup(func() { _ = rdb.Close() }) // runs before the server's cleanup
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("ping %s: %v", addr, err)
	}
	return rdb, stop
}

// runStoreSuite is the conformance suite for VersionFence and Dedupe. Each
// case gets its own server, so cases neither share state nor order.
func runStoreSuite(t *testing.T, start storeServer) {
	cases := []struct {
		name string
		run  func(t *testing.T, rdb *redis.Client, stop func())
	}{
		{"VersionOfUnknownIsZero", testVersionOfUnknownIsZero},
		{"AdvanceOnlyRaises", testAdvanceOnlyRaises},
		{"LargeVersionsCompareExactly", testLargeVersionsCompareExactly},
		{"BigBatchWithRepeatsMatchesOneByOne", testBigBatch(true)},
		{"BigBatchOfDistinctKeysMatchesOneByOne", testBigBatch(false)},
		{"NegativeVersionIsAnError", testNegativeVersionIsAnError},
		{"NonIntegerVersionIsAnError", testNonIntegerVersionIsAnError},
		{"FenceGroupsAndSubjectsAreIsolated", testFenceIsolation},
		{"KeyLayout", testKeyLayout},
		{"ConcurrentAdvanceEndsAtMaximum", testConcurrentAdvance},
		{"DedupeSeenAfterMark", testDedupeSeenAfterMark},
		{"DedupeGroupsAreIsolated", testDedupeIsolation},
		{"DedupeTTL", testDedupeTTL},
		{"DedupeDefaultTTL", testDedupeDefaultTTL},
		{"ErrorsWhenServerDown", testErrorsWhenServerDown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rdb, stop := connect(t, start)
			c.run(t, rdb, stop)
		})
	}
}

func mustVersion(t *testing.T, f *ordering.VersionFence, group, subject string) int64 {
	t.Helper()
	v, err := version1(f, t.Context(), group, subject)
	if err != nil {
		t.Fatalf("Version(%q, %q): %v", group, subject, err)
	}
	return v
}

func mustAdvance(t *testing.T, f *ordering.VersionFence, group, subject string, version int64) bool {
	t.Helper()
	ok, err := advance1(f, t.Context(), group, subject, version)
	if err != nil {
		t.Fatalf("Advance(%q, %q, %d): %v", group, subject, version, err)
	}
	return ok
}

func testVersionOfUnknownIsZero(t *testing.T, rdb *redis.Client, _ func()) {
	f := ordering.NewVersionFence(rdb)
	if v := mustVersion(t, f, "prices", "SKU-1"); v != 0 {
		t.Errorf("Version of an unknown subject = %d, want 0", v)
	}
	if n, err := rdb.Exists(t.Context(), ordering.FenceKey("prices", "SKU-1")).Result(); err != nil || n != 0 {
		t.Errorf("EXISTS after Version = %d, %v; want 0: reading must not write", n, err)
	}
}

func testAdvanceOnlyRaises(t *testing.T, rdb *redis.Client, _ func()) {
	f := ordering.NewVersionFence(rdb)
	steps := []struct {
		version  int64
		advanced bool
		stored   int64
	}{
		{5, true, 5},
		{5, false, 5}, // equal: a redelivery
		{3, false, 5}, // lower: stale
		{9, true, 9},
		{10, true, 10}, // "10" < "9" as strings: the length must decide
		{9, false, 10},
		{99, true, 99},
		{100, true, 100},
		{0, false, 100},
		{1, false, 100},
		{1000000, true, 1000000},
		{999999, false, 1000000},
	}
	for _, s := range steps {
		if got := mustAdvance(t, f, "prices", "SKU-1", s.version); got != s.advanced {
			t.Errorf("Advance(%d) = %v, want %v", s.version, got, s.advanced)
		}
		if got := mustVersion(t, f, "prices", "SKU-1"); got != s.stored {
			t.Errorf("Version after Advance(%d) = %d, want %d", s.version, got, s.stored)
		}
	}
}

func testLargeVersionsCompareExactly(t *testing.T, rdb *redis.Client, _ func()) {
	// A Lua number is a double: 2^53 and 2^53+1 are the same double, and
	// MaxInt64 rounds to 2^63. The comparison must be exact anyway.
	const p53 = int64(1) << 53 // 9007199254740992
	f := ordering.NewVersionFence(rdb)
	steps := []struct {
		version  int64
		advanced bool
		stored   int64
	}{
		{p53, true, p53},
		{p53 + 1, true, p53 + 1}, // 9007199254740993
		{p53, false, p53 + 1},
		{p53 + 1, false, p53 + 1},
		{math.MaxInt64 - 1, true, math.MaxInt64 - 1},
		{math.MaxInt64, true, math.MaxInt64},
		{math.MaxInt64, false, math.MaxInt64},
		{math.MaxInt64 - 1, false, math.MaxInt64},
		{p53, false, math.MaxInt64},
	}
	for _, s := range steps {
		if got := mustAdvance(t, f, "prices", "SKU-big", s.version); got != s.advanced {
			t.Errorf("Advance(%d) = %v, want %v", s.version, got, s.advanced)
		}
		if got := mustVersion(t, f, "prices", "SKU-big"); got != s.stored {
			t.Errorf("Version after Advance(%d) = %d, want %d", s.version, got, s.stored)
		}
	}
	raw, err := rdb.Get(t.Context(), ordering.FenceKey("prices", "SKU-big")).Result()
	if err != nil || raw != "9223372036854775807" {
		t.Errorf("stored value = %q, %v; want the exact decimal 9223372036854775807", raw, err)
	}
}

func testNegativeVersionIsAnError(t *testing.T, rdb *redis.Client, _ func()) {
	ctx := t.Context()
	f := ordering.NewVersionFence(rdb)
	mustAdvance(t, f, "prices", "SKU-1", 5)
	for _, v := range []int64{-1, math.MinInt64} {
		ok, err := advance1(f, ctx, "prices", "SKU-1", v)
		if err == nil || ok {
			t.Fatalf("Advance(%d) = %v, %v; want false and an error", v, ok, err)
		}
		for _, want := range []string{"prices", "SKU-1", strconv.FormatInt(v, 10)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Advance(%d) error %q does not mention %q", v, err, want)
			}
		}
	}
	if got := mustVersion(t, f, "prices", "SKU-1"); got != 5 {
		t.Errorf("Version after negative Advance = %d, want 5 (unchanged)", got)
	}
	if _, err := advance1(f, ctx, "prices", "SKU-new", -1); err == nil {
		t.Error("Advance(-1) of an unknown subject: no error")
	}
	if n, err := rdb.Exists(ctx, ordering.FenceKey("prices", "SKU-new")).Result(); err != nil || n != 0 {
		t.Errorf("EXISTS after a negative Advance of an unknown subject = %d, %v; want 0", n, err)
	}
}

func testNonIntegerVersionIsAnError(t *testing.T, rdb *redis.Client, _ func()) {
	ctx := t.Context()
	if err := rdb.Set(ctx, ordering.FenceKey("prices", "SKU-1"), "not-a-number", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	v, err := version1(ordering.NewVersionFence(rdb), ctx, "prices", "SKU-1")
	if err == nil {
		t.Fatalf("Version of a non-integer value = %d, nil; want an error", v)
	}
	for _, want := range []string{"prices", "SKU-1", "not-a-number"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func testFenceIsolation(t *testing.T, rdb *redis.Client, _ func()) {
	f := ordering.NewVersionFence(rdb)
	if !mustAdvance(t, f, "prices", "SKU-1", 7) {
		t.Fatal("first Advance reported false")
	}
	if got := mustVersion(t, f, "stock", "SKU-1"); got != 0 {
		t.Errorf("Version in another group = %d, want 0", got)
	}
	if got := mustVersion(t, f, "prices", "SKU-2"); got != 0 {
		t.Errorf("Version of another subject = %d, want 0", got)
	}
	if !mustAdvance(t, f, "stock", "SKU-1", 3) {
		t.Error("Advance to 3 in another group reported false: the groups share a version")
	}
	if got := mustVersion(t, f, "prices", "SKU-1"); got != 7 {
		t.Errorf("Version in prices = %d, want 7", got)
	}
	if got := mustVersion(t, f, "stock", "SKU-1"); got != 3 {
		t.Errorf("Version in stock = %d, want 3", got)
	}
}

func testKeyLayout(t *testing.T, rdb *redis.Client, _ func()) {
	ctx := t.Context()
	if got, want := ordering.FenceKey("prices", "SKU-1"), "shopstream:fence:prices:SKU-1"; got != want {
		t.Errorf("FenceKey = %q, want %q", got, want)
	}
	if got, want := ordering.DedupeKey("prices", "evt-1"), "shopstream:dedupe:prices:evt-1"; got != want {
		t.Errorf("DedupeKey = %q, want %q", got, want)
	}
	mustAdvance(t, ordering.NewVersionFence(rdb), "prices", "SKU-1", 42)
	if err := mark1(ordering.NewDedupe(rdb, time.Hour), ctx, "prices", "evt-1"); err != nil {
		t.Fatalf("Mark: %v", err)
	}
	if raw, err := rdb.Get(ctx, "shopstream:fence:prices:SKU-1").Result(); err != nil || raw != "42" {
		t.Errorf("GET shopstream:fence:prices:SKU-1 = %q, %v; want \"42\"", raw, err)
	}
	if n, err := rdb.Exists(ctx, "shopstream:dedupe:prices:evt-1").Result(); err != nil || n != 1 {
		t.Errorf("EXISTS shopstream:dedupe:prices:evt-1 = %d, %v; want 1", n, err)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("KEYS: %v", err)
	}
	slices.Sort(keys)
	if want := []string{"shopstream:dedupe:prices:evt-1", "shopstream:fence:prices:SKU-1"}; !slices.Equal(keys, want) {
		t.Errorf("keys written = %q, want exactly %q", keys, want)
	}
}

// testConcurrentAdvance races 16 goroutines advancing one subject to random
// versions from a small range, so that equal versions collide. The script is
// atomic only if the stored value never goes down, ends at the maximum, and
// no version is reported as advanced twice (a read-then-write race would let
// two callers both raise, say, 700 to 900).
func testConcurrentAdvance(t *testing.T, rdb *redis.Client, _ func()) {
	const (
		goroutines = 16
		perG       = 40
	)
	ctx := t.Context()
	f := ordering.NewVersionFence(rdb)
	versions := make([][]int64, goroutines)
	var maxVersion int64
	for g := range versions {
		rng := rand.New(rand.NewPCG(7, uint64(g)))
		for range perG {
			v := rng.Int64N(1000)
			if rng.IntN(20) == 0 {
				v += 1 << 53 // a few above 2^53
			}
			versions[g] = append(versions[g], v)
			maxVersion = max(maxVersion, v)
		}
	}

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		advanced = map[int64]int{} // version -> how many Advance calls reported true
	)
	for g := range goroutines {
		wg.Go(func() {
			for _, v := range versions[g] {
				ok, err := advance1(f, ctx, "prices", "SKU-hot", v)
				if err != nil {
					t.Errorf("Advance(%d): %v", v, err)
					return
				}
				if ok {
					mu.Lock()
					advanced[v]++
					mu.Unlock()
				}
				got, err := version1(f, ctx, "prices", "SKU-hot")
				if err != nil {
					t.Errorf("Version: %v", err)
					return
				}
				if got < v {
					t.Errorf("Version = %d right after Advance(%d): the fence went down", got, v)
				}
			}
		})
	}
	wg.Wait()
	if got := mustVersion(t, f, "prices", "SKU-hot"); got != maxVersion {
		t.Errorf("final Version = %d, want the maximum %d", got, maxVersion)
	}
	for v, n := range advanced {
		if n > 1 {
			t.Errorf("Advance(%d) reported true %d times", v, n)
		}
	}
	if advanced[maxVersion] != 1 {
		t.Errorf("Advance to the maximum %d reported true %d times, want once", maxVersion, advanced[maxVersion])
	}
}

func testDedupeSeenAfterMark(t *testing.T, rdb *redis.Client, _ func()) {
	ctx := t.Context()
	d := ordering.NewDedupe(rdb, time.Hour)
	seen := func(id string) bool {
		t.Helper()
		ok, err := seen1(d, ctx, "prices", id)
		if err != nil {
			t.Fatalf("Seen(%q): %v", id, err)
		}
		return ok
	}
	if seen("evt-1") {
		t.Fatal("Seen before Mark = true")
	}
	if err := mark1(d, ctx, "prices", "evt-1"); err != nil {
		t.Fatalf("Mark: %v", err)
	}
	if !seen("evt-1") {
		t.Error("Seen after Mark = false")
	}
	if seen("evt-2") {
		t.Error("Seen of another id = true")
	}
	if err := mark1(d, ctx, "prices", "evt-1"); err != nil {
		t.Fatalf("second Mark: %v", err)
	}
	if !seen("evt-1") {
		t.Error("Seen after a second Mark = false")
	}
}

func testDedupeIsolation(t *testing.T, rdb *redis.Client, _ func()) {
	ctx := t.Context()
	d := ordering.NewDedupe(rdb, time.Hour)
	if err := mark1(d, ctx, "prices", "evt-1"); err != nil {
		t.Fatalf("Mark: %v", err)
	}
	if ok, err := seen1(d, ctx, "stock", "evt-1"); err != nil || ok {
		t.Errorf("Seen in another group = %v, %v; want false", ok, err)
	}
	if ok, err := seen1(d, ctx, "prices", "evt-1"); err != nil || !ok {
		t.Errorf("Seen in the marking group = %v, %v; want true", ok, err)
	}
}

func testDedupeTTL(t *testing.T, rdb *redis.Client, _ func()) {
	ctx := t.Context()
	const ttl = 90 * time.Second
	if err := mark1(ordering.NewDedupe(rdb, ttl), ctx, "prices", "evt-1"); err != nil {
		t.Fatalf("Mark: %v", err)
	}
	got, err := rdb.TTL(ctx, ordering.DedupeKey("prices", "evt-1")).Result()
	if err != nil {
		t.Fatalf("TTL: %v", err)
	}
	// The lower bound allows for a slow machine between SET and TTL.
	if got <= 0 || got > ttl || got < ttl-30*time.Second {
		t.Errorf("TTL = %v, want about %v (in (0, %v])", got, ttl, ttl)
	}
}

func testDedupeDefaultTTL(t *testing.T, rdb *redis.Client, _ func()) {
	ctx := t.Context()
	for i, ttl := range []time.Duration{0, -time.Second} {
		id := "evt-" + strconv.Itoa(i)
		if err := mark1(ordering.NewDedupe(rdb, ttl), ctx, "prices", id); err != nil {
			t.Fatalf("Mark with ttl %v: %v", ttl, err)
		}
		got, err := rdb.TTL(ctx, ordering.DedupeKey("prices", id)).Result()
		if err != nil {
			t.Fatalf("TTL: %v", err)
		}
		if got <= ordering.DefaultDedupeTTL-time.Minute || got > ordering.DefaultDedupeTTL {
			t.Errorf("ttl %v: TTL = %v, want about DefaultDedupeTTL %v", ttl, got, ordering.DefaultDedupeTTL)
		}
	}
}

// testErrorsWhenServerDown stops the server and expects every operation to
// fail with an error that names what it was doing and wraps the cause,
// rather than a zero value that looks like "nothing applied yet".
func testErrorsWhenServerDown(t *testing.T, rdb *redis.Client, stop func()) {
	f := ordering.NewVersionFence(rdb)
	d := ordering.NewDedupe(rdb, time.Hour)
	mustAdvance(t, f, "prices", "SKU-9", 4) // a pooled connection exists before the outage
	stop()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	check := func(op string, err error, mentions ...string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s with the server down: no error", op)
			return
		}
		if errors.Unwrap(err) == nil {
			t.Errorf("%s error %q wraps no cause", op, err)
		}
		if errors.Is(err, redis.Nil) {
			t.Errorf("%s error %q is redis.Nil", op, err)
		}
		for _, m := range mentions {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("%s error %q does not mention %q", op, err, m)
			}
		}
	}
	v, err := version1(f, ctx, "prices", "SKU-9")
	check("Version", err, "prices", "SKU-9")
	if v != 0 {
		t.Errorf("Version with the server down = %d, want 0 with the error", v)
	}
	ok, err := advance1(f, ctx, "prices", "SKU-9", 5)
	check("Advance", err, "prices", "SKU-9")
	if ok {
		t.Error("Advance with the server down reported true")
	}
	ok, err = seen1(d, ctx, "prices", "evt-9")
	check("Seen", err, "prices", "evt-9")
	if ok {
		t.Error("Seen with the server down reported true")
	}
	check("Mark", mark1(d, ctx, "prices", "evt-9"), "prices", "evt-9")
}

// Single-key forms of the batch operations, for the suite's readability;
// each still goes through the batch call.
func version1(f *ordering.VersionFence, ctx context.Context, group, subject string) (int64, error) {
	v, err := f.Versions(ctx, group, []string{subject})
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

func advance1(f *ordering.VersionFence, ctx context.Context, group, subject string, version int64) (bool, error) {
	ok, err := f.Advance(ctx, group, []string{subject}, []int64{version})
	if err != nil {
		return false, err
	}
	return ok[0], nil
}

func seen1(d *ordering.Dedupe, ctx context.Context, group, id string) (bool, error) {
	ok, err := d.Seen(ctx, group, []string{id})
	if err != nil {
		return false, err
	}
	return ok[0], nil
}

func mark1(d *ordering.Dedupe, ctx context.Context, group, id string) error {
	return d.Mark(ctx, group, []string{id})
}

// A batch larger than the scripts' 1,000-key MGET/MSET chunks, with some
// subjects already stored (higher or lower) and, with repeats set, subjects
// repeated inside it, ends as if the keys had been advanced one at a time,
// and reports per key exactly what one-at-a-time would have reported.
func testBigBatch(repeats bool) func(t *testing.T, rdb *redis.Client, _ func()) {
	return func(t *testing.T, rdb *redis.Client, _ func()) { bigBatch(t, rdb, repeats) }
}

func bigBatch(t *testing.T, rdb *redis.Client, repeats bool) {
	ctx := t.Context()
	f := ordering.NewVersionFence(rdb)
	rng := rand.New(rand.NewPCG(7, 8))
	model := map[string]int64{}
	// Some subjects start with a stored version.
	var pre []string
	var preV []int64
	for i := range 300 {
		s, v := "SKU-"+strconv.Itoa(i), int64(rng.IntN(50)+1)
		pre, preV = append(pre, s), append(preV, v)
		model[s] = v
	}
	if _, err := f.Advance(ctx, "g", pre, preV); err != nil {
		t.Fatal(err)
	}
	var subjects []string
	var versions []int64
	var want []bool
	distinct := rng.Perm(2500) // subjects 0..2499 in random order
	for k := range 2500 {
		n := distinct[k]
		if repeats {
			n = rng.IntN(1200)
		}
		s, v := "SKU-"+strconv.Itoa(n), int64(rng.IntN(100)+1)
		subjects, versions = append(subjects, s), append(versions, v)
		raised := v > model[s]
		if raised {
			model[s] = v
		}
		want = append(want, raised)
	}
	got, err := f.Advance(ctx, "g", subjects, versions)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("key %d (%s to %d): advanced=%v, one at a time %v", i, subjects[i], versions[i], got[i], want[i])
			}
		}
	}
	all := make([]string, 0, len(model))
	for s := range model {
		all = append(all, s)
	}
	stored, err := f.Versions(ctx, "g", all)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range all {
		if stored[i] != model[s] {
			t.Errorf("%s stored %d, one at a time %d", s, stored[i], model[s])
		}
	}
}
