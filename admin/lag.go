package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/processor"
)

// PartitionLag is one (group, topic, partition): how far the group is
// behind. It carries the group's state and member count too, so that one
// row stands alone (the `lag --json` output is a list of them).
type PartitionLag struct {
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Committed is the group's committed offset, -1 if it has none.
	Committed int64 `json:"committed"`
	// NoCommit is set when the group has no committed offset here: its
	// lag is then counted from Start, where shopstream's groups begin.
	NoCommit bool  `json:"no_commit"`
	Start    int64 `json:"start"`
	End      int64 `json:"end"`
	// Lag is the number of records not yet consumed: End minus Committed
	// (minus Start without a commit, or when retention deleted records
	// below the commit); never negative.
	Lag int64 `json:"lag"`
	// LagSeconds is the age of the oldest unconsumed record (the one at
	// the committed offset), from its timestamp; 0 when Lag is 0.
	LagSeconds float64 `json:"lag_seconds"`
	State      string  `json:"state"`
	Members    int     `json:"members"`
}

// GroupLag is one group's lag: its partitions and the totals.
type GroupLag struct {
	Group string `json:"group"`
	// State is the group's state as Kafka reports it: Stable, Empty,
	// PreparingRebalance, CompletingRebalance, Assigning, Reconciling, or
	// Dead when the coordinator does not know the group (it only has
	// committed offsets).
	State   string `json:"state"`
	Members int    `json:"members"`
	// Lag is the sum of the partitions' lag.
	Lag int64 `json:"lag"`
	// LagSeconds is the largest partition LagSeconds.
	LagSeconds float64        `json:"lag_seconds"`
	Partitions []PartitionLag `json:"partitions"`
}

// NotFoundError says a named group or topic does not exist. Known lists
// what does exist (shopstream groups, or nothing for topics).
type NotFoundError struct {
	Kind  string // "group" or "topic"
	Names []string
	Known []string
}

func (e *NotFoundError) Error() string {
	what := e.Kind + " " + strings.Join(e.Names, ", ")
	if len(e.Names) > 1 {
		what = e.Kind + "s " + strings.Join(e.Names, ", ")
	}
	switch e.Kind {
	case "group":
		msg := what + " not found (no members, no committed offsets)"
		if len(e.Known) == 0 {
			return msg + "; no shopstream group exists on this cluster yet"
		}
		return msg + "; shopstream groups: " + strings.Join(e.Known, ", ")
	default:
		return what + " not found on this cluster; check the name (shopstream topics: commerce.<domain>.v1 and their .dlq topics)"
	}
}

// Lag reports, for each group, per topic and partition the committed
// offset, the start and end offsets, the lag in records and the age of the
// oldest unconsumed record.
//
// An empty groups means every group whose id starts with "shopstream.";
// a named group that has neither members nor committed offsets is a
// *NotFoundError. A group's topics are those it has committed offsets for
// or is assigned; topic, if not empty, keeps only that one (a topic that
// does not exist is a *NotFoundError). Every partition of those topics is
// reported, with or without a commit.
//
// Reading the oldest unconsumed records opens a short-lived direct
// consumer that connects as cl does (one record per lagging partition);
// ctx bounds it.
func Lag(ctx context.Context, cl *kgo.Client, groups []string, topic string) ([]GroupLag, error) {
	adm := kadm.NewClient(cl)
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	ids := dedupe(groups)
	if len(ids) == 0 {
		ids = shopstreamGroups(listed)
		if len(ids) == 0 {
			return nil, nil
		}
	}
	infos, err := describeGroups(ctx, adm, listed, ids)
	if err != nil {
		return nil, err
	}
	if len(groups) > 0 {
		var missing []string
		for _, id := range ids {
			if !infos[id].exists() {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return nil, &NotFoundError{Kind: "group", Names: missing, Known: shopstreamGroups(listed)}
		}
	}
	if topic != "" {
		if err := topicsExist(ctx, adm, topic); err != nil {
			return nil, err
		}
	}

	// Every topic of every group, then their offsets in one listing each.
	need := map[string]bool{}
	for _, id := range ids {
		for t := range infos[id].topics() {
			if topic == "" || t == topic {
				need[t] = true
			}
		}
	}
	var out []GroupLag
	if len(need) == 0 {
		for _, id := range ids {
			g := infos[id]
			out = append(out, GroupLag{Group: id, State: g.state, Members: g.members, Partitions: []PartitionLag{}})
		}
		return out, nil
	}
	starts, ends, err := listOffsets(ctx, adm, sortedKeys(need)...)
	if err != nil {
		return nil, err
	}

	// reads collects, per partition, the offsets whose record's age is
	// wanted (several groups may lag on one partition at different
	// offsets).
	reads := map[topicPartition]map[int64]bool{}
	for _, id := range ids {
		g := infos[id]
		gl := GroupLag{Group: id, State: g.state, Members: g.members, Partitions: []PartitionLag{}}
		for _, t := range sortedKeys(g.topics()) {
			if !need[t] {
				continue
			}
			for _, p := range partitionsOf(ends, t) {
				start, end := starts[t][p], ends[t][p]
				pl := PartitionLag{Group: id, Topic: t, Partition: p, Committed: -1, Start: start, End: end, State: g.state, Members: g.members}
				from := start
				if c, ok := g.commits[t][p]; ok {
					pl.Committed = c
					from = max(c, start)
				} else {
					pl.NoCommit = true
				}
				pl.Lag = max(end-from, 0)
				if pl.Lag > 0 {
					tp := topicPartition{t, p}
					if reads[tp] == nil {
						reads[tp] = map[int64]bool{}
					}
					reads[tp][from] = true
				}
				gl.Partitions = append(gl.Partitions, pl)
			}
		}
		out = append(out, gl)
	}

	stamps, err := recordTimes(ctx, cl, reads)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for i := range out {
		gl := &out[i]
		for j := range gl.Partitions {
			pl := &gl.Partitions[j]
			if pl.Lag > 0 {
				from := max(pl.Committed, pl.Start)
				if ts, ok := stamps[topicPartition{pl.Topic, pl.Partition}][from]; ok {
					pl.LagSeconds = max(float64(now.Sub(ts).Milliseconds())/1000, 0)
				}
			}
			gl.Lag += pl.Lag
			gl.LagSeconds = max(gl.LagSeconds, pl.LagSeconds)
		}
	}
	return out, nil
}

type topicPartition struct {
	topic     string
	partition int32
}

// groupInfo is what describing a group and fetching its offsets found.
type groupInfo struct {
	id       string
	state    string
	members  int
	assigned map[string]bool // topics assigned to (or subscribed by) members
	commits  map[string]map[int32]int64
}

// exists reports whether Kafka knows anything of the group.
func (g *groupInfo) exists() bool {
	return g.members > 0 || len(g.commits) > 0
}

// topics is the set of topics the group has committed offsets for or is
// assigned.
func (g *groupInfo) topics() map[string]bool {
	s := map[string]bool{}
	for t := range g.commits {
		s[t] = true
	}
	for t := range g.assigned {
		s[t] = true
	}
	return s
}

// describeGroups returns state, members, assignments and commits of ids.
// Classic groups are described with DescribeGroups; KIP-848 groups (which
// real Kafka 4.x answers a classic describe for with GROUP_ID_NOT_FOUND)
// with ConsumerGroupDescribe; a group neither knows keeps the state of the
// group listing ("Dead" if not listed) and zero members, and its topics
// come from its committed offsets alone.
func describeGroups(ctx context.Context, adm *kadm.Client, listed kadm.ListedGroups, ids []string) (map[string]*groupInfo, error) {
	infos := map[string]*groupInfo{}
	var classic, modern []string
	for _, id := range ids {
		g := &groupInfo{id: id, state: "Dead", assigned: map[string]bool{}, commits: map[string]map[int32]int64{}}
		if l, ok := listed[id]; ok && l.State != "" {
			g.state = l.State
		}
		infos[id] = g
		if listed[id].GroupType == "consumer" {
			modern = append(modern, id)
		} else {
			classic = append(classic, id)
		}
	}
	if len(classic) > 0 {
		described, err := adm.DescribeGroups(ctx, classic...)
		if err != nil && len(described) == 0 {
			return nil, fmt.Errorf("describe groups %s: %w", strings.Join(classic, ", "), err)
		}
		for _, id := range classic {
			d, ok := described[id]
			switch {
			case ok && d.Err == nil:
				g := infos[id]
				if d.State != "" {
					g.state = d.State
				}
				g.members = len(d.Members)
				for _, m := range d.Members {
					if a, ok := m.Assigned.AsConsumer(); ok {
						for _, t := range a.Topics {
							g.assigned[t.Topic] = true
						}
					}
				}
			case ok && errors.Is(d.Err, kerr.GroupIDNotFound):
				modern = append(modern, id)
			case ok:
				return nil, fmt.Errorf("describe group %s: %w", id, d.Err)
			default:
				return nil, fmt.Errorf("describe group %s: %w", id, err)
			}
		}
	}
	if len(modern) > 0 {
		described, err := adm.DescribeConsumerGroups(ctx, modern...)
		for _, id := range modern {
			d, ok := described[id]
			if err != nil || !ok || d.Err != nil {
				continue // not a consumer group either: committed offsets are all there is
			}
			g := infos[id]
			if d.State != "" {
				g.state = d.State
			}
			g.members = len(d.Members)
			for _, m := range d.Members {
				for t := range m.Assignment {
					g.assigned[t] = true
				}
				for _, t := range m.SubscribedTopics {
					g.assigned[t] = true
				}
			}
			delete(g.assigned, "") // a broker that names assigned topics by id only
		}
	}
	for _, id := range ids {
		resp, err := adm.FetchOffsets(ctx, id)
		if err != nil {
			if errors.Is(err, kerr.GroupIDNotFound) {
				continue
			}
			return nil, fmt.Errorf("fetch committed offsets of group %s: %w", id, err)
		}
		g := infos[id]
		resp.Each(func(o kadm.OffsetResponse) {
			if o.Err != nil || o.At < 0 || o.Topic == "" {
				return
			}
			if g.commits[o.Topic] == nil {
				g.commits[o.Topic] = map[int32]int64{}
			}
			g.commits[o.Topic][o.Partition] = o.At
		})
	}
	return infos, nil
}

// shopstreamGroups lists the ids starting with "shopstream.", sorted.
func shopstreamGroups(listed kadm.ListedGroups) []string {
	var out []string
	for _, id := range listed.Groups() {
		if strings.HasPrefix(id, processor.GroupIDPrefix) {
			out = append(out, id)
		}
	}
	return out
}

// topicsExist returns a *NotFoundError naming every topic of names that
// does not exist.
func topicsExist(ctx context.Context, adm *kadm.Client, names ...string) error {
	tds, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("describe topics %s: %w", strings.Join(names, ", "), err)
	}
	var missing []string
	for _, n := range names {
		td, ok := tds[n]
		switch {
		case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
			missing = append(missing, n)
		case td.Err != nil:
			return fmt.Errorf("describe topic %s: %w", n, td.Err)
		}
	}
	if len(missing) > 0 {
		return &NotFoundError{Kind: "topic", Names: missing}
	}
	return nil
}

// listOffsets returns the start and end offset of every partition of
// topics that exist (topics deleted since a group committed to them are
// left out).
func listOffsets(ctx context.Context, adm *kadm.Client, topics ...string) (starts, ends map[string]map[int32]int64, err error) {
	conv := func(what string, l kadm.ListedOffsets, err error) (map[string]map[int32]int64, error) {
		if err != nil {
			return nil, fmt.Errorf("list %s offsets of %s: %w", what, strings.Join(topics, ", "), err)
		}
		out := map[string]map[int32]int64{}
		var ferr error
		l.Each(func(o kadm.ListedOffset) {
			switch {
			case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
			case o.Err != nil:
				ferr = fmt.Errorf("list %s offset of %s/%d: %w", what, o.Topic, o.Partition, o.Err)
			case o.Partition >= 0:
				if out[o.Topic] == nil {
					out[o.Topic] = map[int32]int64{}
				}
				out[o.Topic][o.Partition] = o.Offset
			}
		})
		return out, ferr
	}
	l, err := adm.ListStartOffsets(ctx, topics...)
	if starts, err = conv("start", l, err); err != nil {
		return nil, nil, err
	}
	l, err = adm.ListEndOffsets(ctx, topics...)
	if ends, err = conv("end", l, err); err != nil {
		return nil, nil, err
	}
	return starts, ends, nil
}

// recordTimes reads, with direct consumers, the record at each wanted
// (partition, offset) and returns its timestamp. A partition wanted at
// several offsets is read once per offset, in passes.
func recordTimes(ctx context.Context, cl *kgo.Client, want map[topicPartition]map[int64]bool) (map[topicPartition]map[int64]time.Time, error) {
	out := map[topicPartition]map[int64]time.Time{}
	queue := map[topicPartition][]int64{}
	for tp, offs := range want {
		for o := range offs {
			queue[tp] = append(queue[tp], o)
		}
		slices.Sort(queue[tp])
	}
	for len(queue) > 0 {
		from, until := map[string]map[int32]int64{}, map[string]map[int32]int64{}
		for tp, offs := range queue {
			setOffset(from, tp, offs[0])
			setOffset(until, tp, offs[0]+1)
			if len(offs) == 1 {
				delete(queue, tp)
			} else {
				queue[tp] = offs[1:]
			}
		}
		err := consume(ctx, cl, from, until, func(r *kgo.Record) {
			tp := topicPartition{r.Topic, r.Partition}
			if out[tp] == nil {
				out[tp] = map[int64]time.Time{}
			}
			// The record at the offset, or the first one after it when
			// compaction or retention removed it: the oldest unconsumed.
			out[tp][from[r.Topic][r.Partition]] = r.Timestamp
		})
		if err != nil {
			return nil, fmt.Errorf("read the oldest unconsumed records: %w", err)
		}
	}
	return out, nil
}

func setOffset(m map[string]map[int32]int64, tp topicPartition, o int64) {
	if m[tp.topic] == nil {
		m[tp.topic] = map[int32]int64{}
	}
	m[tp.topic][tp.partition] = o
}

// consume reads every partition in from, starting at from[t][p], until it
// has seen a record at or past until[t][p]-1, and calls fn for each record
// it sees until then, control records included (they occupy offsets too).
// fn may see one record at or past until[t][p] (the range's last offsets
// may be gone, or retention may have moved the start past from[t][p]), so
// it filters by offset itself.
// It uses a short-lived direct consumer that connects as cl does; ctx
// bounds it.
func consume(ctx context.Context, cl *kgo.Client, from, until map[string]map[int32]int64, fn func(*kgo.Record)) error {
	offsets := map[string]map[int32]kgo.Offset{}
	left := map[topicPartition]bool{}
	for t, ps := range from {
		for p, o := range ps {
			if o >= until[t][p] {
				continue
			}
			if offsets[t] == nil {
				offsets[t] = map[int32]kgo.Offset{}
			}
			offsets[t][p] = kgo.NewOffset().At(o)
			left[topicPartition{t, p}] = true
		}
	}
	if len(left) == 0 {
		return nil
	}
	opts := append(connOpts(cl),
		kgo.ConsumePartitions(offsets),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	rc, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("direct consumer: %w", err)
	}
	defer rc.Close()
	var lastErr error
	for len(left) > 0 {
		fs := rc.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			var rest []string
			for tp := range left {
				rest = append(rest, fmt.Sprintf("%s/%d", tp.topic, tp.partition))
			}
			sort.Strings(rest)
			if lastErr != nil {
				err = fmt.Errorf("%w (last fetch error: %v)", err, lastErr)
			}
			return fmt.Errorf("partitions %s not read to the end of the range: %w; raise --timeout", strings.Join(rest, ", "), err)
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				lastErr = fmt.Errorf("%s/%d: %w", t, p, err)
			}
		})
		done := map[string][]int32{}
		fs.EachRecord(func(r *kgo.Record) {
			tp := topicPartition{r.Topic, r.Partition}
			if !left[tp] {
				return
			}
			fn(r)
			if r.Offset >= until[r.Topic][r.Partition]-1 {
				delete(left, tp)
				done[r.Topic] = append(done[r.Topic], r.Partition)
			}
		})
		if len(done) > 0 {
			rc.PauseFetchPartitions(done)
		}
	}
	return nil
}

func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// partitionsOf returns the partitions of t in offs, sorted.
func partitionsOf(offs map[string]map[int32]int64, t string) []int32 {
	out := make([]int32, 0, len(offs[t]))
	for p := range offs[t] {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}
