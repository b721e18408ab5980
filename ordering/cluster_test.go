package ordering_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/internal/redistest"
	"github.com/shopstream/shopstream/ordering"
)

// clusterClient returns a client of c built as `shopstream run` builds one
// for a URL listing several hosts: go-redis' universal client, which is
// then a *redis.ClusterClient. It reports an outage quickly: one dial
// attempt per command, no command retries. Its pools (pipelines have their
// own) are larger than the dial failures of TestClusterMasterDown: as many
// failures as a pool's size start go-redis' background re-dial goroutine,
// which outlives Close by up to a second.
func clusterClient(t *testing.T, c *redistest.Cluster) redis.UniversalClient {
	t.Helper()
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:            c.Addrs(),
		MaxRetries:       -1,
		DialTimeout:      500 * time.Millisecond,
		DialerRetries:    1,
		PoolSize:         100,
		PipelinePoolSize: 100,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("universal client with %d addresses is a %T, want *redis.ClusterClient", len(c.Addrs()), rdb)
	}
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("ping the cluster: %v", err)
	}
	return rdb
}

// nodeClients returns a plain client of each master, to see where keys live.
func nodeClients(t *testing.T, c *redistest.Cluster) []*redis.Client {
	t.Helper()
	var out []*redis.Client
	for _, addr := range c.Addrs() {
		cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		t.Cleanup(func() { _ = cl.Close() })
		out = append(out, cl)
	}
	return out
}

// keysPerNode counts, on each master, the keys matching pattern.
func keysPerNode(t *testing.T, nodes []*redis.Client, pattern string) []int {
	t.Helper()
	out := make([]int, len(nodes))
	for i, n := range nodes {
		keys, err := n.Keys(t.Context(), pattern).Result()
		if err != nil {
			t.Fatalf("KEYS %s on node %d: %v", pattern, i, err)
		}
		out[i] = len(keys)
	}
	return out
}

func sum(ns []int) int {
	s := 0
	for _, n := range ns {
		s += n
	}
	return s
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// The fence and the dedupe on a real 3-master Redis Cluster, with batches
// whose keys span every master. Each subtest uses its own group.
func TestStoreOnCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	rdb := clusterClient(t, c)
	nodes := nodeClients(t, c)
	f := ordering.NewVersionFence(rdb)
	d := ordering.NewDedupe(rdb, time.Hour)
	subjects := numbered("SKU-", 60)

	// What a single call per batch does: the masters refuse it. The store
	// must not send a batch this way to a cluster.
	t.Run("SingleCallBatchIsCrossSlot", func(t *testing.T) {
		ctx := t.Context()
		keys := make([]string, len(subjects))
		for i, s := range subjects {
			keys[i] = ordering.FenceKey("control", s)
		}
		if err := rdb.MGet(ctx, keys...).Err(); err == nil || !strings.HasPrefix(err.Error(), "CROSSSLOT") {
			t.Errorf("one MGET of the batch: %v, want CROSSSLOT", err)
		}
		script := redis.NewScript(`for _, k in ipairs(KEYS) do redis.call('GET', k) end return 1`)
		if err := script.Run(ctx, rdb, keys).Err(); err == nil || !strings.HasPrefix(err.Error(), "CROSSSLOT") {
			t.Errorf("one script over the batch: %v, want CROSSSLOT", err)
		}
	})

	t.Run("FenceBatchesSpanEveryMaster", func(t *testing.T) {
		ctx := t.Context()
		const group = "shopstream.inventory"
		got, err := f.Versions(ctx, group, subjects)
		if err != nil {
			t.Fatalf("Versions: %v", err)
		}
		if !slices.Equal(got, make([]int64, len(subjects))) {
			t.Errorf("Versions of unknown subjects = %v, want zeros", got)
		}
		if n := keysPerNode(t, nodes, ordering.FenceKey(group, "*")); sum(n) != 0 {
			t.Errorf("keys after Versions = %v, want none: reading must not write", n)
		}

		versions := make([]int64, len(subjects))
		for i := range versions {
			versions[i] = int64(i + 1)
		}
		versions[7] = math.MaxInt64
		versions[8] = 1<<53 + 1
		ok, err := f.Advance(ctx, group, subjects, versions)
		if err != nil {
			t.Fatalf("Advance: %v", err)
		}
		if want := slices.Repeat([]bool{true}, len(subjects)); !slices.Equal(ok, want) {
			t.Errorf("first Advance = %v, want all true", ok)
		}
		perNode := keysPerNode(t, nodes, ordering.FenceKey(group, "*"))
		if sum(perNode) != len(subjects) || slices.Contains(perNode, 0) {
			t.Fatalf("fence keys per master = %v, want %d spread over all 3", perNode, len(subjects))
		}
		if got, err = f.Versions(ctx, group, subjects); err != nil || !slices.Equal(got, versions) {
			t.Errorf("Versions = %v, %v; want %v", got, err, versions)
		}
		if raw, err := rdb.Get(ctx, ordering.FenceKey(group, subjects[7])).Result(); err != nil || raw != "9223372036854775807" {
			t.Errorf("stored MaxInt64 = %q, %v; want the exact decimal", raw, err)
		}

		// Lower, equal and higher versions in one batch.
		next := slices.Clone(versions)
		wantOK := make([]bool, len(subjects))
		for i := range next {
			switch i % 3 {
			case 0:
				next[i] = max(versions[i]-1, 0)
			case 2:
				if versions[i] < math.MaxInt64 {
					next[i], wantOK[i] = versions[i]+1000, true
				}
			}
		}
		if ok, err = f.Advance(ctx, group, subjects, next); err != nil || !slices.Equal(ok, wantOK) {
			t.Errorf("second Advance = %v, %v; want %v", ok, err, wantOK)
		}
		want := make([]int64, len(subjects))
		for i := range want {
			want[i] = max(versions[i], next[i])
		}
		if got, err = f.Versions(ctx, group, subjects); err != nil || !slices.Equal(got, want) {
			t.Errorf("Versions after the second Advance = %v, %v; want %v", got, err, want)
		}
	})

	// A subject twice in one batch is applied in batch order, as the
	// single-server script does.
	t.Run("RepeatedSubjectInOneBatch", func(t *testing.T) {
		ctx := t.Context()
		ss := []string{"SKU-a", "SKU-b", "SKU-a", "SKU-a", "SKU-b", "SKU-a"}
		vs := []int64{5, 9, 3, 7, 9, 7}
		ok, err := f.Advance(ctx, "repeat", ss, vs)
		if want := []bool{true, true, false, true, false, false}; err != nil || !slices.Equal(ok, want) {
			t.Errorf("Advance = %v, %v; want %v", ok, err, want)
		}
		if got, err := f.Versions(ctx, "repeat", []string{"SKU-a", "SKU-b", "SKU-a"}); err != nil || !slices.Equal(got, []int64{7, 9, 7}) {
			t.Errorf("Versions = %v, %v; want [7 9 7]", got, err)
		}
	})

	// A master that has not cached the script answers NOSCRIPT; those
	// calls are sent again with the script, and only those: a call run
	// twice would report false for a version it did raise.
	t.Run("ScriptNotCached", func(t *testing.T) {
		ctx := t.Context()
		for i, n := range nodes {
			if err := n.ScriptFlush(ctx).Err(); err != nil {
				t.Fatalf("SCRIPT FLUSH on node %d: %v", i, err)
			}
		}
		vs := make([]int64, len(subjects))
		for i := range vs {
			vs[i] = int64(100 + i)
		}
		ok, err := f.Advance(ctx, "noscript", subjects, vs)
		if want := slices.Repeat([]bool{true}, len(subjects)); err != nil || !slices.Equal(ok, want) {
			t.Errorf("Advance after SCRIPT FLUSH = %v, %v; want all true", ok, err)
		}
		if got, err := f.Versions(ctx, "noscript", subjects); err != nil || !slices.Equal(got, vs) {
			t.Errorf("Versions = %v, %v; want %v", got, err, vs)
		}
	})

	// processor/storereset.go writes and reads its marker through the
	// fence; its subject starts with a NUL byte.
	t.Run("StoreMarker", func(t *testing.T) {
		ctx := t.Context()
		const marker = "\x00shopstream.store-marker"
		if ok, err := f.Advance(ctx, "marker", []string{marker}, []int64{1}); err != nil || !slices.Equal(ok, []bool{true}) {
			t.Fatalf("Advance(marker) = %v, %v", ok, err)
		}
		if got, err := f.Versions(ctx, "marker", []string{marker, "SKU-1"}); err != nil || !slices.Equal(got, []int64{1, 0}) {
			t.Errorf("Versions(marker, SKU-1) = %v, %v; want [1 0]", got, err)
		}
	})

	t.Run("NegativeVersionWritesNothing", func(t *testing.T) {
		ctx := t.Context()
		vs := make([]int64, len(subjects))
		vs[len(vs)-1] = -1
		if _, err := f.Advance(ctx, "negative", subjects, vs); err == nil || !strings.Contains(err.Error(), subjects[len(vs)-1]) {
			t.Errorf("Advance with a negative version: %v, want an error naming %s", err, subjects[len(vs)-1])
		}
		if n := keysPerNode(t, nodes, ordering.FenceKey("negative", "*")); sum(n) != 0 {
			t.Errorf("keys after a refused batch = %v, want none", n)
		}
	})

	t.Run("DedupeBatchesSpanEveryMaster", func(t *testing.T) {
		ctx := t.Context()
		const group = "shopstream.order-crm"
		ids := numbered("evt-", 60)
		if err := d.Mark(ctx, group, ids[:40]); err != nil {
			t.Fatalf("Mark: %v", err)
		}
		perNode := keysPerNode(t, nodes, ordering.DedupeKey(group, "*"))
		if sum(perNode) != 40 || slices.Contains(perNode, 0) {
			t.Fatalf("dedupe keys per master = %v, want 40 spread over all 3", perNode)
		}
		seen, err := d.Seen(ctx, group, ids)
		if err != nil {
			t.Fatalf("Seen: %v", err)
		}
		for i, s := range seen {
			if s != (i < 40) {
				t.Errorf("Seen(%s) = %v, want %v", ids[i], s, i < 40)
			}
		}
		for i, n := range nodes {
			keys, err := n.Keys(ctx, ordering.DedupeKey(group, "*")).Result()
			if err != nil || len(keys) == 0 {
				t.Fatalf("node %d: KEYS: %v, %v", i, keys, err)
			}
			if ttl, err := n.TTL(ctx, keys[0]).Result(); err != nil || ttl <= 0 || ttl > time.Hour {
				t.Errorf("node %d: TTL %s = %v, %v; want in (0, 1h]", i, keys[0], ttl, err)
			}
		}
	})
}

// The same random sequence of batches gives the same answers on a 3-master
// cluster as on one redis-server.
func TestClusterMatchesSingleServer(t *testing.T) {
	t.Parallel()
	single := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = single.Close() })
	cluster := clusterClient(t, redistest.StartCluster(t, 3))
	type store struct {
		f *ordering.VersionFence
		d *ordering.Dedupe
	}
	stores := []store{
		{ordering.NewVersionFence(single), ordering.NewDedupe(single, time.Hour)},
		{ordering.NewVersionFence(cluster), ordering.NewDedupe(cluster, time.Hour)},
	}
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(3, 8))
	pool := numbered("K-", 150)
	batch := func() []string {
		out := make([]string, 1+rng.IntN(80))
		for i := range out {
			out[i] = pool[rng.IntN(len(pool))] // repeats included
		}
		return out
	}
	for step := range 200 {
		group := []string{"g1", "g2"}[rng.IntN(2)]
		keys := batch()
		var (
			results [2]string
			errs    [2]error
		)
		switch op := rng.IntN(4); op {
		case 0:
			vs := make([]int64, len(keys))
			for i := range vs {
				vs[i] = rng.Int64N(50)
				if rng.IntN(10) == 0 {
					vs[i] += 1 << 60
				}
			}
			for i, s := range stores {
				ok, err := s.f.Advance(ctx, group, keys, vs)
				results[i], errs[i] = fmt.Sprint("Advance ", vs, " → ", ok), err
			}
		case 1:
			for i, s := range stores {
				vs, err := s.f.Versions(ctx, group, keys)
				results[i], errs[i] = fmt.Sprint("Versions ", vs), err
			}
		case 2:
			for i, s := range stores {
				results[i], errs[i] = "Mark", s.d.Mark(ctx, group, keys)
			}
		case 3:
			for i, s := range stores {
				seen, err := s.d.Seen(ctx, group, keys)
				results[i], errs[i] = fmt.Sprint("Seen ", seen), err
			}
		}
		if err := errors.Join(errs[:]...); err != nil {
			t.Fatalf("step %d: %s: %v", step, results[0], err)
		}
		if results[0] != results[1] {
			t.Fatalf("step %d, group %s, keys %v:\n single server: %s\n cluster:       %s", step, group, keys, results[0], results[1])
		}
	}
}

// With one master down, a batch touching its slots fails as a whole, with
// an error naming the group and the first subject; it never answers 0 or
// "not seen" for the keys it could not read.
func TestClusterMasterDown(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3)
	rdb := clusterClient(t, c)
	f := ordering.NewVersionFence(rdb)
	d := ordering.NewDedupe(rdb, time.Hour)
	subjects := numbered("SKU-", 30)
	vs := slices.Repeat([]int64{4}, len(subjects))
	if _, err := f.Advance(t.Context(), "down", subjects, vs); err != nil {
		t.Fatalf("Advance: %v", err)
	}
	if err := d.Mark(t.Context(), "down", subjects); err != nil {
		t.Fatalf("Mark: %v", err)
	}
	c.Nodes()[1].Stop()

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	check := func(op string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s with a master down: no error", op)
			return
		}
		if errors.Unwrap(err) == nil {
			t.Errorf("%s error %q wraps no cause", op, err)
		}
		for _, m := range []string{"down", subjects[0]} {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("%s error %q does not mention %q", op, err, m)
			}
		}
	}
	got, err := f.Versions(ctx, "down", subjects)
	check("Versions", err)
	if got != nil {
		t.Errorf("Versions with a master down = %v, want nil with the error", got)
	}
	ok, err := f.Advance(ctx, "down", subjects, slices.Repeat([]int64{5}, len(subjects)))
	check("Advance", err)
	if ok != nil {
		t.Errorf("Advance with a master down = %v, want nil with the error", ok)
	}
	seen, err := d.Seen(ctx, "down", subjects)
	check("Seen", err)
	if seen != nil {
		t.Errorf("Seen with a master down = %v, want nil with the error", seen)
	}
	check("Mark", d.Mark(ctx, "down", subjects))
}

// callLog records the commands and pipelines a client sends, leaving out
// what go-redis sends to set up a new connection (HELLO, CLIENT SETINFO).
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, s)
}

// take returns the calls since the last take.
func (l *callLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.calls
	l.calls = nil
	return out
}

func (l *callLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *callLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !connSetup(cmd) {
			l.add(cmd.Name())
		}
		return next(ctx, cmd)
	}
}

func (l *callLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := map[string]bool{}
		for _, c := range cmds {
			names[c.Name()] = true
		}
		if !slices.ContainsFunc(cmds, connSetup) {
			l.add(fmt.Sprintf("pipeline of %d %v", len(cmds), slices.Sorted(maps.Keys(names))))
		}
		return next(ctx, cmds)
	}
}

func connSetup(cmd redis.Cmder) bool {
	return cmd.Name() == "hello" || cmd.Name() == "client"
}

// A batch is one command on one server, and one pipeline of single-key
// commands on a cluster (go-redis splits it by master and sends the parts
// at once); the script is sent with its body only where it is not cached.
func TestCallsPerBatch(t *testing.T) {
	t.Parallel()
	subjects := numbered("SKU-", 60)
	versions := slices.Repeat([]int64{3}, len(subjects))
	type want struct{ versions, advance, advanceAgain, seen, mark []string }
	run := func(t *testing.T, rdb redis.UniversalClient, w want) {
		log := &callLog{}
		rdb.AddHook(log)
		ctx := t.Context()
		f, d := ordering.NewVersionFence(rdb), ordering.NewDedupe(rdb, time.Hour)
		check := func(op string, err error, want []string) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", op, err)
			}
			if got := log.take(); !slices.Equal(got, want) {
				t.Errorf("%s sent %q, want %q", op, got, want)
			}
		}
		_, err := f.Versions(ctx, "g", subjects)
		check("Versions", err, w.versions)
		_, err = f.Advance(ctx, "g", subjects, versions)
		check("first Advance", err, w.advance)
		_, err = f.Advance(ctx, "g", subjects, versions)
		check("second Advance", err, w.advanceAgain)
		_, err = d.Seen(ctx, "g", subjects)
		check("Seen", err, w.seen)
		check("Mark", d.Mark(ctx, "g", subjects), w.mark)
	}
	t.Run("single", func(t *testing.T) {
		t.Parallel()
		rdb := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Addr(), MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		run(t, rdb, want{
			versions:     []string{"mget"},
			advance:      []string{"evalsha", "eval"}, // NOSCRIPT, then the body
			advanceAgain: []string{"evalsha"},
			seen:         []string{"mget"},
			mark:         []string{"pipeline of 60 [set]"},
		})
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		rdb := clusterClient(t, redistest.StartCluster(t, 3))
		run(t, rdb, want{
			versions:     []string{"pipeline of 60 [mget]"},
			advance:      []string{"pipeline of 60 [evalsha]", "pipeline of 60 [eval]"},
			advanceAgain: []string{"pipeline of 60 [evalsha]"},
			seen:         []string{"pipeline of 60 [mget]"},
			mark:         []string{"pipeline of 60 [set]"},
		})
	})
}
