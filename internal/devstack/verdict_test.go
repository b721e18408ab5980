package devstack_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/topics"
)

// scenario builds a tiny manifest by hand: each record on partition 0 of its
// topic, at the next offset.
type scenario struct {
	m      devstack.Manifest
	offset map[string]int64
}

func (s *scenario) add(r devstack.Produced) devstack.Produced {
	if s.offset == nil {
		s.offset = make(map[string]int64)
	}
	r.Offset = s.offset[r.Topic]
	s.offset[r.Topic]++
	if r.Value == nil {
		r.Value, _ = json.Marshal(topics.Event{SpecVersion: "1.0", ID: r.ID, Source: "test", Type: r.Type,
			Subject: r.Key, Time: time.Unix(0, 0).UTC(), Version: r.Version, Data: json.RawMessage(`{}`)})
	}
	s.m.Records = append(s.m.Records, r)
	return r
}

func ev(topic, key, id, typ string, version int64) devstack.Produced {
	return devstack.Produced{Topic: topic, Key: key, ID: id, Type: typ, Version: version}
}

func call(sink, id string) devstack.Call { return devstack.Call{Sink: sink, EventID: id} }

func dead(group string, r devstack.Produced) devstack.DLQRecord {
	return devstack.DLQRecord{
		Topic: topics.DLQTopic(r.Topic), Key: r.Key, Value: r.Value,
		Headers: map[string]string{
			topics.HeaderGroup:             group,
			topics.HeaderOriginalTopic:     r.Topic,
			topics.HeaderOriginalPartition: strconv.Itoa(int(r.Partition)),
			topics.HeaderOriginalOffset:    strconv.FormatInt(r.Offset, 10),
			topics.HeaderErrorClass:        topics.ErrorClassPoison,
		},
	}
}

// fixture is a correct run: inventory with a stale copy, a duplicate, a
// filtered type and a poison record; an order through three groups; a
// customer.
type fixture struct {
	m     *devstack.Manifest
	calls []devstack.Call
	dlq   []devstack.DLQRecord
	// named records
	v1, v2, stale, poison, placed, captured, shipped, created devstack.Produced
}

func newFixture() *fixture {
	var s scenario
	f := &fixture{}
	inv, ord, cus := topics.TopicInventory, topics.TopicOrder, topics.TopicCustomer
	f.v1 = s.add(ev(inv, "SKU-1", "e1", devstack.TypeStockUpdated, 1))
	f.v2 = s.add(ev(inv, "SKU-1", "e2", devstack.TypeStockUpdated, 2))
	s.add(ev(inv, "SKU-1", "e3", devstack.TypeThresholdBreached, 3)) // filtered by inventory
	stale := ev(inv, "SKU-1", "e4", devstack.TypeStockUpdated, 1)
	stale.Stale = true
	f.stale = s.add(stale)
	dup := f.v2
	dup.Duplicate = true
	s.add(dup)
	f.poison = s.add(devstack.Produced{Topic: inv, Key: "SKU-1", Poison: true, PoisonKind: devstack.PoisonInvalidJSON, Value: []byte(`{"specversion":`)})
	f.placed = s.add(ev(ord, "ORD-1", "o1", devstack.TypeOrderPlaced, 1))
	f.captured = s.add(ev(ord, "ORD-1", "o2", devstack.TypePaymentCaptured, 2))
	f.shipped = s.add(ev(ord, "ORD-1", "o3", devstack.TypeShipmentUpdated, 3))
	f.created = s.add(ev(cus, "CUST-1", "c1", devstack.TypeCustomerCreated, 1))
	f.m = &s.m

	f.calls = []devstack.Call{
		call(devstack.SinkSourceItems, "e1"),
		call(devstack.SinkSourceItems, "e2"),
		call(devstack.SinkCRM, "o1"), call(devstack.SinkFraud, "o1"), call(devstack.SinkEmail, "o1"),
		call(devstack.SinkCRM, "o2"), call(devstack.SinkFraud, "o2"),
		call(devstack.SinkEmail, "o3"),
		call(devstack.SinkCRM, "c1"),
	}
	f.dlq = []devstack.DLQRecord{dead("inventory", f.poison)}
	return f
}

func groups(names ...string) []devstack.GroupSpec {
	var out []devstack.GroupSpec
	for _, g := range devstack.DefaultGroups() {
		if slices.Contains(names, g.Name) {
			out = append(out, g)
		}
	}
	return out
}

var fixtureGroups = groups("inventory", "order-crm", "order-fraud", "order-email", "customer-crm")

func groupVerdict(t *testing.T, v devstack.Verdict, name string) devstack.GroupVerdict {
	t.Helper()
	for _, g := range v.Groups {
		if g.Group == name {
			return g
		}
	}
	t.Fatalf("no verdict for group %s", name)
	return devstack.GroupVerdict{}
}

func mentions(v devstack.Verdict, words ...string) bool {
	for _, p := range v.Problems {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(p, w)
		}
		if ok {
			return true
		}
	}
	return false
}

func TestCheckPassesCorrectRun(t *testing.T) {
	t.Parallel()
	f := newFixture()
	v := devstack.Check(f.m, f.calls, f.dlq, fixtureGroups)
	if !v.OK() || len(v.Problems) != 0 {
		t.Fatalf("correct run failed:\n%s", v)
	}
	inv := groupVerdict(t, v, "inventory")
	want := devstack.GroupVerdict{Group: "inventory", Expected: 3, Applied: 2, Skipped: 1, Poison: 1}
	if inv != want {
		t.Fatalf("inventory verdict = %+v, want %+v", inv, want)
	}
	if g := groupVerdict(t, v, "order-email"); g.Expected != 2 || g.Applied != 2 {
		t.Fatalf("order-email verdict = %+v, want 2 expected and applied", g)
	}
	if g := groupVerdict(t, v, "customer-crm"); g.Expected != 1 || g.Applied != 1 {
		t.Fatalf("customer-crm verdict = %+v: crm calls of customer events count there", g)
	}
	if g := groupVerdict(t, v, "order-crm"); g.Expected != 2 || g.Applied != 2 {
		t.Fatalf("order-crm verdict = %+v: crm calls of customer events must not count there", g)
	}
	if !strings.Contains(v.String(), "verdict: OK") {
		t.Fatalf("String() lacks the verdict:\n%s", v)
	}
}

func TestCheckDetectsLostEvent(t *testing.T) {
	t.Parallel()
	f := newFixture()
	calls := slices.DeleteFunc(slices.Clone(f.calls), func(c devstack.Call) bool { return c.Sink == devstack.SinkEmail && c.EventID == "o3" })
	v := devstack.Check(f.m, calls, f.dlq, fixtureGroups)
	if v.OK() || v.Lost != 1 || groupVerdict(t, v, "order-email").Lost != 1 {
		t.Fatalf("lost email not detected:\n%s", v)
	}
	if !mentions(v, "order-email", "lost", "ORD-1", "o3") {
		t.Fatalf("problems lack the lost event: %q", v.Problems)
	}

	// The newest stock level is lost: the stale copy (v1) is still
	// legitimately skipped, but v2 is lost and SKU-1 is not at its highest.
	calls = slices.DeleteFunc(slices.Clone(f.calls), func(c devstack.Call) bool { return c.EventID == "e2" })
	v = devstack.Check(f.m, calls, f.dlq, fixtureGroups)
	inv := groupVerdict(t, v, "inventory")
	if v.OK() || inv.Lost != 1 || inv.NotAtHighest != 1 || inv.Skipped != 1 {
		t.Fatalf("lost stock update not detected: %+v\n%s", inv, v)
	}
	if !mentions(v, "inventory", "lost", "SKU-1", "version=2", "e2") || !mentions(v, "not at highest", "SKU-1") {
		t.Fatalf("problems lack the examples: %q", v.Problems)
	}

	// Dead-lettered (say, retries exhausted) is not lost, and the highest
	// version left is v1.
	dlq := append(slices.Clone(f.dlq), dead("shopstream.inventory", f.v2))
	v = devstack.Check(f.m, calls, dlq, fixtureGroups)
	if inv := groupVerdict(t, v, "inventory"); !v.OK() || inv.DeadLettered != 1 || inv.Lost != 0 {
		t.Fatalf("dead-lettered event counted as lost: %+v\n%s", inv, v)
	}

	// A DLQ record of another group does not count.
	dlq = append(slices.Clone(f.dlq), dead("catalog", f.v2))
	if v = devstack.Check(f.m, calls, dlq, fixtureGroups); groupVerdict(t, v, "inventory").Lost != 1 {
		t.Fatalf("another group's DLQ record excused a lost event:\n%s", v)
	}
}

func TestCheckDetectsRegression(t *testing.T) {
	t.Parallel()
	f := newFixture()
	// v2 then the stale v1: the fence failed.
	calls := append(slices.Clone(f.calls), call(devstack.SinkSourceItems, "e4"))
	v := devstack.Check(f.m, calls, f.dlq, fixtureGroups)
	inv := groupVerdict(t, v, "inventory")
	if v.OK() || inv.Regressions != 1 || inv.NotAtHighest != 1 {
		t.Fatalf("stale apply not detected: %+v\n%s", inv, v)
	}
	if !mentions(v, "inventory", "regression", "SKU-1", "version 1 after 2") {
		t.Fatalf("problems lack the regression: %q", v.Problems)
	}

	// Out of order: v2 applied before v1.
	calls = slices.Clone(f.calls)
	calls[0], calls[1] = calls[1], calls[0]
	v = devstack.Check(f.m, calls, f.dlq, fixtureGroups)
	if inv := groupVerdict(t, v, "inventory"); v.OK() || inv.Regressions != 1 {
		t.Fatalf("reordered applies not detected: %+v\n%s", inv, v)
	}
}

func TestCheckDetectsMissingDLQRecord(t *testing.T) {
	t.Parallel()
	f := newFixture()
	for name, dlq := range map[string][]devstack.DLQRecord{
		"none":        nil,
		"wrong group": {dead("order-crm", f.poison)},
		"wrong record": {func() devstack.DLQRecord {
			d := dead("inventory", f.v1)
			return d
		}()},
	} {
		v := devstack.Check(f.m, f.calls, dlq, fixtureGroups)
		if v.OK() || v.PoisonNotDLQ != 1 || groupVerdict(t, v, "inventory").PoisonNotDLQ != 1 {
			t.Fatalf("%s: missing poison DLQ record not detected:\n%s", name, v)
		}
		if !mentions(v, "inventory", "poison not dead-lettered", devstack.PoisonInvalidJSON, "SKU-1") {
			t.Fatalf("%s: problems lack the poison record: %q", name, v.Problems)
		}
	}

	// Matching by value works without the original.* headers.
	d := dead("inventory", f.poison)
	delete(d.Headers, topics.HeaderOriginalOffset)
	if v := devstack.Check(f.m, f.calls, []devstack.DLQRecord{d}, fixtureGroups); !v.OK() {
		t.Fatalf("poison matched by value not found:\n%s", v)
	}
}

func TestCheckReportsWithoutFailing(t *testing.T) {
	t.Parallel()
	f := newFixture()
	calls := append(slices.Clone(f.calls),
		call(devstack.SinkCRM, "o1"),              // duplicate apply
		call(devstack.SinkCRM, "nobody-knows-me"), // unattributed
		call(devstack.SinkSourceItems, "e3"),      // a filtered type reached the sink
	)
	v := devstack.Check(f.m, calls, f.dlq, fixtureGroups)
	if !v.OK() {
		t.Fatalf("reports failed the verdict:\n%s", v)
	}
	if v.DuplicateApplies != 1 || groupVerdict(t, v, "order-crm").DuplicateApplies != 1 || v.Unattributed != 1 || v.Misrouted != 1 {
		t.Fatalf("duplicates %d, unattributed %d, misrouted %d; want 1 each\n%s", v.DuplicateApplies, v.Unattributed, v.Misrouted, v)
	}
	if len(v.Notes) != 3 {
		t.Fatalf("notes = %q, want 3", v.Notes)
	}
}

func TestCheckAttributesBySubjectAndVersion(t *testing.T) {
	t.Parallel()
	f := newFixture()
	calls := slices.Clone(f.calls)
	calls[0] = devstack.Call{Sink: devstack.SinkSourceItems, Subject: "SKU-1", Version: 1}
	calls[1] = devstack.Call{Sink: devstack.SinkSourceItems, Subject: "SKU-1", Version: 2}
	if v := devstack.Check(f.m, calls, f.dlq, fixtureGroups); !v.OK() || v.Unattributed != 0 {
		t.Fatalf("calls without event ids not attributed:\n%s", v)
	}
}

func TestCheckProblemsAreBounded(t *testing.T) {
	t.Parallel()
	var s scenario
	for i := range 50 {
		s.add(ev(topics.TopicOrder, fmt.Sprintf("ORD-%d", i), fmt.Sprintf("o%d", i), devstack.TypeOrderPlaced, 1))
	}
	v := devstack.Check(&s.m, nil, nil, groups("order-fraud"))
	if v.Lost != 50 || len(v.Problems) > 5 {
		t.Fatalf("lost %d with %d problems, want 50 lost and a few examples", v.Lost, len(v.Problems))
	}
}

// A call that names an event by its id but does not carry it — a webhook
// body other than the produced value, a Magento call about another SKU — is
// a failure, and does not count as the event applied.
func TestCheckDetectsCallNotCarryingItsEvent(t *testing.T) {
	t.Parallel()
	f := newFixture()
	// The fixture's values, as the Simulator records bodies and subjects.
	placed := []byte(`{"specversion":"1.0","id":"o1","type":"order.placed","subject":"ORD-1"}`)
	for i := range f.m.Records {
		if f.m.Records[i].ID == "o1" {
			f.m.Records[i].Value = placed
		}
	}
	calls := slices.Clone(f.calls)
	for i, c := range calls {
		switch {
		case c.EventID == "o1":
			calls[i].Body = placed
		case c.EventID == "e2":
			calls[i].Subject = "SKU-1"
		}
	}
	if v := devstack.Check(f.m, calls, f.dlq, fixtureGroups); !v.OK() || v.Mismatched != 0 {
		t.Fatalf("calls carrying their events failed:\n%s", v)
	}

	wrong := slices.Clone(calls)
	for i, c := range wrong {
		switch {
		case c.EventID == "o1" && c.Sink == devstack.SinkFraud:
			wrong[i].Body = []byte(`{"specversion":"1.0","id":"o1","type":"order.placed","subject":"ORD-2"}`)
		case c.EventID == "e2":
			wrong[i].Subject = "SKU-2"
		}
	}
	v := devstack.Check(f.m, wrong, f.dlq, fixtureGroups)
	if v.OK() || v.Mismatched != 2 || groupVerdict(t, v, "order-fraud").Lost != 1 || groupVerdict(t, v, "inventory").Lost != 1 {
		t.Fatalf("calls not carrying their events passed: mismatched %d\n%s", v.Mismatched, v)
	}
	if !mentions(v, "fraud", "does not carry", "o1") || !mentions(v, "source-items", "does not carry", "e2", "SKU-2") {
		t.Fatalf("problems lack the examples: %q", v.Problems)
	}
}
