package ordering

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// advanceScript sets KEYS[1] to ARGV[1] only if ARGV[1] is greater than the
// stored value, comparing decimal strings by length, then lexically, so the
// comparison is exact for every non-negative int64 (Lua numbers are doubles
// and would round versions above 2^53). It returns 1 if it advanced.
var advanceScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
local new = ARGV[1]
if (not cur) or (#new > #cur) or (#new == #cur and new > cur) then
  redis.call('SET', KEYS[1], new)
  return 1
end
return 0
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
type VersionFence struct {
	rdb redis.Cmdable
}

// NewVersionFence returns a fence on rdb.
func NewVersionFence(rdb redis.Cmdable) *VersionFence {
	return &VersionFence{rdb: rdb}
}

// Version returns the last applied version of subject in group, 0 if none.
func (f *VersionFence) Version(ctx context.Context, group, subject string) (int64, error) {
	s, err := f.rdb.Get(ctx, FenceKey(group, subject)).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read version of %s/%s: %w", group, subject, err)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("version of %s/%s is %q, not an integer: %w", group, subject, s, err)
	}
	return v, nil
}

// Advance raises the stored version of subject in group to version, atomically,
// and never lowers it. It reports whether the stored version changed.
func (f *VersionFence) Advance(ctx context.Context, group, subject string, version int64) (bool, error) {
	if version < 0 {
		return false, fmt.Errorf("advance %s/%s: negative version %d", group, subject, version)
	}
	n, err := advanceScript.Run(ctx, f.rdb, []string{FenceKey(group, subject)}, strconv.FormatInt(version, 10)).Int()
	if err != nil {
		return false, fmt.Errorf("advance version of %s/%s to %d: %w", group, subject, version, err)
	}
	return n == 1, nil
}

// Dedupe remembers, per group, the event ids already applied, for a bounded
// time (the TTL should exceed how far back a replay or redelivery can reach).
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

// Seen reports whether id was already applied by group.
func (d *Dedupe) Seen(ctx context.Context, group, id string) (bool, error) {
	n, err := d.rdb.Exists(ctx, DedupeKey(group, id)).Result()
	if err != nil {
		return false, fmt.Errorf("check event id %s in %s: %w", id, group, err)
	}
	return n == 1, nil
}

// Mark records id as applied by group.
func (d *Dedupe) Mark(ctx context.Context, group, id string) error {
	if err := d.rdb.Set(ctx, DedupeKey(group, id), 1, d.ttl).Err(); err != nil {
		return fmt.Errorf("mark event id %s in %s: %w", id, group, err)
	}
	return nil
}
