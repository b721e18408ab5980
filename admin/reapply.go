package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/ordering"
	"github.com/shopstream/shopstream/topics"
)

// After a rewind the version fence skips every version a group already
// applied, so a replay cannot regress state, and the event-id dedupe skips
// every event id it already applied. To make a (fixed) handler apply the
// replayed records again, Reapply rewinds exactly the idempotency state
// those records hit: for a fence domain (catalog, inventory) the stored
// version of each replayed key is lowered to just below the key's first
// replayed version; for a dedupe domain (order, customer) the marks of the
// replayed event ids are deleted. Keys and ids outside the replayed range
// are not touched, so they stay fenced.

// FenceChange is one key whose fence a reapply lowers.
type FenceChange struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Subject   string `json:"subject"`
	// Key is the Redis key (ordering.FenceKey).
	Key string `json:"key"`
	// FirstVersion is the version of the key's first replayed record.
	FirstVersion int64 `json:"first_version"`
	// From is the stored version (when executed: the one found at that
	// moment); 0 means none.
	From int64 `json:"from"`
	// To is FirstVersion - 1: every replayed version is then above it.
	To int64 `json:"to"`
	// Lowered reports whether the stored version is (dry run: would be)
	// lowered: only if it was at least FirstVersion. A key whose stored
	// version is lower never applied the replayed records and is left
	// alone.
	Lowered bool `json:"lowered"`
}

// ForgetID is one event id whose dedupe mark a reapply deletes.
type ForgetID struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Subject   string `json:"subject"`
	ID        string `json:"id"`
	// Key is the Redis key (ordering.DedupeKey).
	Key string `json:"key"`
	// Present reports whether the mark exists (dry run) or existed and
	// was deleted (executed).
	Present bool `json:"present"`
}

// Reapply is what rewinding the idempotency state for a reset plan does.
type Reapply struct {
	Group string `json:"group"`
	// Records counts the records read in the replayed ranges.
	Records int `json:"records"`
	// Poison counts records skipped because they cannot be decoded (the
	// processor dead-letters those; nothing of them was applied).
	Poison   int           `json:"poison"`
	Fences   []FenceChange `json:"fences"`
	IDs      []ForgetID    `json:"ids"`
	Executed bool          `json:"executed"`
}

// fenceDomain reports whether the processor guards d with the version
// fence (catalog, inventory) rather than the event-id dedupe (order,
// customer); see the groups table in DESIGN.md.
func fenceDomain(d topics.Domain) bool {
	return d == topics.DomainCatalog || d == topics.DomainInventory
}

// DomainOfTopic returns the domain of a topic whose name is, or ends with,
// a contract topic name (commerce.inventory.v1, t1-commerce.inventory.v1),
// and false otherwise.
func DomainOfTopic(topic string) (topics.Domain, bool) {
	for _, d := range topics.Domains() {
		if strings.HasSuffix(topic, topics.DefaultTopic(d)) {
			return d, true
		}
	}
	return "", false
}

// PlanReapply reads, with a direct consumer, the records of every
// partition plan rewinds (from its new offset up to its committed one),
// decodes them (poison records are counted and skipped) and returns what
// ExecuteReapply would change, with the values Redis holds now. domain is
// the event contract of the plan's topics; empty means: from the topic
// name (DomainOfTopic), else from each record's event type.
func PlanReapply(ctx context.Context, cl *kgo.Client, rdb redis.Cmdable, plan *ResetPlan, domain topics.Domain) (*Reapply, error) {
	if rdb == nil {
		return nil, errors.New("reapply: no Redis client")
	}
	from, until := map[string]map[int32]int64{}, map[string]map[int32]int64{}
	for _, r := range plan.Partitions {
		if !r.NoCommit && r.New < r.Current {
			tp := topicPartition{r.Topic, r.Partition}
			setOffset(from, tp, r.New)
			setOffset(until, tp, r.Current)
		}
	}
	out := &Reapply{Group: plan.Group, Fences: []FenceChange{}, IDs: []ForgetID{}}
	fences := map[string]int{} // subject → index in out.Fences
	ids := map[string]bool{}
	var decodeErr error
	err := consume(ctx, cl, from, until, func(r *kgo.Record) {
		if r.Attrs.IsControl() || r.Offset < from[r.Topic][r.Partition] || r.Offset >= until[r.Topic][r.Partition] || decodeErr != nil {
			return
		}
		out.Records++
		d := domain
		if d == "" {
			var ok bool
			if d, ok = DomainOfTopic(r.Topic); !ok {
				d = domainOfValue(r.Value)
			}
		}
		if d == "" {
			out.Poison++ // no known event type: poison to the processor too
			return
		}
		ev, err := topics.Decode(d, r.Key, r.Value)
		if err != nil {
			if topics.IsPoison(err) {
				out.Poison++
				return
			}
			decodeErr = fmt.Errorf("decode %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
			return
		}
		if fenceDomain(d) {
			if i, ok := fences[ev.Subject]; ok {
				// Records of a key arrive in offset order within its
				// partition; a key seen in two partitions (the partition
				// count changed) keeps the lower first version.
				if f := &out.Fences[i]; f.Partition != r.Partition && ev.Version < f.FirstVersion {
					f.FirstVersion, f.To = ev.Version, ev.Version-1
				}
				return
			}
			fences[ev.Subject] = len(out.Fences)
			out.Fences = append(out.Fences, FenceChange{
				Topic: r.Topic, Partition: r.Partition, Subject: ev.Subject,
				Key:          ordering.FenceKey(plan.Group, ev.Subject),
				FirstVersion: ev.Version, To: ev.Version - 1,
			})
			return
		}
		if ids[ev.ID] {
			return
		}
		ids[ev.ID] = true
		out.IDs = append(out.IDs, ForgetID{
			Topic: r.Topic, Partition: r.Partition, Subject: ev.Subject, ID: ev.ID,
			Key: ordering.DedupeKey(plan.Group, ev.ID),
		})
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return nil, fmt.Errorf("reapply: read the replayed records: %w", err)
	}
	sort.SliceStable(out.Fences, func(i, j int) bool { return out.Fences[i].Subject < out.Fences[j].Subject })

	// What Redis holds now.
	if len(out.Fences) > 0 {
		gets := make([]*redis.StringCmd, len(out.Fences))
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, f := range out.Fences {
				gets[i] = p.Get(ctx, f.Key)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("reapply: read fence versions: %w", err)
		}
		for i := range out.Fences {
			f := &out.Fences[i]
			s, err := gets[i].Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if f.From, err = strconv.ParseInt(s, 10, 64); err != nil {
				return nil, fmt.Errorf("reapply: fence %s holds %q, not a version", f.Key, s)
			}
			f.Lowered = f.From >= f.FirstVersion
		}
	}
	if len(out.IDs) > 0 {
		exists := make([]*redis.IntCmd, len(out.IDs))
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range out.IDs {
				exists[i] = p.Exists(ctx, id.Key)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reapply: read dedupe marks: %w", err)
		}
		for i := range out.IDs {
			out.IDs[i].Present = exists[i].Val() == 1
		}
	}
	return out, nil
}

// domainOfValue returns the domain of a record value's event type, or "".
func domainOfValue(value []byte) topics.Domain {
	var v struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(value, &v) != nil {
		return ""
	}
	d, _ := topics.DomainOf(v.Type)
	return d
}

// lowerScript sets KEYS[1] to ARGV[1] only if the stored value is greater,
// comparing decimal strings by length, then lexically, like the fence's
// advance script (exact for every non-negative int64). It returns the
// stored value ("" if none) and 1 if it lowered it.
var lowerScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then
  return {'', 0}
end
local new = ARGV[1]
if (#cur > #new) or (#cur == #new and cur > new) then
  redis.call('SET', KEYS[1], new)
  return {cur, 1}
end
return {cur, 0}
`)

// ExecuteReapply lowers the fences and deletes the dedupe marks r lists,
// each atomically, and records in r what it found and did (From, Lowered,
// Present). Run it before ExecuteReset: if the commit then fails, the
// fences are merely lower than needed until the next reset; the other way
// round a failure here would leave a replay that re-applies nothing. It is
// refused with a *LiveGroupError while the group has members (they would
// race the rewind).
func ExecuteReapply(ctx context.Context, cl *kgo.Client, rdb redis.Cmdable, r *Reapply) error {
	if rdb == nil {
		return errors.New("reapply: no Redis client")
	}
	if err := ensureInactive(ctx, kadm.NewClient(cl), r.Group); err != nil {
		return err
	}
	if len(r.Fences) > 0 {
		if err := lowerScript.Load(ctx, rdb).Err(); err != nil {
			return fmt.Errorf("reapply: load the fence script: %w", err)
		}
		cmds := make([]*redis.Cmd, len(r.Fences))
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, f := range r.Fences {
				cmds[i] = lowerScript.EvalSha(ctx, p, []string{f.Key}, strconv.FormatInt(max(f.To, 0), 10))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reapply: lower fences: %w", err)
		}
		for i := range r.Fences {
			f := &r.Fences[i]
			res, err := cmds[i].Slice()
			if err != nil || len(res) != 2 {
				return fmt.Errorf("reapply: lower fence %s: %v (answer %v)", f.Key, err, res)
			}
			cur, _ := res[0].(string)
			lowered, _ := res[1].(int64)
			f.From, f.Lowered = 0, lowered == 1
			if cur != "" {
				if f.From, err = strconv.ParseInt(cur, 10, 64); err != nil {
					return fmt.Errorf("reapply: fence %s holds %q, not a version", f.Key, cur)
				}
			}
		}
	}
	if len(r.IDs) > 0 {
		dels := make([]*redis.IntCmd, len(r.IDs))
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range r.IDs {
				dels[i] = p.Del(ctx, id.Key)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reapply: forget event ids: %w", err)
		}
		for i := range r.IDs {
			r.IDs[i].Present = dels[i].Val() == 1
		}
	}
	r.Executed = true
	return nil
}
