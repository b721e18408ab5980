package ordering

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// advanceScript raises KEYS[i] to ARGV[i] for every i, each only if ARGV[i]
// is greater than the stored value. Decimal strings are compared by length,
// then lexically, so the comparison is exact for every non-negative int64
// (Lua numbers are doubles and would round versions above 2^53). It returns
// the 1-based positions of the keys it did not advance — usually none, so
// the reply stays small. On one server one call carries a
// whole batch; on a Redis Cluster each call carries one key (see
// VersionFence).
//
// The keys are read with MGET and the raised ones written with MSET, 1,000
// keys per command at most (Lua's unpack limit), rather than a GET and a SET
// per key: each redis.call costs about as much as the comparison of a whole
// batch, so per-key calls made the fence 3-4× slower (make bench S2,
// test/bench BenchmarkFence). This script assumes the keys are distinct;
// Advance sends a batch with a repeated key to repeatAdvanceScript. Keeping
// the repeats out saves the script a table lookup per key: on 500 keys it
// runs in ~280 µs of Redis time instead of ~420 (INFO commandstats).
var advanceScript = redis.NewScript(`
local n = #KEYS
local kept, args, m = {}, {}, 0
for i = 1, n, 1000 do
  local last = math.min(i + 999, n)
  local cur = redis.call('MGET', unpack(KEYS, i, last))
  for j = i, last do
    local c, new = cur[j - i + 1], ARGV[j]
    if (not c) or (#new > #c) or (#new == #c and new > c) then
      args[m + 1] = KEYS[j]
      args[m + 2] = new
      m = m + 2
      if m == 1000 then
        redis.call('MSET', unpack(args, 1, m))
        m = 0
      end
    else
      kept[#kept + 1] = j
    end
  end
end
if m > 0 then redis.call('MSET', unpack(args, 1, m)) end
return kept
`)

// repeatAdvanceScript is advanceScript for a batch in which a key repeats:
// a repeated key is compared with the value an earlier occurrence raised it
// to, as if the keys were taken one by one, and written once.
var repeatAdvanceScript = redis.NewScript(`
local n = #KEYS
local cur = {}
for i = 1, n, 1000 do
  local got = redis.call('MGET', unpack(KEYS, i, math.min(i + 999, n)))
  for j = 1, #got do cur[i + j - 1] = got[j] end
end
local raised, order, kept = {}, {}, {}
for i = 1, n do
  local key, new = KEYS[i], ARGV[i]
  local c = raised[key] or cur[i]
  if (not c) or (#new > #c) or (#new == #c and new > c) then
    if not raised[key] then order[#order + 1] = key end
    raised[key] = new
  else
    kept[#kept + 1] = i
  end
end
local args = {}
for _, key in ipairs(order) do
  args[#args + 1] = key
  args[#args + 1] = raised[key]
  if #args == 1000 then
    redis.call('MSET', unpack(args))
    args = {}
  end
end
if #args > 0 then redis.call('MSET', unpack(args)) end
return kept
`)

// KeyPrefix starts every Redis key shopstream writes.
const KeyPrefix = "shopstream:"

// FenceKey is the Redis key holding the last applied version of subject in
// group. It has no hash tag: on a Redis Cluster the keys of one group spread
// over every shard (see VersionFence).
func FenceKey(group, subject string) string { return fencePrefix(group) + subject }

// fencePrefix is what FenceKey puts before the subject.
func fencePrefix(group string) string { return KeyPrefix + "fence:" + group + ":" }

// DedupeKey is the Redis key marking event id as applied by group.
func DedupeKey(group, id string) string {
	return KeyPrefix + "dedupe:" + group + ":" + id
}

// VersionFence keeps the last applied version per (group, subject) in Redis,
// so that a stale update is skipped instead of overwriting newer state.
// Every operation takes a batch.
//
// On one server (or a Sentinel-managed primary) a batch is one command —
// an MGET, or one call of the advance script over all its keys — and one
// round trip.
//
// On a Redis Cluster (rdb a *redis.ClusterClient) a command whose keys hash
// to different slots fails with CROSSSLOT, and a batch's keys almost always
// do. There a batch is sent as one command per key (a single-key MGET, a
// single-key script call) in one pipeline: go-redis sends each master its
// share as one pipeline, all masters at once, so a batch still costs about
// one round trip, but as many commands as keys. The keys keep their layout,
// without a hash tag. A {group} hash tag would keep one command per batch,
// but would put a whole group — every SKU's version, every remembered event
// id — on one shard, whatever the cluster's size, and would change every
// key: an upgrade would lose the fence state already stored, and operators'
// scripts that know the keys would break. Atomicity is per key either way,
// which is all the fence promises. A batch that fails on one master may
// have advanced keys on the others; advancing is idempotent, so the
// caller's retry is safe. One consequence: a single subject, such as the
// processor's store marker, lives on one shard, so it can only witness
// that shard losing its data.
type VersionFence struct {
	rdb     redis.Cmdable
	cluster bool
}

// NewVersionFence returns a fence on rdb: a *redis.Client, a Sentinel
// failover client, or a *redis.ClusterClient.
func NewVersionFence(rdb redis.Cmdable) *VersionFence {
	return &VersionFence{rdb: rdb, cluster: isCluster(rdb)}
}

// isCluster reports whether rdb routes keys to the shards of a Redis
// Cluster, where a multi-key command must stay within one hash slot.
func isCluster(rdb redis.Cmdable) bool {
	_, ok := rdb.(*redis.ClusterClient)
	return ok
}

// fenceKeys returns the FenceKey of each subject, their bytes in one
// allocation.
func fenceKeys(group string, subjects []string) []string {
	prefix := fencePrefix(group)
	n := 0
	for _, s := range subjects {
		n += len(prefix) + len(s)
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range subjects {
		b.WriteString(prefix)
		b.WriteString(s)
	}
	all := b.String()
	keys := make([]string, len(subjects))
	for i, s := range subjects {
		keys[i], all = all[:len(prefix)+len(s)], all[len(prefix)+len(s):]
	}
	return keys
}

// repeats reports whether a subject occurs more than once in subjects.
func repeats(subjects []string) bool {
	if len(subjects) < 2 {
		return false
	}
	seen := seenSets.Get().(map[string]struct{})
	defer func() {
		clear(seen)
		seenSets.Put(seen)
	}()
	for _, s := range subjects {
		if _, ok := seen[s]; ok {
			return true
		}
		seen[s] = struct{}{}
	}
	return false
}

// seenSets recycles repeats' sets: a fresh map per advance call was ~60
// bytes of garbage per key (make bench S2).
var seenSets = sync.Pool{New: func() any { return make(map[string]struct{}) }}

// Versions returns the last applied version of each subject in group, 0 for
// a subject never applied.
func (f *VersionFence) Versions(ctx context.Context, group string, subjects []string) ([]int64, error) {
	keys := fenceKeys(group, subjects)
	vals, err := mget(ctx, f.rdb, f.cluster, keys)
	if err != nil {
		return nil, fmt.Errorf("read versions of %d subjects in %s (first %s): %w", len(subjects), group, first(subjects), err)
	}
	out := make([]int64, len(vals))
	for i, v := range vals {
		if v == nil {
			continue
		}
		s, _ := v.(string)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("version of %s/%s is %q, not an integer: %w", group, subjects[i], s, err)
		}
		out[i] = n
	}
	return out, nil
}

// Advance raises the stored version of each subject in group to the version
// at the same index, atomically per key, and never lowers one. It reports,
// per subject, whether the stored version changed.
func (f *VersionFence) Advance(ctx context.Context, group string, subjects []string, versions []int64) ([]bool, error) {
	if len(subjects) != len(versions) {
		return nil, fmt.Errorf("advance %s: %d subjects but %d versions", group, len(subjects), len(versions))
	}
	for i, v := range versions {
		if v < 0 {
			return nil, fmt.Errorf("advance %s/%s: negative version %d", group, subjects[i], v)
		}
	}
	keys := fenceKeys(group, subjects)
	args := make([]any, len(versions))
	for i, v := range versions {
		args[i] = v // go-redis writes an int64 as its decimal string
	}
	out := make([]bool, len(keys))
	var err error
	if f.cluster {
		err = evalEach(ctx, f.rdb, advanceScript, keys, args, out)
	} else {
		script := advanceScript
		if repeats(subjects) {
			script = repeatAdvanceScript
		}
		var kept []int64
		kept, err = script.Run(ctx, f.rdb, keys, args...).Int64Slice()
		if err == nil {
			err = markAdvanced(out, kept)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("advance versions of %d subjects in %s (first %s to %d): %w", len(subjects), group, first(subjects), firstVersion(versions), err)
	}
	return out, nil
}

// mget reads keys: with one MGET on one server; on a cluster with one
// single-key MGET per key, pipelined. A nil element is a missing key.
func mget(ctx context.Context, rdb redis.Cmdable, cluster bool, keys []string) ([]any, error) {
	if !cluster {
		return rdb.MGet(ctx, keys...).Result()
	}
	cmds := make([]*redis.SliceCmd, len(keys))
	// Each command carries its own error, checked below; the pipeline's
	// error is only the first of them.
	_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.MGet(ctx, k)
		}
		return nil
	})
	out := make([]any, len(keys))
	for i, c := range cmds {
		v, err := c.Result()
		if err != nil {
			return nil, err
		}
		out[i] = v[0]
	}
	return out, nil
}

// evalEach runs the advance script once per key, KEYS[1] = keys[i] and
// ARGV[1] = args[i], in one pipeline, and sets advanced[i] when call i
// raised its key (its reply names no kept position).
// EVALSHA first: a master that has not cached the script answers NOSCRIPT
// without running it, and only those calls are sent again, with the
// script's body (which caches it there). A call must not run twice: the
// second run would report false for a version the first one raised.
func evalEach(ctx context.Context, rdb redis.Cmdable, script *redis.Script, keys []string, args []any, advanced []bool) error {
	cmds := make([]*redis.Cmd, len(keys))
	send := func(idx []int, eval func(context.Context, redis.Scripter, []string, ...any) *redis.Cmd) {
		// Each command carries its own error, checked by the caller.
		_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range idx {
				cmds[i] = eval(ctx, p, keys[i:i+1], args[i])
			}
			return nil
		})
	}
	all := make([]int, len(keys))
	for i := range all {
		all[i] = i
	}
	send(all, script.EvalSha)
	var again []int
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		send(again, script.Eval)
	}
	for i, c := range cmds {
		kept, err := c.Int64Slice()
		if err != nil {
			return err
		}
		advanced[i] = len(kept) == 0
	}
	return nil
}

// markAdvanced sets advanced[i] for every key but those the script kept
// (its reply: 1-based positions).
func markAdvanced(advanced []bool, kept []int64) error {
	for i := range advanced {
		advanced[i] = true
	}
	for _, k := range kept {
		if k < 1 || k > int64(len(advanced)) {
			return fmt.Errorf("advance script answered position %d for %d keys", k, len(advanced))
		}
		advanced[k-1] = false
	}
	return nil
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func firstVersion(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

// Dedupe remembers, per group, the event ids already applied, for a bounded
// time (the TTL should exceed how far back a replay or redelivery can reach).
// Every operation takes a batch and costs one round trip: on a Redis
// Cluster, Seen reads each key with its own command, pipelined, like
// VersionFence; Mark is a pipeline of single-key SETs everywhere.
type Dedupe struct {
	rdb     redis.Cmdable
	ttl     time.Duration
	cluster bool
}

// DefaultDedupeTTL is how long an applied event id is remembered by default.
const DefaultDedupeTTL = 7 * 24 * time.Hour

// NewDedupe returns an event-id dedupe on rdb (as for NewVersionFence);
// ttl <= 0 means DefaultDedupeTTL.
func NewDedupe(rdb redis.Cmdable, ttl time.Duration) *Dedupe {
	if ttl <= 0 {
		ttl = DefaultDedupeTTL
	}
	return &Dedupe{rdb: rdb, ttl: ttl, cluster: isCluster(rdb)}
}

// Seen reports, per id, whether it was already applied by group.
func (d *Dedupe) Seen(ctx context.Context, group string, ids []string) ([]bool, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = DedupeKey(group, id)
	}
	vals, err := mget(ctx, d.rdb, d.cluster, keys)
	if err != nil {
		return nil, fmt.Errorf("check %d event ids in %s (first %s): %w", len(ids), group, first(ids), err)
	}
	out := make([]bool, len(vals))
	for i, v := range vals {
		out[i] = v != nil
	}
	return out, nil
}

// Mark records every id as applied by group.
func (d *Dedupe) Mark(ctx context.Context, group string, ids []string) error {
	_, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Set(ctx, DedupeKey(group, id), 1, d.ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark %d event ids in %s (first %s): %w", len(ids), group, first(ids), err)
	}
	return nil
}
