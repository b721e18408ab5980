package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/ordering"
	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/test/realkafka"
	"github.com/shopstream/shopstream/topics"
)

// toolResetPlan runs Kafka's own kafka-consumer-groups --reset-offsets
// --dry-run and returns its NEW-OFFSET column by partition of topic.
func toolResetPlan(brokers []string, group, topic, scope string, mode ...string) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := append([]string{"--reset-offsets", "--group", group, "--topic", scope}, mode...)
	out, err := realkafka.ConsumerGroups(ctx, "", brokers, append(args, "--dry-run")...)
	if err != nil {
		return nil, err
	}
	got := map[int32]int64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != group || f[1] != topic {
			continue
		}
		p, err1 := strconv.Atoi(f[2])
		o, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("cannot parse %q in the output of kafka-consumer-groups %s:\n%s", line, strings.Join(args, " "), out)
		}
		got[int32(p)] = o
	}
	if len(got) == 0 {
		return nil, fmt.Errorf("kafka-consumer-groups %s printed no NEW-OFFSET:\n%s", strings.Join(args, " "), out)
	}
	return got, nil
}

// toolResult is one run of the reference tool.
type toolResult struct {
	offsets map[int32]int64
	err     error
}

// resetFixture is a topic whose six partitions hold records ten minutes
// apart (record i of every partition at base + i·10min), a partition whose
// first records were deleted (start 4), an empty partition, and a group
// with commits on four partitions.
type resetFixture struct {
	e            *env
	topic, group string
	base         time.Time
	starts, ends map[int32]int64
	committed    map[int32]int64
}

func newResetFixture(t *testing.T, b *backend) *resetFixture {
	e := newEnv(t, b, topics.TopicInventory)
	f := &resetFixture{
		e: e, topic: e.topic(topics.TopicInventory), group: e.groupID("inventory"),
		base:      time.Now().Truncate(time.Minute).Add(-3 * time.Hour),
		starts:    map[int32]int64{0: 0, 1: 0, 2: 0, 3: 4, 4: 0, 5: 0},
		ends:      map[int32]int64{0: 12, 1: 8, 2: 3, 3: 10, 4: 6, 5: 0},
		committed: map[int32]int64{0: 6, 1: 8, 2: 1, 3: 6}, // 4 and 5: none
	}
	var recs []*kgo.Record
	for p, n := range f.ends {
		for i := range n {
			recs = append(recs, e.stampedStock(p, fmt.Sprintf("SKU-%d", p), i+1, f.base.Add(time.Duration(i)*10*time.Minute)))
		}
	}
	e.produceTo(recs...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: f.topic, Partition: 3, At: 4, LeaderEpoch: -1})
	resp, err := e.admin.DeleteRecords(ctx, del)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("delete records below 4 on partition 3: %v", err)
	}
	e.commitOffsets(f.group, f.topic, f.committed)
	return f
}

// TestAdminResetModes checks every mode, partition by partition, against
// the numbers computed from the produced data, and on real Kafka against
// what kafka-consumer-groups --reset-offsets --dry-run prints for the same
// arguments. It covers clamping at both ends, to-datetime's fallback to the
// end offset, and partitions without a commit.
func TestAdminResetModes(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		f := newResetFixture(t, b)
		cl := f.e.adminClient()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		all := []int32{0, 1, 2, 3, 4, 5}
		committedOnly := []int32{0, 1, 2, 3}
		at := f.base.Add(50 * time.Minute) // exactly record 5's timestamp
		cases := []struct {
			name  string
			spec  admin.ResetSpec
			tool  []string
			parts []int32
			want  map[int32]int64
		}{
			{"to-earliest", admin.ResetSpec{Mode: admin.ToEarliest}, []string{"--to-earliest"}, all,
				map[int32]int64{0: 0, 1: 0, 2: 0, 3: 4, 4: 0, 5: 0}},
			{"to-latest", admin.ResetSpec{Mode: admin.ToLatest}, []string{"--to-latest"}, all,
				map[int32]int64{0: 12, 1: 8, 2: 3, 3: 10, 4: 6, 5: 0}},
			// Partitions 2 and 5 hold no record at or after the time: end.
			{"to-datetime", admin.ResetSpec{Mode: admin.ToDatetime, At: at}, []string{"--to-datetime", at.UTC().Format("2006-01-02T15:04:05.000Z07:00")}, all,
				map[int32]int64{0: 5, 1: 5, 2: 3, 3: 5, 4: 5, 5: 0}},
			// now − 105min lies between records 7 (70min) and 8 (80min).
			{"by-duration", admin.ResetSpec{Mode: admin.ByDuration, Duration: 105 * time.Minute}, []string{"--by-duration", "PT1H45M"}, all,
				map[int32]int64{0: 8, 1: 8, 2: 3, 3: 8, 4: 6, 5: 0}},
			{"to-offset within and beyond the end", admin.ResetSpec{Mode: admin.ToOffset, Offset: 7}, []string{"--to-offset", "7"}, all,
				map[int32]int64{0: 7, 1: 7, 2: 3, 3: 7, 4: 6, 5: 0}},
			{"to-offset below the start", admin.ResetSpec{Mode: admin.ToOffset, Offset: 2}, []string{"--to-offset", "2"}, all,
				map[int32]int64{0: 2, 1: 2, 2: 2, 3: 4, 4: 2, 5: 0}},
			{"shift-by back, beyond the start", admin.ResetSpec{Mode: admin.ShiftBy, Offset: -3}, []string{"--shift-by", "-3"}, committedOnly,
				map[int32]int64{0: 3, 1: 5, 2: 0, 3: 4}},
			{"shift-by forward, beyond the end", admin.ResetSpec{Mode: admin.ShiftBy, Offset: 5}, []string{"--shift-by", "5"}, committedOnly,
				map[int32]int64{0: 11, 1: 8, 2: 3, 3: 10}},
		}
		scopes := make([]string, len(cases))
		for i, c := range cases {
			scopes[i] = f.topic
			if len(c.parts) < len(all) {
				scopes[i] = f.topic + ":" + strings.Trim(strings.Join(strings.Fields(fmt.Sprint(c.parts)), ","), "[]")
			}
		}
		// The reference tool starts a JVM per run: run them four at a time
		// while the plans are checked.
		tool := make([]chan toolResult, len(cases))
		if b.Real() {
			sem := make(chan struct{}, 4)
			for i, c := range cases {
				tool[i] = make(chan toolResult, 1)
				go func() {
					sem <- struct{}{}
					defer func() { <-sem }()
					offs, err := toolResetPlan(f.e.brokers, f.group, f.topic, scopes[i], c.tool...)
					tool[i] <- toolResult{offs, err}
				}()
			}
		}
		for i, c := range cases {
			spec := c.spec
			spec.Topic = f.topic
			if len(c.parts) < len(all) {
				spec.Partitions = c.parts
			}
			plan, err := admin.PlanReset(ctx, cl, f.group, spec)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			got := map[int32]int64{}
			for _, r := range plan.Partitions {
				got[r.Partition] = r.New
				cur, has := f.committed[r.Partition]
				pos := cur
				if !has {
					cur, pos = -1, f.starts[r.Partition]
				}
				if r.Current != cur || r.NoCommit == has || r.Start != f.starts[r.Partition] || r.End != f.ends[r.Partition] ||
					r.Reread != max(pos-r.New, 0) || r.Skip != max(r.New-pos, 0) {
					t.Errorf("%s: partition %d: %+v (committed %d, start %d, end %d)", c.name, r.Partition, r, cur, f.starts[r.Partition], f.ends[r.Partition])
				}
			}
			if !mapsEqual(got, c.want) {
				t.Errorf("%s: new offsets %v, want %v", c.name, got, c.want)
			}
			if b.Real() {
				res := <-tool[i]
				switch {
				case res.err != nil:
					t.Errorf("%s: %v", c.name, res.err)
				case !mapsEqual(got, res.offsets):
					t.Errorf("%s: new offsets %v, kafka-consumer-groups --topic %s %s --dry-run says %v", c.name, got, scopes[i], strings.Join(c.tool, " "), res.offsets)
				}
			}
		}

		// Clamping is reported.
		plan, err := admin.PlanReset(ctx, cl, f.group, admin.ResetSpec{Mode: admin.ShiftBy, Offset: 5, Topic: f.topic, Partitions: []int32{0, 1}})
		if err != nil || plan.Partitions[0].Clamped != "" || plan.Partitions[1].Clamped != "end" {
			t.Errorf("shift-by 5 on 0,1: %+v, %v; want partition 0 unclamped, 1 clamped to the end", plan, err)
		}
		plan, err = admin.PlanReset(ctx, cl, f.group, admin.ResetSpec{Mode: admin.ShiftBy, Offset: -3, Topic: f.topic, Partitions: []int32{0, 3}})
		if err != nil || plan.Partitions[0].Clamped != "" || plan.Partitions[1].Clamped != "start" {
			t.Errorf("shift-by -3 on 0,3: %+v, %v; want partition 0 unclamped, 3 clamped to its start", plan, err)
		}
		// shift-by on a partition without a commit: refused when named
		// (Kafka's tool refuses it too), left out with a note by default.
		_, err = admin.PlanReset(ctx, cl, f.group, admin.ResetSpec{Mode: admin.ShiftBy, Offset: -1, Topic: f.topic})
		if err == nil || !strings.Contains(err.Error(), f.topic+"/4") || !strings.Contains(err.Error(), f.topic+"/5") {
			t.Errorf("shift-by over partitions without commits: %v, want an error naming %s/4 and /5", err, f.topic)
		}
		plan, err = admin.PlanReset(ctx, cl, f.group, admin.ResetSpec{Mode: admin.ShiftBy, Offset: -1})
		if err != nil || len(plan.Partitions) != 4 || len(plan.Notes) != 1 {
			t.Errorf("shift-by in the default scope: %+v, %v; want the 4 committed partitions and a note", plan, err)
		}
		// Errors name the unknown group, topic and partition.
		var nf *admin.NotFoundError
		if _, err := admin.PlanReset(ctx, cl, f.e.groupID("nope"), admin.ResetSpec{Mode: admin.ToLatest}); !errors.As(err, &nf) || nf.Names[0] != f.e.groupID("nope") {
			t.Errorf("unknown group: %v", err)
		}
		if _, err := admin.PlanReset(ctx, cl, f.group, admin.ResetSpec{Mode: admin.ToLatest, Topic: f.e.topic("nope")}); !errors.As(err, &nf) || nf.Kind != "topic" {
			t.Errorf("unknown topic: %v", err)
		}
		if _, err := admin.PlanReset(ctx, cl, f.group, admin.ResetSpec{Mode: admin.ToLatest, Partitions: []int32{9}}); err == nil || !strings.Contains(err.Error(), "no partition 9") {
			t.Errorf("unknown partition: %v", err)
		}
	})
}

func mapsEqual(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// --execute is refused while the group has a live member, and moves the
// committed offsets exactly as planned once it has none (on real Kafka,
// kafka-consumer-groups --describe then shows the new offsets).
func TestAdminResetExecute(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		topic, group := e.topic(topics.TopicInventory), e.groupID("inventory")
		e.produce(e.stockBatch(12, 1, 4)...)
		s := newSink()
		r := e.start(e.options(), e.inventoryGroup(s.handler(nil)))
		eventually(t, 60*time.Second, "all applied", func() bool { return s.total() == 48 })
		ends := e.endOffsets(topic)
		eventually(t, 30*time.Second, "everything committed", func() bool {
			c := e.committed(group, topic)
			for p, o := range ends {
				if o > 0 && c[p] != o {
					return false
				}
			}
			return true
		})

		cl := e.adminClient()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		spec := admin.ResetSpec{Mode: admin.ShiftBy, Offset: -2}
		plan, err := admin.PlanReset(ctx, cl, group, spec)
		if err != nil {
			t.Fatal(err)
		}
		if plan.Members != 1 {
			t.Errorf("plan of the live group: %d members, want 1", plan.Members)
		}
		before := e.committed(group, topic)
		err = admin.ExecuteReset(ctx, cl, plan)
		var live *admin.LiveGroupError
		if !errors.As(err, &live) || live.Members != 1 || !strings.Contains(err.Error(), "stop them first") {
			t.Fatalf("ExecuteReset on a live group = %v, want a LiveGroupError", err)
		}
		if after := e.committed(group, topic); !mapsEqual(before, after) {
			t.Errorf("a refused reset changed the commits: %v → %v", before, after)
		}

		r.stop(t)
		plan, err = admin.PlanReset(ctx, cl, group, spec)
		if err != nil {
			t.Fatal(err)
		}
		if plan.Members != 0 || plan.Reread() == 0 {
			t.Fatalf("plan after the stop: %+v", plan)
		}
		if err := admin.ExecuteReset(ctx, cl, plan); err != nil {
			t.Fatalf("ExecuteReset on the stopped group: %v", err)
		}
		want := map[int32]int64{}
		for _, pr := range plan.Partitions {
			want[pr.Partition] = pr.New
			if pr.New != max(before[pr.Partition]-2, 0) {
				t.Errorf("partition %d: planned %d, want committed %d − 2", pr.Partition, pr.New, before[pr.Partition])
			}
		}
		if got := e.committed(group, topic); !mapsEqual(got, want) {
			t.Errorf("committed after the reset %v, want %v", got, want)
		}
		if b.Real() {
			current, _ := describeGroup(t, e.brokers, group, topic)
			if !mapsEqual(current, want) {
				t.Errorf("kafka-consumer-groups --describe shows %v, want %v", current, want)
			}
		}
	})
}

// --reapply: SKU-A (partition 0) and SKU-B (partition 1), versions 1..5
// each, are applied, so both fences stand at 5. Partition 1 is rewound by 3
// without reapply and partition 0 by 3 with it. On restart SKU-A's
// versions 3, 4, 5 are applied again, while SKU-B's replayed records are
// skipped as stale: its fence was not touched.
func TestAdminReapplyFence(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		topic, group := e.topic(topics.TopicInventory), e.groupID("inventory")
		var recs []*kgo.Record
		for v := int64(1); v <= 5; v++ {
			a, b := e.stock("SKU-A", v, int(v)), e.stock("SKU-B", v, int(v))
			a.Partition, b.Partition = 0, 1
			recs = append(recs, a, b)
		}
		e.produceTo(recs...)
		s := newSink()
		r := e.start(e.options(), e.inventoryGroup(s.handler(nil)))
		eventually(t, 60*time.Second, "10 applied", func() bool { return s.total() == 10 })
		r.stop(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		version := func(sku string) int64 { // what the fence holds: a decimal at FenceKey
			t.Helper()
			v, err := e.rdb.Get(ctx, ordering.FenceKey(group, sku)).Int64()
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		if a, b := version("SKU-A"), version("SKU-B"); a != 5 || b != 5 {
			t.Fatalf("fences after the first run: A %d, B %d; want 5, 5", a, b)
		}

		cl := e.adminClient()
		planB, err := admin.PlanReset(ctx, cl, group, admin.ResetSpec{Mode: admin.ShiftBy, Offset: -3, Topic: topic, Partitions: []int32{1}})
		if err != nil {
			t.Fatal(err)
		}
		if err := admin.ExecuteReset(ctx, cl, planB); err != nil {
			t.Fatal(err)
		}

		planA, err := admin.PlanReset(ctx, cl, group, admin.ResetSpec{Mode: admin.ShiftBy, Offset: -3, Topic: topic, Partitions: []int32{0}})
		if err != nil {
			t.Fatal(err)
		}
		if len(planA.Partitions) != 1 || planA.Partitions[0].Current != 5 || planA.Partitions[0].New != 2 || planA.Reread() != 3 {
			t.Fatalf("plan for partition 0: %+v", planA.Partitions)
		}
		re, err := admin.PlanReapply(ctx, cl, e.rdb, planA, "") // domain from the topic name
		if err != nil {
			t.Fatal(err)
		}
		wantFence := admin.FenceChange{Topic: topic, Partition: 0, Subject: "SKU-A", Key: ordering.FenceKey(group, "SKU-A"), FirstVersion: 3, From: 5, To: 2, Lowered: true}
		if re.Records != 3 || re.Poison != 0 || len(re.IDs) != 0 || len(re.Fences) != 1 || re.Fences[0] != wantFence || re.Executed {
			t.Fatalf("reapply plan %+v, want 3 records and only %+v", re, wantFence)
		}
		if a := version("SKU-A"); a != 5 {
			t.Errorf("the dry run changed SKU-A's fence to %d", a)
		}
		if err := admin.ExecuteReapply(ctx, cl, e.rdb, re); err != nil {
			t.Fatal(err)
		}
		if !re.Executed || re.Fences[0] != wantFence {
			t.Errorf("executed reapply reports %+v, want %+v", re.Fences, wantFence)
		}
		if a, b := version("SKU-A"), version("SKU-B"); a != 2 || b != 5 {
			t.Errorf("fences after reapply: A %d, B %d; want 2, 5", a, b)
		}
		// Lowering again finds the fence already there: nothing to do.
		again, err := admin.PlanReapply(ctx, cl, e.rdb, planA, topics.DomainInventory)
		if err != nil || again.Fences[0].Lowered || again.Fences[0].From != 2 {
			t.Errorf("second reapply plan: %+v, %v; want SKU-A left alone at 2", again, err)
		}
		if err := admin.ExecuteReset(ctx, cl, planA); err != nil {
			t.Fatal(err)
		}

		s2 := newSink()
		r2 := e.start(e.options(), e.inventoryGroup(s2.handler(nil)))
		eventually(t, 60*time.Second, "the replay finished", func() bool {
			c := e.committed(group, topic)
			return c[0] == 5 && c[1] == 5 && s2.total() == 3 &&
				counter(r2, group, topic, processor.OutcomeSkippedStale) == 3
		})
		applied, _, _, _ := s2.snapshot()
		if !slices.Equal(applied["SKU-A"], []int64{3, 4, 5}) || len(applied["SKU-B"]) != 0 {
			t.Errorf("replay applied %v; want SKU-A 3, 4, 5 and nothing of SKU-B", applied)
		}
		if a, b := version("SKU-A"), version("SKU-B"); a != 5 || b != 5 {
			t.Errorf("fences after the replay: A %d, B %d; want 5, 5", a, b)
		}
	})
}

// --reapply on a dedupe group forgets exactly the replayed event ids: they
// are applied again, the rest of the partition stays deduplicated.
func TestAdminReapplyDedupe(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicOrder)
		topic, group := e.topic(topics.TopicOrder), e.groupID("order-crm")
		var recs []*kgo.Record
		for i := 1; i <= 4; i++ {
			r := e.order(fmt.Sprintf("O-%d", i), fmt.Sprintf("evt-%d", i))
			r.Partition = 0
			recs = append(recs, r)
		}
		poison := &kgo.Record{Topic: topic, Partition: 0, Key: []byte("O-5"), Value: []byte("not json")}
		recs = append(recs, poison, func() *kgo.Record { r := e.order("O-6", "evt-6"); r.Partition = 0; return r }())
		e.produceTo(recs...)
		orderGroup := func(s *sink) processor.GroupConfig {
			return processor.GroupConfig{Name: "order-crm", ID: group, Topic: topic, Domain: topics.DomainOrder,
				Handler: s.handler(nil), Idempotency: processor.IdempotencyDedupe}
		}
		s := newSink()
		r := e.start(e.options(), orderGroup(s))
		eventually(t, 60*time.Second, "6 records finished", func() bool { return r.proc.Stats()[0].Consumed == 6 })
		r.stop(t)
		if s.total() != 5 || e.committed(group, topic)[0] != 6 {
			t.Fatalf("first run applied %d and committed %v, want 5 and 6", s.total(), e.committed(group, topic))
		}

		cl := e.adminClient()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		plan, err := admin.PlanReset(ctx, cl, group, admin.ResetSpec{Mode: admin.ToOffset, Offset: 2, Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		re, err := admin.PlanReapply(ctx, cl, e.rdb, plan, topics.DomainOrder)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, id := range re.IDs {
			ids = append(ids, id.ID)
			if !id.Present || id.Key != ordering.DedupeKey(group, id.ID) {
				t.Errorf("dedupe change %+v", id)
			}
		}
		if re.Records != 4 || re.Poison != 1 || len(re.Fences) != 0 || !slices.Equal(ids, []string{"evt-3", "evt-4", "evt-6"}) {
			t.Fatalf("reapply plan %+v; want 4 records, 1 poison, ids evt-3, evt-4, evt-6", re)
		}
		if err := admin.ExecuteReapply(ctx, cl, e.rdb, re); err != nil {
			t.Fatal(err)
		}
		if err := admin.ExecuteReset(ctx, cl, plan); err != nil {
			t.Fatal(err)
		}
		if n, err := e.rdb.Exists(ctx, ordering.DedupeKey(group, "evt-2")).Result(); err != nil || n != 1 {
			t.Errorf("evt-2 (not replayed) forgotten: exists %d, %v", n, err)
		}

		s2 := newSink()
		r2 := e.start(e.options(), orderGroup(s2))
		eventually(t, 60*time.Second, "the replay finished", func() bool {
			return e.committed(group, topic)[0] == 6 && s2.total() == 3
		})
		r2.stop(t)
		_, applied, _, _ := s2.snapshot()
		slices.Sort(applied)
		if !slices.Equal(applied, []string{"evt-3", "evt-4", "evt-6"}) {
			t.Errorf("replay applied %v, want evt-3, evt-4, evt-6", applied)
		}
	})
}
