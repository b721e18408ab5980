package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Mode is how a reset chooses the new offsets: the scenarios of Kafka's
// kafka-consumer-groups --reset-offsets.
type Mode string

// The reset modes.
const (
	// ToEarliest moves to the log start offset.
	ToEarliest Mode = "to-earliest"
	// ToLatest moves to the log end offset.
	ToLatest Mode = "to-latest"
	// ToDatetime moves to the first record whose timestamp is at or after
	// ResetSpec.At; to the end offset if there is none.
	ToDatetime Mode = "to-datetime"
	// ByDuration is ToDatetime at now minus ResetSpec.Duration.
	ByDuration Mode = "by-duration"
	// ToOffset moves to ResetSpec.Offset, clamped to [start, end].
	ToOffset Mode = "to-offset"
	// ShiftBy moves the committed offset by ResetSpec.Offset (negative:
	// back), clamped to [start, end]. A partition without a committed
	// offset cannot be shifted.
	ShiftBy Mode = "shift-by"
)

// Modes lists every Mode, in the order the command line documents them.
func Modes() []Mode {
	return []Mode{ToEarliest, ToLatest, ToDatetime, ByDuration, ToOffset, ShiftBy}
}

// ResetSpec says what to reset and how.
type ResetSpec struct {
	Mode Mode
	// At is the time of ToDatetime (millisecond precision, as Kafka).
	At time.Time
	// Duration is how far before Now ByDuration goes; not negative.
	Duration time.Duration
	// Now is ByDuration's reference time; zero means time.Now().
	Now time.Time
	// Offset is the offset of ToOffset, the shift of ShiftBy.
	Offset int64

	// Topic limits the reset to one topic. Empty means the group's topics:
	// those it has committed offsets for, or else DefaultTopic.
	Topic string
	// DefaultTopic is the topic of a group with no committed offset yet
	// (for a built-in group: its contract topic).
	DefaultTopic string
	// Partitions limits the reset to these partitions (of every topic in
	// scope); nil means all.
	Partitions []int32
	// AllowNewGroup plans a reset for a group that has neither members
	// nor committed offsets (Kafka's tool allows it: the commit creates
	// the group's offsets). Without it such a group is a *NotFoundError.
	AllowNewGroup bool
}

// PartitionReset is one partition of a reset plan.
type PartitionReset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Current is the committed offset, -1 if none.
	Current int64 `json:"current"`
	// NoCommit is set when the group has no committed offset here; it
	// would begin at Start.
	NoCommit bool  `json:"no_commit"`
	Start    int64 `json:"start"`
	End      int64 `json:"end"`
	// New is the offset the reset commits.
	New int64 `json:"new"`
	// Reread counts the records the group reads again (New below Current).
	Reread int64 `json:"reread"`
	// Skip counts the records the group will never read (New above
	// Current, or above Start without a commit).
	Skip int64 `json:"skip"`
	// Clamped is "start" or "end" when the requested offset lay outside
	// the log and was moved to that end of it, as Kafka's tool does.
	Clamped string `json:"clamped,omitempty"`
}

// ResetPlan is what a reset would do, partition by partition.
type ResetPlan struct {
	Group   string `json:"group"`
	State   string `json:"state"`
	Members int    `json:"members"`
	Mode    Mode   `json:"mode"`
	// Partitions are sorted by topic, then partition.
	Partitions []PartitionReset `json:"partitions"`
	// Notes explain partitions left out of the plan.
	Notes []string `json:"notes,omitempty"`
}

// Reread is the number of records the reset makes the group read again.
func (p *ResetPlan) Reread() int64 {
	var n int64
	for _, r := range p.Partitions {
		n += r.Reread
	}
	return n
}

// Skip is the number of records the reset makes the group skip.
func (p *ResetPlan) Skip() int64 {
	var n int64
	for _, r := range p.Partitions {
		n += r.Skip
	}
	return n
}

// LiveGroupError refuses a commit into a group that has live members.
type LiveGroupError struct {
	Group   string
	Members int
}

func (e *LiveGroupError) Error() string {
	noun := "members"
	if e.Members == 1 {
		noun = "member"
	}
	return fmt.Sprintf("group %s has %d live %s; stop them first (scale to 0) — a commit into a live group is refused by Kafka", e.Group, e.Members, noun)
}

// PlanReset computes the new offsets of group as Kafka's
// kafka-consumer-groups --reset-offsets --dry-run would, without changing
// anything: to-earliest and to-latest take the log start and end offsets;
// to-datetime and by-duration the first offset whose record timestamp is
// at or after the time (the end offset if no record is); to-offset and
// shift-by clamp the requested offset to [start, end]; shift-by refuses a
// partition without a committed offset (explicit scope), or leaves it out
// with a note (default scope). A plan is allowed while the group has
// members; ExecuteReset is not.
func PlanReset(ctx context.Context, cl *kgo.Client, group string, spec ResetSpec) (*ResetPlan, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	infos, err := describeGroups(ctx, adm, listed, []string{group})
	if err != nil {
		return nil, err
	}
	g := infos[group]
	if !g.exists() && !spec.AllowNewGroup {
		return nil, &NotFoundError{Kind: "group", Names: []string{group}, Known: shopstreamGroups(listed)}
	}

	explicit := spec.Topic != "" || spec.Partitions != nil
	var scope []string
	switch {
	case spec.Topic != "":
		scope = []string{spec.Topic}
	case len(g.commits) > 0:
		scope = sortedKeys(g.commits)
	case spec.DefaultTopic != "":
		scope = []string{spec.DefaultTopic}
	default:
		return nil, fmt.Errorf("group %s has no committed offsets, so it has no topics to reset; name one with --topic", group)
	}
	if err := topicsExist(ctx, adm, scope...); err != nil {
		return nil, err
	}
	starts, ends, err := listOffsets(ctx, adm, scope...)
	if err != nil {
		return nil, err
	}
	for _, t := range scope {
		var bad []string
		for _, p := range spec.Partitions {
			if _, ok := ends[t][p]; !ok {
				bad = append(bad, fmt.Sprint(p))
			}
		}
		if len(bad) > 0 {
			return nil, fmt.Errorf("partitions: topic %s has no partition %s (it has %d, 0-%d)", t, strings.Join(bad, ","), len(ends[t]), len(ends[t])-1)
		}
	}

	var byTime map[string]map[int32]int64
	if spec.Mode == ToDatetime || spec.Mode == ByDuration {
		at := spec.At
		if spec.Mode == ByDuration {
			now := spec.Now
			if now.IsZero() {
				now = time.Now()
			}
			at = now.Add(-spec.Duration)
		}
		// kadm lists the end offset for a partition with no record at
		// or after the time, as Kafka's tool falls back to the latest
		// offset.
		l, err := adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), scope...)
		if err != nil {
			return nil, fmt.Errorf("list offsets at %s: %w", at.Format(time.RFC3339Nano), err)
		}
		byTime = map[string]map[int32]int64{}
		var ferr error
		l.Each(func(o kadm.ListedOffset) {
			if o.Err != nil {
				ferr = fmt.Errorf("list offset of %s/%d at %s: %w", o.Topic, o.Partition, at.Format(time.RFC3339Nano), o.Err)
				return
			}
			setOffset(byTime, topicPartition{o.Topic, o.Partition}, o.Offset)
		})
		if ferr != nil {
			return nil, ferr
		}
	}

	plan := &ResetPlan{Group: group, State: g.state, Members: g.members, Mode: spec.Mode, Partitions: []PartitionReset{}}
	var unshiftable []string
	for _, t := range scope {
		for _, p := range partitionsOf(ends, t) {
			if spec.Partitions != nil && !slices.Contains(spec.Partitions, p) {
				continue
			}
			r := PartitionReset{Topic: t, Partition: p, Current: -1, Start: starts[t][p], End: ends[t][p]}
			cur, committed := g.commits[t][p]
			if committed {
				r.Current = cur
			} else {
				r.NoCommit = true
			}
			clamp := func(o int64) int64 {
				// Kafka's checkOffsetsRange: above the end first, then
				// below the start.
				switch {
				case o > r.End:
					r.Clamped = "end"
					return r.End
				case o < r.Start:
					r.Clamped = "start"
					return r.Start
				}
				return o
			}
			switch spec.Mode {
			case ToEarliest:
				r.New = r.Start
			case ToLatest:
				r.New = r.End
			case ToDatetime, ByDuration:
				o, ok := byTime[t][p]
				if !ok || o < 0 {
					o = r.End
				}
				r.New = o
			case ToOffset:
				r.New = clamp(spec.Offset)
			case ShiftBy:
				if !committed {
					unshiftable = append(unshiftable, fmt.Sprintf("%s/%d", t, p))
					continue
				}
				r.New = clamp(cur + spec.Offset)
			}
			// Without a commit a shopstream group begins at the start.
			pos := r.Start
			if committed {
				pos = cur
			}
			r.Reread = max(pos-r.New, 0)
			r.Skip = max(r.New-pos, 0)
			plan.Partitions = append(plan.Partitions, r)
		}
	}
	if len(unshiftable) > 0 {
		if explicit {
			return nil, fmt.Errorf("shift-by: cannot shift %s: group %s has no committed offset there (Kafka's tool refuses this too); leave those out with --partitions, or use --to-offset, --to-earliest or --to-datetime", strings.Join(unshiftable, ", "), group)
		}
		plan.Notes = append(plan.Notes, fmt.Sprintf("left out (no committed offset to shift): %s", strings.Join(unshiftable, ", ")))
	}
	return plan, nil
}

func (s ResetSpec) validate() error {
	switch s.Mode {
	case ToEarliest, ToLatest, ToOffset, ShiftBy:
	case ToDatetime:
		if s.At.IsZero() {
			return errors.New("to-datetime: no time given")
		}
	case ByDuration:
		if s.Duration < 0 {
			return fmt.Errorf("by-duration: %s is negative; give how far back to go, like 30m", s.Duration)
		}
	default:
		return fmt.Errorf("reset mode %q is not one of %v", s.Mode, Modes())
	}
	for _, p := range s.Partitions {
		if p < 0 {
			return fmt.Errorf("partitions: %d is negative", p)
		}
	}
	return nil
}

// ExecuteReset commits plan's new offsets for its group (every partition
// of the plan, as Kafka's tool does). It is refused with a *LiveGroupError
// while the group has members: it checks right before committing, and
// Kafka itself refuses a commit from outside into a live group.
func ExecuteReset(ctx context.Context, cl *kgo.Client, plan *ResetPlan) error {
	adm := kadm.NewClient(cl)
	if err := ensureInactive(ctx, adm, plan.Group); err != nil {
		return err
	}
	offs := kadm.Offsets{}
	for _, r := range plan.Partitions {
		offs.Add(kadm.Offset{Topic: r.Topic, Partition: r.Partition, At: r.New, LeaderEpoch: -1})
	}
	if len(offs) == 0 {
		return nil
	}
	resp, err := adm.CommitOffsets(ctx, plan.Group, offs)
	if err == nil {
		err = resp.Error()
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.IllegalGeneration),
		errors.Is(err, kerr.RebalanceInProgress), errors.Is(err, kerr.StaleMemberEpoch):
		// A member joined between the check and the commit.
		return fmt.Errorf("commit offsets of group %s: %w: %w", plan.Group, &LiveGroupError{Group: plan.Group, Members: 1}, err)
	default:
		return fmt.Errorf("commit offsets of group %s: %w", plan.Group, err)
	}
}

// ensureInactive returns a *LiveGroupError if group has members.
func ensureInactive(ctx context.Context, adm *kadm.Client, group string) error {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	infos, err := describeGroups(ctx, adm, listed, []string{group})
	if err != nil {
		return err
	}
	if n := infos[group].members; n > 0 {
		return &LiveGroupError{Group: group, Members: n}
	}
	return nil
}
