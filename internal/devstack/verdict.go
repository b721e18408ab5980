package devstack

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shopstream/shopstream/topics"
)

// DLQRecord is one record read from a dead-letter topic.
type DLQRecord struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Key       string            `json:"key"`
	Value     []byte            `json:"value"`
	Headers   map[string]string `json:"headers"`
	Timestamp time.Time         `json:"timestamp"`
}

// GroupSpec describes what one consumer group is expected to do, for Check.
type GroupSpec struct {
	// Name is the group name without the "shopstream." prefix, as in the
	// shopstream.group DLQ header ("inventory"; "shopstream.inventory" in
	// the header matches too).
	Name string `json:"name"`
	// Topic is the topic the group consumes.
	Topic string `json:"topic"`
	// Sinks are the Simulator sinks the group calls. Check counts an
	// event applied at any of them; it does not check which one.
	Sinks []string `json:"sinks"`
	// Types are the event types the group applies; it filters out the
	// others, which are then not expected at its sinks.
	Types []string `json:"types"`
	// Fenced says the group applies versions through a per-subject version
	// fence (a version at or below the applied one is skipped); otherwise
	// it dedupes by event id.
	Fenced bool `json:"fenced"`
}

// DefaultGroups returns the default consumer groups of DESIGN.md.
func DefaultGroups() []GroupSpec {
	return []GroupSpec{
		{Name: "catalog", Topic: topics.TopicCatalog, Sinks: []string{SinkProduct, SinkPrice, SinkSourceItems},
			Types: []string{TypeProductCreated, TypeProductUpdated, TypePriceChanged, TypeStockAdjusted}, Fenced: true},
		{Name: "inventory", Topic: topics.TopicInventory, Sinks: []string{SinkSourceItems},
			Types: []string{TypeStockUpdated}, Fenced: true},
		{Name: "order-crm", Topic: topics.TopicOrder, Sinks: []string{SinkCRM},
			Types: []string{TypeOrderPlaced, TypePaymentCaptured, TypeReturnInitiated}},
		{Name: "order-fraud", Topic: topics.TopicOrder, Sinks: []string{SinkFraud},
			Types: []string{TypeOrderPlaced, TypePaymentCaptured}},
		{Name: "order-email", Topic: topics.TopicOrder, Sinks: []string{SinkEmail},
			Types: []string{TypeOrderPlaced, TypeShipmentUpdated, TypeReturnInitiated}},
		{Name: "customer-crm", Topic: topics.TopicCustomer, Sinks: []string{SinkCRM},
			Types: []string{TypeCustomerCreated, TypeLoyaltyTier, TypeSegmentUpdated}},
	}
}

// GroupVerdict is Check's account of one group.
type GroupVerdict struct {
	Group string `json:"group"`
	// Expected counts the distinct non-poison events of the group's types.
	Expected int `json:"expected"`
	// Applied, Skipped, DeadLettered and Lost split Expected: applied at a
	// sink; skipped by the fence because an equal or newer version was
	// applied; on the group's DLQ; none of these.
	Applied      int `json:"applied"`
	Skipped      int `json:"skipped"`
	DeadLettered int `json:"dead_lettered"`
	Lost         int `json:"lost"`
	// Poison counts the poison records of the topic; PoisonNotDLQ those
	// missing from the group's DLQ records.
	Poison       int `json:"poison"`
	PoisonNotDLQ int `json:"poison_not_dlq"`
	// Regressions counts, for a fenced group, the times a subject's applied
	// version went down.
	Regressions int `json:"regressions"`
	// NotAtHighest counts, for a fenced group, the subjects whose last
	// applied version is below their highest version not dead-lettered.
	NotAtHighest int `json:"not_at_highest"`
	// DuplicateApplies counts applies of an event id applied before
	// (reported, not a failure).
	DuplicateApplies int `json:"duplicate_applies"`
}

// Verdict is Check's result: per group and in total.
type Verdict struct {
	Groups           []GroupVerdict `json:"groups"`
	Lost             int            `json:"lost"`
	Regressions      int            `json:"regressions"`
	NotAtHighest     int            `json:"not_at_highest"`
	PoisonNotDLQ     int            `json:"poison_not_dlq"`
	DuplicateApplies int            `json:"duplicate_applies"`
	// Unattributed counts calls no produced event explains (no known
	// event id, and no unique subject and version); Misrouted counts
	// calls of a poison event or of an event no group sends to that sink.
	// Both are reported in Notes, not failures.
	Unattributed int `json:"unattributed"`
	Misrouted    int `json:"misrouted"`
	// Mismatched counts calls that name an event (by its id) but do not
	// carry it: a webhook's body is not the produced record value, or a
	// Magento call is about other SKUs. A failure: the call is not
	// credited to the event.
	Mismatched int `json:"mismatched"`
	// Problems gives the first few concrete examples of each failure.
	Problems []string `json:"problems,omitempty"`
	// Notes gives examples of what is reported but not a failure.
	Notes []string `json:"notes,omitempty"`
}

// OK reports whether nothing was lost or regressed, every poison record
// was dead-lettered and every call carried the event it names.
func (v Verdict) OK() bool {
	return v.Lost == 0 && v.Regressions == 0 && v.NotAtHighest == 0 && v.PoisonNotDLQ == 0 && v.Mismatched == 0
}

// String renders the verdict as a table, followed by its problems and notes.
func (v Verdict) String() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "group\texpected\tapplied\tskipped\tdlq\tlost\tpoison\tpoison-not-dlq\tregressions\tnot-at-highest\tduplicate-applies")
	for _, g := range v.Groups {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", g.Group, g.Expected, g.Applied, g.Skipped,
			g.DeadLettered, g.Lost, g.Poison, g.PoisonNotDLQ, g.Regressions, g.NotAtHighest, g.DuplicateApplies)
	}
	_ = tw.Flush()
	if v.OK() {
		b.WriteString("verdict: OK\n")
	} else {
		fmt.Fprintf(&b, "verdict: FAIL (lost %d, regressions %d, not at highest %d, poison not dead-lettered %d, calls not carrying their event %d)\n",
			v.Lost, v.Regressions, v.NotAtHighest, v.PoisonNotDLQ, v.Mismatched)
	}
	for _, p := range v.Problems {
		fmt.Fprintf(&b, "  problem: %s\n", p)
	}
	for _, n := range v.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	return b.String()
}

// carries reports whether call c carries event rec: a webhook posts the
// produced record value unchanged; a Magento call names the event's SKU
// (among others, for a batch call). What one side lacks is not compared:
// a record value not kept (a manifest read back from JSON), a call without
// a body or subject (one built by hand, not recorded by the Simulator).
func carries(c Call, rec Produced) bool {
	if strings.HasPrefix(c.Sink, "magento.") {
		return c.Subject == "" || slices.Contains(strings.Split(c.Subject, ","), rec.Key)
	}
	return len(rec.Value) == 0 || len(c.Body) == 0 || string(c.Body) == string(rec.Value)
}

// examplesPerKind bounds the examples of one kind per group in Problems and
// Notes.
const examplesPerKind = 3

// reporter collects at most examplesPerKind examples per group and kind.
type reporter struct {
	seen map[string]int
	out  *[]string
}

func (r *reporter) add(group, kind, format string, args ...any) {
	k := group + "\x00" + kind
	r.seen[k]++
	if r.seen[k] <= examplesPerKind {
		*r.out = append(*r.out, fmt.Sprintf("%s: %s: ", group, kind)+fmt.Sprintf(format, args...))
	}
}

// Check compares what the generator produced (m) with what the sinks applied
// (calls), what the groups dead-lettered (dlq) and what each group is
// expected to do (groups, usually DefaultGroups()).
//
// A call is attributed to a produced event by its EventID, else by a unique
// (subject, version) match, and counts for every group that consumes the
// event's topic, calls that sink and applies that type. For each group, a
// non-poison event of its types is lost when it was not applied, not on the
// group's DLQ (shopstream.group header) and — fenced groups — no equal or
// newer version of its subject was applied. Every poison record of the
// group's topic must be on the group's DLQ, matched by the
// shopstream.original.* headers, the event id or the exact value.
func Check(m *Manifest, calls []Call, dlq []DLQRecord, groups []GroupSpec) Verdict {
	var v Verdict
	problems := &reporter{seen: map[string]int{}, out: &v.Problems}
	notes := &reporter{seen: map[string]int{}, out: &v.Notes}

	byID := make(map[string]Produced)
	for _, r := range m.Records {
		if _, ok := byID[r.ID]; !ok && r.ID != "" {
			byID[r.ID] = r
		}
	}

	// Attribute calls: per group, applied ids and per subject the versions
	// in the order they were applied.
	applied := make([]map[string]int, len(groups))
	seq := make([]map[string][]int64, len(groups))
	for i := range groups {
		applied[i] = make(map[string]int)
		seq[i] = make(map[string][]int64)
	}
	for _, c := range calls {
		rec, ok := byID[c.EventID]
		if ok && !carries(c, rec) {
			v.Mismatched++
			problems.add(c.Sink, "call does not carry its event", "%s %s names id=%s (key=%s version=%d) but carries subject=%q", c.Method, c.Path, rec.ID, rec.Key, rec.Version, c.Subject)
			continue
		}
		if !ok {
			rec, ok = matchBySubjectVersion(m, c, groups)
		}
		if !ok {
			v.Unattributed++
			notes.add(c.Sink, "unattributed call", "%s %s subject=%q id=%q version=%d", c.Method, c.Path, c.Subject, c.EventID, c.Version)
			continue
		}
		routed := false
		for i, g := range groups {
			if rec.Poison || !g.routes(rec, c.Sink) {
				continue
			}
			routed = true
			applied[i][rec.ID]++
			if applied[i][rec.ID] > 1 {
				notes.add(g.Name, "duplicate apply", "%s key=%s version=%d id=%s at %s", rec.Type, rec.Key, rec.Version, rec.ID, c.Sink)
			}
			seq[i][rec.Key] = append(seq[i][rec.Key], rec.Version)
		}
		if !routed {
			v.Misrouted++
			notes.add(c.Sink, "misrouted call", "%s key=%s id=%s poison=%t reached %s", rec.Type, rec.Key, rec.ID, rec.Poison, c.Sink)
		}
	}

	for i, g := range groups {
		gv := GroupVerdict{Group: g.Name}
		dl := indexDLQ(dlq, g)

		// Subject → highest version not dead-lettered, for NotAtHighest.
		highest := make(map[string]int64)
		seen := make(map[string]bool)
		for _, r := range m.Records {
			if r.Topic != g.Topic {
				continue
			}
			if r.Poison {
				gv.Poison++
				if !dl.has(r) {
					gv.PoisonNotDLQ++
					problems.add(g.Name, "poison not dead-lettered", "%s key=%s %s/%d@%d", r.PoisonKind, r.Key, r.Topic, r.Partition, r.Offset)
				}
				continue
			}
			if !contains(g.Types, r.Type) || seen[r.ID] {
				continue
			}
			seen[r.ID] = true
			gv.Expected++
			inDLQ := dl.hasID(r.ID) || dl.has(r)
			if g.Fenced && !inDLQ {
				highest[r.Key] = max(highest[r.Key], r.Version)
			}
			switch {
			case applied[i][r.ID] > 0:
				gv.Applied++
			case inDLQ:
				gv.DeadLettered++
			case g.Fenced && maxOf(seq[i][r.Key]) >= r.Version:
				gv.Skipped++
			default:
				gv.Lost++
				problems.add(g.Name, "lost", "%s key=%s version=%d id=%s %s/%d@%d", r.Type, r.Key, r.Version, r.ID, r.Topic, r.Partition, r.Offset)
			}
		}

		for _, n := range applied[i] {
			gv.DuplicateApplies += n - 1
		}

		if g.Fenced {
			for _, key := range sortedKeys(seq[i], highest) {
				vs := seq[i][key]
				for j := 1; j < len(vs); j++ {
					if vs[j] < vs[j-1] {
						gv.Regressions++
						problems.add(g.Name, "regression", "key=%s applied version %d after %d", key, vs[j], vs[j-1])
					}
				}
				var last int64
				if len(vs) > 0 {
					last = vs[len(vs)-1]
				}
				if last < highest[key] {
					gv.NotAtHighest++
					problems.add(g.Name, "not at highest", "key=%s last applied version %d, highest produced %d", key, last, highest[key])
				}
			}
		}

		v.Groups = append(v.Groups, gv)
		v.Lost += gv.Lost
		v.Regressions += gv.Regressions
		v.NotAtHighest += gv.NotAtHighest
		v.PoisonNotDLQ += gv.PoisonNotDLQ
		v.DuplicateApplies += gv.DuplicateApplies
	}
	return v
}

// routes reports whether g applies rec at sink.
func (g GroupSpec) routes(rec Produced, sink string) bool {
	return rec.Topic == g.Topic && contains(g.Sinks, sink) && contains(g.Types, rec.Type)
}

// matchBySubjectVersion attributes a call without a known event id to the
// non-poison event with its subject and version (and type, if the call has
// one) that some group sends to the call's sink. Events of one topic sharing
// subject and version (a stale copy and its original) are the same version
// to a fence: the first produced is taken. Candidates on several topics are
// ambiguous.
func matchBySubjectVersion(m *Manifest, c Call, groups []GroupSpec) (Produced, bool) {
	if c.Version == 0 || c.Subject == "" {
		return Produced{}, false
	}
	var found Produced
	ok := false
	for _, r := range m.Records {
		if r.Poison || r.Key != c.Subject || r.Version != c.Version || (c.Type != "" && r.Type != c.Type) {
			continue
		}
		if !slices.ContainsFunc(groups, func(g GroupSpec) bool { return g.routes(r, c.Sink) }) {
			continue
		}
		if !ok {
			found, ok = r, true
		} else if r.Topic != found.Topic {
			return Produced{}, false
		}
	}
	return found, ok
}

// dlqIndex is one group's dead-letter records, indexed three ways.
type dlqIndex struct {
	origin map[string]bool // topic/partition/offset from shopstream.original.*
	ids    map[string]bool // event id read from the value
	values map[string]bool // key + value
}

func originKey(topic string, partition int32, offset int64) string {
	return topic + "/" + strconv.FormatInt(int64(partition), 10) + "@" + strconv.FormatInt(offset, 10)
}

// indexDLQ indexes the records dead-lettered by g: shopstream.group names g
// and the original topic (header, else the DLQ topic's name) is g's topic.
func indexDLQ(dlq []DLQRecord, g GroupSpec) dlqIndex {
	ix := dlqIndex{origin: map[string]bool{}, ids: map[string]bool{}, values: map[string]bool{}}
	for _, d := range dlq {
		if strings.TrimPrefix(d.Headers[topics.HeaderGroup], "shopstream.") != strings.TrimPrefix(g.Name, "shopstream.") {
			continue
		}
		orig, ok := d.Headers[topics.HeaderOriginalTopic]
		if !ok {
			orig = strings.TrimSuffix(d.Topic, topics.DLQSuffix)
		}
		if orig != g.Topic {
			continue
		}
		p, perr := strconv.ParseInt(d.Headers[topics.HeaderOriginalPartition], 10, 32)
		o, oerr := strconv.ParseInt(d.Headers[topics.HeaderOriginalOffset], 10, 64)
		if perr == nil && oerr == nil {
			ix.origin[originKey(orig, int32(p), o)] = true
		}
		var ev struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(d.Value, &ev) == nil && ev.ID != "" {
			ix.ids[ev.ID] = true
		}
		ix.values[d.Key+"\x00"+string(d.Value)] = true
	}
	return ix
}

// has reports whether record r itself is on the DLQ.
func (ix dlqIndex) has(r Produced) bool {
	return ix.origin[originKey(r.Topic, r.Partition, r.Offset)] ||
		(r.ID != "" && ix.ids[r.ID]) ||
		ix.values[r.Key+"\x00"+string(r.Value)]
}

// hasID reports whether any record with event id id is on the DLQ.
func (ix dlqIndex) hasID(id string) bool { return id != "" && ix.ids[id] }

func maxOf(vs []int64) int64 {
	var m int64
	for _, v := range vs {
		m = max(m, v)
	}
	return m
}

// sortedKeys returns the keys of both maps, sorted, so problems come out in
// a stable order.
func sortedKeys(a map[string][]int64, b map[string]int64) []string {
	set := make(map[string]bool, len(a)+len(b))
	for k := range a {
		set[k] = true
	}
	for k := range b {
		set[k] = true
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
