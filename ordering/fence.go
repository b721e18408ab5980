package ordering

import (
	"context"

	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// advanceScript raises KEYS[i] to ARGV[i] for every i, each only if ARGV[i]
// is greater than the stored value. Decimal strings are compared by length,
// then lexically, so the comparison is exact for every non-negative int64
// (Lua numbers are doubles and would round versions above 2^53). It returns,
// per key, 1 if it advanced and 0 if not. One call carries a whole batch.
var advanceScript = redis.NewScript(`
local out = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  local new = ARGV[i]
  if (not cur) or (#new > #cur) or (#new == #cur and new > cur) then
    redis.call('SET', key, new)
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
`)

// KeyPrefix starts every Redis key shopstream writes.
const KeyPrefix = "shopstream:"

// FenceKey is the Redis key holding the last applied version of subject in group.
func FenceKey(group, subject string) string {
	return KeyPrefix + "fence:" + group + ":" + subject
}

// DedupeKey is the Redis key marking event id as applied by group.
func DedupeKey(group, id string) string {
	return KeyPrefix + "dedupe:" + group + ":" + id
}

// VersionFence keeps the last applied version per (group, subject) in Redis,
// so that a stale update is skipped instead of overwriting newer state.
// Every operation takes a batch and costs one round trip.
type VersionFence struct {
	rdb redis.Cmdable
}

// NewVersionFence returns a fence on rdb.
func NewVersionFence(rdb redis.Cmdable) *VersionFence {
	return &VersionFence{rdb: rdb}
}

// Versions returns the last applied version of each subject in group, 0 for
// a subject never applied.
func (f *VersionFence) Versions(ctx context.Context, group string, subjects []string) ([]int64, error) {
	keys := make([]string, len(subjects))
	for i, s := range subjects {
		keys[i] = FenceKey(group, s)
	}
	vals, err := f.rdb.MGet(ctx, keys...).Result()
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
	keys := make([]string, len(subjects))
	args := make([]any, len(versions))
	for i, s := range subjects {
		if versions[i] < 0 {
			return nil, fmt.Errorf("advance %s/%s: negative version %d", group, s, versions[i])
		}
		keys[i] = FenceKey(group, s)
		args[i] = strconv.FormatInt(versions[i], 10)
	}
	res, err := advanceScript.Run(ctx, f.rdb, keys, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("advance versions of %d subjects in %s (first %s to %d): %w", len(subjects), group, first(subjects), firstVersion(versions), err)
	}
	out := make([]bool, len(res))
	for i, r := range res {
		out[i] = r == 1
	}
	return out, nil
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
// Every operation takes a batch and costs one round trip.
type Dedupe struct {
	rdb redis.Cmdable
	ttl time.Duration
}

// DefaultDedupeTTL is how long an applied event id is remembered by default.
const DefaultDedupeTTL = 7 * 24 * time.Hour

// NewDedupe returns an event-id dedupe on rdb; ttl <= 0 means DefaultDedupeTTL.
func NewDedupe(rdb redis.Cmdable, ttl time.Duration) *Dedupe {
	if ttl <= 0 {
		ttl = DefaultDedupeTTL
	}
	return &Dedupe{rdb: rdb, ttl: ttl}
}

// Seen reports, per id, whether it was already applied by group.
func (d *Dedupe) Seen(ctx context.Context, group string, ids []string) ([]bool, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = DedupeKey(group, id)
	}
	vals, err := d.rdb.MGet(ctx, keys...).Result()
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
