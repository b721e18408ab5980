package integration

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// redriveOrderGroup is a dedupe group on this test's order topic.
func (e *env) redriveOrderGroup(name string, h processor.Handler) processor.GroupConfig {
	return processor.GroupConfig{
		Name: name, ID: e.groupID(name),
		Topic: e.topic(topics.TopicOrder), Domain: topics.DomainOrder,
		Handler: h, Idempotency: processor.IdempotencyDedupe,
		Retry: processor.RetryPolicy{MaxAttempts: 2, Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, MaxElapsed: 10 * time.Second},
	}
}

// redriveWaitFinished waits until every group has committed the order topic to
// its end: every record is applied, skipped, filtered or dead-lettered.
func (e *env) redriveWaitFinished(t *testing.T, groups ...string) {
	t.Helper()
	topic := e.topic(topics.TopicOrder)
	ends := e.endOffsets(topic)
	for _, g := range groups {
		eventually(t, 60*time.Second, g+" committed to the end of "+topic, func() bool {
			c, err := e.fetchCommitted(g, topic)
			if err != nil {
				return false // COORDINATOR_NOT_AVAILABLE while a fresh broker starts
			}
			for p, end := range ends {
				if end > 0 && c[p] != end {
					return false
				}
			}
			return true
		})
	}
}

// Two groups on the order topic each dead-letter different orders;
// ListDLQ shows every contract header parsed and its filters select;
// Redrive is a dry run by default, writes the records back with the
// redrive headers under Execute, remembers how far it went, and each
// redriven record is then applied only by the group that failed it.
func TestDLQListAndRedrive(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicOrder)
		orderTopic := e.topic(topics.TopicOrder)
		dlqTopic := topics.DLQTopic(orderTopic)
		crmID, emailID := e.groupID("order-crm"), e.groupID("order-email")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()

		src := map[string]*kgo.Record{
			"o-1": e.order("o-1", "evt-1"), "o-2": e.order("o-2", "evt-2"),
			"o-3": e.order("o-3", "evt-3"), "o-4": e.order("o-4", "evt-4"),
		}
		src["o-1"].Headers = []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-redrive-01")}}
		e.produce(src["o-1"], src["o-2"], src["o-3"], src["o-4"])

		// Phase 1: order-crm rejects o-1; order-email rejects o-2 and
		// keeps failing o-3 until its retries are exhausted.
		before := time.Now().UTC().Add(-time.Second)
		crm1 := newSink()
		email1 := newSink()
		r := e.start(e.options(),
			e.redriveOrderGroup("order-crm", crm1.handler(func(_ context.Context, ev *topics.Event) error {
				if ev.Subject == "o-1" {
					return processor.Permanent(errors.New("crm 422: contact rejected"))
				}
				return nil
			})),
			e.redriveOrderGroup("order-email", email1.handler(func(_ context.Context, ev *topics.Event) error {
				switch ev.Subject {
				case "o-2":
					return processor.Permanent(errors.New("email 400: template missing"))
				case "o-3":
					return errors.New("email 503: unavailable")
				}
				return nil
			})),
		)
		e.redriveWaitFinished(t, crmID, emailID)
		r.stop(t)
		after := time.Now().UTC().Add(time.Second)

		all, err := admin.ListDLQ(ctx, cl, dlqTopic, admin.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 3 {
			t.Fatalf("ListDLQ: %d dead letters, want 3", len(all))
		}
		want := map[string]struct {
			group, class, errPart string
			attempts              int
		}{
			"o-1": {crmID, topics.ErrorClassPermanent, "crm 422", 1},
			"o-2": {emailID, topics.ErrorClassPermanent, "template missing", 1},
			"o-3": {emailID, topics.ErrorClassRetriesExhausted, "email 503", 2},
		}
		for _, d := range all {
			key := string(d.Key)
			w, ok := want[key]
			s := src[key]
			if !ok {
				t.Errorf("unexpected dead letter %q", key)
				continue
			}
			if d.Topic != dlqTopic || d.Offset < 0 || len(d.Problems) > 0 {
				t.Errorf("%s: at %s/%d@%d, problems %v", key, d.Topic, d.Partition, d.Offset, d.Problems)
			}
			if d.OriginalTopic != orderTopic || d.OriginalPartition != s.Partition || d.OriginalOffset != s.Offset ||
				d.OriginalTimestamp.UnixMilli() != s.Timestamp.UnixMilli() {
				t.Errorf("%s: original %s/%d@%d ts %v, want %s/%d@%d ts %v", key, d.OriginalTopic, d.OriginalPartition, d.OriginalOffset,
					d.OriginalTimestamp, orderTopic, s.Partition, s.Offset, s.Timestamp)
			}
			if d.Group != w.group || d.ErrorClass != w.class || d.Attempts != w.attempts || !strings.Contains(d.Error, w.errPart) || d.RedriveCount != 0 {
				t.Errorf("%s: group %s class %s attempts %d error %q redrives %d; want %s %s %d %q 0",
					key, d.Group, d.ErrorClass, d.Attempts, d.Error, d.RedriveCount, w.group, w.class, w.attempts, w.errPart)
			}
			if d.FailedAt.Before(before) || d.FailedAt.After(after) {
				t.Errorf("%s: failed at %v, not between %v and %v", key, d.FailedAt, before, after)
			}
			if string(d.Value) != string(s.Value) {
				t.Errorf("%s: value changed", key)
			}
			for _, h := range []string{topics.HeaderOriginalTopic, topics.HeaderOriginalPartition, topics.HeaderOriginalOffset, topics.HeaderOriginalTimestamp,
				topics.HeaderGroup, topics.HeaderError, topics.HeaderErrorClass, topics.HeaderAttempts, topics.HeaderFailedAt} {
				if _, ok := d.Header(h); !ok {
					t.Errorf("%s: header %s missing from Headers", key, h)
				}
			}
		}
		if d := all[slices.IndexFunc(all, func(d admin.DeadLetter) bool { return string(d.Key) == "o-1" })]; !slices.Contains(d.Headers, admin.Header{Key: "traceparent", Value: "00-redrive-01"}) {
			t.Errorf("o-1 lost its own header: %v", d.Headers)
		}

		keys := func(f admin.Filter) []string {
			t.Helper()
			ds, err := admin.ListDLQ(ctx, cl, dlqTopic, f)
			if err != nil {
				t.Fatalf("ListDLQ %+v: %v", f, err)
			}
			var ks []string
			for _, d := range ds {
				ks = append(ks, string(d.Key))
			}
			slices.Sort(ks)
			return ks
		}
		for _, c := range []struct {
			f    admin.Filter
			want []string
		}{
			{admin.Filter{Group: crmID}, []string{"o-1"}},
			{admin.Filter{Group: emailID}, []string{"o-2", "o-3"}},
			{admin.Filter{ErrorClass: topics.ErrorClassRetriesExhausted}, []string{"o-3"}},
			{admin.Filter{Group: emailID, ErrorClass: topics.ErrorClassPermanent}, []string{"o-2"}},
			{admin.Filter{Key: "o-2"}, []string{"o-2"}},
			{admin.Filter{Since: before}, []string{"o-1", "o-2", "o-3"}},
			{admin.Filter{Since: after}, nil},
		} {
			if got := keys(c.f); !slices.Equal(got, c.want) {
				t.Errorf("filter %+v: %v, want %v", c.f, got, c.want)
			}
		}
		if _, err := admin.ListDLQ(ctx, cl, dlqTopic, admin.Filter{ErrorClass: "fatal"}); err == nil || !strings.Contains(err.Error(), `"fatal"`) {
			t.Errorf("bad error class: err = %v", err)
		}
		if _, err := admin.ListDLQ(ctx, cl, e.topic("commerce.nope.v1.dlq"), admin.Filter{}); err == nil ||
			!strings.Contains(err.Error(), e.topic("commerce.nope.v1.dlq")+" does not exist") || !strings.Contains(err.Error(), "shopstream topics describe") {
			t.Errorf("unknown topic: err = %v", err)
		}
		if _, err := admin.ListDLQ(ctx, cl, orderTopic, admin.Filter{}); err == nil || !strings.Contains(err.Error(), "not a dead-letter topic") {
			t.Errorf("source topic: err = %v", err)
		}

		// A dry run reports and changes nothing.
		redriveGroup := e.prefix + "shopstream-redrive.all"
		opts := admin.RedriveOptions{ConsumerGroup: redriveGroup}
		dry, err := admin.Redrive(ctx, cl, dlqTopic, admin.Filter{}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if dry.Executed || dry.Read != 3 || dry.Selected != 3 || dry.Redriven != 0 || len(dry.Records) != 3 || len(dry.Committed) != 0 {
			t.Errorf("dry run report: %+v", dry)
		}
		for _, rr := range dry.Records {
			if rr.Offset != -1 || rr.Topic != orderTopic || rr.RedriveCount != 1 || rr.Skipped != "" {
				t.Errorf("dry run record: %+v", rr)
			}
		}
		if n := recordCount(e.endOffsets(orderTopic)); n != 4 {
			t.Errorf("after a dry run the order topic has %d records, want 4", n)
		}
		if c := e.committedOrNone(redriveGroup, dlqTopic); len(c) != 0 {
			t.Errorf("a dry run committed %v", c)
		}

		// Execute: written back, then committed.
		opts.Execute = true
		rep, err := admin.Redrive(ctx, cl, dlqTopic, admin.Filter{}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Executed || rep.Read != 3 || rep.Selected != 3 || rep.Redriven != 3 || rep.Failed != 0 || rep.Skipped != 0 {
			t.Fatalf("redrive report: %+v", rep)
		}
		dlqEnds := e.endOffsets(dlqTopic)
		if c := e.committedOrNone(redriveGroup, dlqTopic); !sameNonZero(c, dlqEnds) {
			t.Errorf("redrive group committed %v, want the DLQ ends %v", c, dlqEnds)
		}
		written := map[string]admin.RedriveRecord{}
		for _, rr := range rep.Records {
			written[rr.Key] = rr
			s := src[rr.Key]
			if rr.Topic != orderTopic || rr.Partition != s.Partition || rr.Offset < 0 || rr.OriginalOffset != s.Offset || rr.RedriveCount != 1 || rr.Group != want[rr.Key].group {
				t.Errorf("redriven %s: %+v", rr.Key, rr)
			}
		}
		back := map[string]*kgo.Record{}
		for _, rec := range e.readAll(orderTopic) {
			if w, ok := written[string(rec.Key)]; ok && rec.Partition == w.Partition && rec.Offset == w.Offset {
				back[string(rec.Key)] = rec
			}
		}
		if len(back) != 3 {
			t.Fatalf("found %d of the 3 redriven records at the reported coordinates", len(back))
		}
		for key, rec := range back {
			var shop []string
			for _, h := range rec.Headers {
				if strings.HasPrefix(h.Key, "shopstream.") {
					shop = append(shop, h.Key+"="+string(h.Value))
				}
			}
			wantShop := []string{topics.HeaderRedriveGroup + "=" + want[key].group, topics.HeaderRedriveCount + "=1"}
			if !slices.Equal(shop, wantShop) {
				t.Errorf("redriven %s: shopstream headers %v, want %v", key, shop, wantShop)
			}
			if string(rec.Value) != string(src[key].Value) {
				t.Errorf("redriven %s: value changed", key)
			}
		}
		if !hasHeader(back["o-1"], "traceparent", "00-redrive-01") {
			t.Errorf("redriven o-1 lost its own header: %v", back["o-1"].Headers)
		}

		// kcat (librdkafka) reads them with their headers.
		kc := 0
		for _, kr := range kcatConsume(t, e.brokers, orderTopic) {
			g, ok := kr.header(topics.HeaderRedriveGroup)
			if !ok {
				continue
			}
			kc++
			w := written[kr.Key]
			if g != want[kr.Key].group || kr.Partition != w.Partition || kr.Offset != w.Offset {
				t.Errorf("kcat: %s at %d@%d with redrive group %q; want %d@%d, %q", kr.Key, kr.Partition, kr.Offset, g, w.Partition, w.Offset, want[kr.Key].group)
			}
			if c, _ := kr.header(topics.HeaderRedriveCount); c != "1" {
				t.Errorf("kcat: %s redrive count %q", kr.Key, c)
			}
			if _, ok := kr.header(topics.HeaderGroup); ok {
				t.Errorf("kcat: %s still carries %s", kr.Key, topics.HeaderGroup)
			}
		}
		if kc != 3 {
			t.Errorf("kcat saw %d redriven records, want 3", kc)
		}

		// The redrive group remembers: a second run has nothing to do.
		second, err := admin.Redrive(ctx, cl, dlqTopic, admin.Filter{}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if second.Read != 0 || second.Selected != 0 || second.Redriven != 0 || len(second.Committed) != 0 {
			t.Errorf("second run: %+v, want nothing read or redriven", second)
		}

		// Phase 2: only the group that failed a record processes it; the
		// other one counts it filtered without calling its sink. order-email
		// fails o-3 once more.
		var crmCalls, emailCalls atomic.Int32
		crm2, email2 := newSink(), newSink()
		r2 := e.start(e.options(),
			e.redriveOrderGroup("order-crm", crm2.handler(func(context.Context, *topics.Event) error {
				crmCalls.Add(1)
				return nil
			})),
			e.redriveOrderGroup("order-email", email2.handler(func(_ context.Context, ev *topics.Event) error {
				emailCalls.Add(1)
				if ev.Subject == "o-3" {
					return processor.Permanent(errors.New("email 400: still failing"))
				}
				return nil
			})),
		)
		e.redriveWaitFinished(t, crmID, emailID)
		// A group with live members is never used as a redrive group.
		if _, err := admin.Redrive(ctx, cl, dlqTopic, admin.Filter{Key: "none"}, admin.RedriveOptions{Execute: true, ConsumerGroup: crmID}); err == nil ||
			!strings.Contains(err.Error(), "live members") {
			t.Errorf("redrive with the live group %s as its group: err = %v", crmID, err)
		}
		if _, ids, _, _ := crm2.snapshot(); !slices.Equal(ids, []string{"evt-1"}) || crmCalls.Load() != 1 {
			t.Errorf("order-crm applied %v in %d calls, want only evt-1 in 1", ids, crmCalls.Load())
		}
		if _, ids, _, _ := email2.snapshot(); !slices.Equal(ids, []string{"evt-2"}) || emailCalls.Load() != 2 {
			t.Errorf("order-email applied %v in %d calls, want evt-2 (and o-3 failing) in 2", ids, emailCalls.Load())
		}
		for _, c := range []struct {
			group, outcome string
			want           int64
		}{
			{crmID, processor.OutcomeFiltered, 2}, {crmID, processor.OutcomeApplied, 1}, {crmID, processor.OutcomeDeadLettered, 0},
			{emailID, processor.OutcomeFiltered, 1}, {emailID, processor.OutcomeApplied, 1}, {emailID, processor.OutcomeDeadLettered, 1},
		} {
			if got := counter(r2, c.group, orderTopic, c.outcome); got != c.want {
				t.Errorf("%s %s = %d, want %d", c.group, c.outcome, got, c.want)
			}
		}
		r2.stop(t)

		// The new dead letter carries the redrive count; redriving it again
		// replaces the redrive headers rather than adding a second set.
		o3, err := admin.ListDLQ(ctx, cl, dlqTopic, admin.Filter{Key: "o-3"})
		if err != nil {
			t.Fatal(err)
		}
		if len(o3) != 2 {
			t.Fatalf("o-3 has %d dead letters, want 2", len(o3))
		}
		if i := slices.IndexFunc(o3, func(d admin.DeadLetter) bool { return d.RedriveCount == 1 }); i < 0 ||
			o3[i].Group != emailID || o3[i].OriginalOffset != written["o-3"].Offset || !strings.Contains(o3[i].Error, "still failing") {
			t.Fatalf("o-3's second dead letter: %+v", o3)
		}
		third, err := admin.Redrive(ctx, cl, dlqTopic, admin.Filter{}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if third.Read != 1 || third.Redriven != 1 || third.Records[0].Key != "o-3" || third.Records[0].RedriveCount != 2 {
			t.Fatalf("third run: %+v", third)
		}
		w3 := third.Records[0]
		var again *kgo.Record
		for _, rec := range e.readAll(orderTopic) {
			if rec.Partition == w3.Partition && rec.Offset == w3.Offset {
				again = rec
			}
		}
		if again == nil {
			t.Fatalf("o-3 not found at %d@%d", w3.Partition, w3.Offset)
		}
		var groups, counts []string
		for _, h := range again.Headers {
			switch h.Key {
			case topics.HeaderRedriveGroup:
				groups = append(groups, string(h.Value))
			case topics.HeaderRedriveCount:
				counts = append(counts, string(h.Value))
			}
		}
		if !slices.Equal(groups, []string{emailID}) || !slices.Equal(counts, []string{"2"}) {
			t.Errorf("o-3 redriven twice: redrive groups %v, counts %v; want one of each: %s, 2", groups, counts, emailID)
		}
	})
}

// Every filter has its own default redrive group, so one filter's run
// never moves another's position.
func TestRedriveGroupID(t *testing.T) {
	since := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		f    admin.Filter
		want string
	}{
		{admin.Filter{}, "shopstream-redrive.all"},
		{admin.Filter{Group: "order-crm"}, "shopstream-redrive.order-crm"},
		{admin.Filter{Group: "shopstream.order-crm"}, "shopstream-redrive.order-crm"},
		{admin.Filter{Group: "order-crm", ErrorClass: "poison"}, "shopstream-redrive.order-crm.class=poison"},
		{admin.Filter{Key: "o-1", Since: since}, "shopstream-redrive.all.key=o-1.since=2026-11-27T10:00:00Z"},
	} {
		if got := admin.RedriveGroupID(c.f); got != c.want {
			t.Errorf("RedriveGroupID(%+v) = %q, want %q", c.f, got, c.want)
		}
	}
}

// committedOrNone is committed, but a group that does not exist yet (kfake
// says GROUP_ID_NOT_FOUND) has no commits.
func (e *env) committedOrNone(group, topic string) map[int32]int64 {
	e.t.Helper()
	c, err := e.fetchCommitted(group, topic)
	if err != nil {
		e.t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	return c
}

func (e *env) fetchCommitted(group, topic string) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.admin.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out, nil
}

func recordCount(m map[int32]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// sameNonZero reports whether got holds exactly the non-zero entries of want.
func sameNonZero(got, want map[int32]int64) bool {
	n := 0
	for p, v := range want {
		if v == 0 {
			continue
		}
		n++
		if got[p] != v {
			return false
		}
	}
	return len(got) == n
}
