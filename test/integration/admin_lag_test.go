package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/topics"
)

// adminClient is a plain client for the admin package's functions.
func (e *env) adminClient() *kgo.Client {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return cl
}

// commitOffsets commits offsets for group from outside (as a reset does).
func (e *env) commitOffsets(group, topic string, offsets map[int32]int64) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	os := kadm.Offsets{}
	for p, o := range offsets {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: o, LeaderEpoch: -1})
	}
	if err := e.admin.CommitAllOffsets(ctx, group, os); err != nil {
		e.t.Fatalf("commit %v for %s: %v", offsets, group, err)
	}
}

// stampedStock is stock update i of sku on partition p with timestamp ts.
func (e *env) stampedStock(p int32, sku string, version int64, ts time.Time) *kgo.Record {
	r := e.stock(sku, version, int(version))
	r.Partition = p
	r.Timestamp = ts
	return r
}

// Lag equals what was produced minus what was committed, partition by
// partition; a partition without a commit counts from its start and says
// so; lag_seconds is the age of the record at the committed offset (the
// records carry explicit timestamps two hours old, so the age is known to
// the millisecond between the instants before and after the call).
func TestAdminLagNumbers(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		topic, group := e.topic(topics.TopicInventory), e.groupID("inventory")
		base := time.Now().Add(-2 * time.Hour).Truncate(time.Millisecond)
		stamp := func(p int32, i int) time.Time {
			return base.Add(time.Duration(i)*time.Minute + time.Duration(p)*time.Second)
		}
		produced := map[int32]int{0: 10, 1: 7, 2: 5, 3: 0, 4: 3, 5: 4}
		var recs []*kgo.Record
		for p, n := range produced {
			for i := range n {
				recs = append(recs, e.stampedStock(p, fmt.Sprintf("SKU-%d", p), int64(i+1), stamp(p, i)))
			}
		}
		e.produceTo(recs...)
		committed := map[int32]int64{0: 4, 1: 7, 2: 0, 4: 1} // 3 (empty) and 5 never committed
		e.commitOffsets(group, topic, committed)

		cl := e.adminClient()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		before := time.Now()
		lags, err := admin.Lag(ctx, cl, []string{group}, "")
		after := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		if len(lags) != 1 || lags[0].Group != group {
			t.Fatalf("Lag returned %+v, want one group %s", lags, group)
		}
		g := lags[0]
		if g.State != "Empty" || g.Members != 0 {
			t.Errorf("group state %q with %d members, want Empty with 0", g.State, g.Members)
		}
		if len(g.Partitions) != partitions {
			t.Fatalf("%d partitions reported, want %d: %+v", len(g.Partitions), partitions, g.Partitions)
		}
		var total int64
		var oldest float64
		for i, pl := range g.Partitions {
			p := int32(i)
			if pl.Partition != p || pl.Topic != topic || pl.Group != group {
				t.Errorf("row %d is %s/%s/%d, want %s/%s/%d", i, pl.Group, pl.Topic, pl.Partition, group, topic, p)
			}
			end := int64(produced[p])
			c, has := committed[p]
			wantLag := end - c
			if !has {
				c, wantLag = -1, end
			}
			if pl.Committed != c || pl.End != end || pl.Start != 0 || pl.Lag != wantLag || pl.NoCommit != !has {
				t.Errorf("partition %d: committed %d end %d start %d lag %d no_commit %v; want committed %d end %d start 0 lag %d no_commit %v",
					p, pl.Committed, pl.End, pl.Start, pl.Lag, pl.NoCommit, c, end, wantLag, !has)
			}
			total += wantLag
			if wantLag == 0 {
				if pl.LagSeconds != 0 {
					t.Errorf("partition %d: lag 0 but lag_seconds %v", p, pl.LagSeconds)
				}
				continue
			}
			ts := stamp(p, int(max(c, 0))) // the oldest unconsumed record
			lo := float64(before.Sub(ts).Milliseconds()-1) / 1000
			hi := float64(after.Sub(ts).Milliseconds()+1) / 1000
			if pl.LagSeconds < lo || pl.LagSeconds > hi {
				t.Errorf("partition %d: lag_seconds %.3f, want the age of offset %d's record: between %.3f and %.3f", p, pl.LagSeconds, max(c, 0), lo, hi)
			}
			oldest = max(oldest, pl.LagSeconds)
		}
		if g.Lag != total || g.LagSeconds != oldest {
			t.Errorf("group totals: lag %d, lag_seconds %v; want %d, %v", g.Lag, g.LagSeconds, total, oldest)
		}

		// --topic filters; a topic the group never touched gives no rows.
		only, err := admin.Lag(ctx, cl, []string{group}, topic)
		if err != nil || len(only) != 1 || len(only[0].Partitions) != partitions || only[0].Lag != total {
			t.Errorf("Lag(--topic %s) = %+v, %v; want the same %d partitions and lag %d", topic, only, err, partitions, total)
		}
		other, err := admin.Lag(ctx, cl, []string{group}, topics.DLQTopic(topic))
		if err != nil || len(other) != 1 || len(other[0].Partitions) != 0 {
			t.Errorf("Lag(--topic %s) = %+v, %v; want the group with no partitions", topics.DLQTopic(topic), other, err)
		}

		// Unknown group and unknown topic name what is missing.
		missing := e.groupID("no-such-group")
		_, err = admin.Lag(ctx, cl, []string{group, missing}, "")
		var nf *admin.NotFoundError
		if !errors.As(err, &nf) || nf.Kind != "group" || len(nf.Names) != 1 || nf.Names[0] != missing {
			t.Errorf("Lag(unknown group) = %v, want a group NotFoundError naming %s", err, missing)
		}
		_, err = admin.Lag(ctx, cl, []string{group}, e.topic("no.such.topic"))
		if !errors.As(err, &nf) || nf.Kind != "topic" || nf.Names[0] != e.topic("no.such.topic") {
			t.Errorf("Lag(unknown topic) = %v, want a topic NotFoundError", err)
		}
	})
}

// A running group is Stable with its member and catches up to lag 0; after
// it stops, new records are exactly the lag. On real Kafka the numbers
// equal what Kafka's own kafka-consumer-groups --describe prints.
func TestAdminLagRunningGroup(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		topic, group := e.topic(topics.TopicInventory), e.groupID("inventory")
		e.produce(e.stockBatch(10, 1, 3)...)
		s := newSink()
		r := e.start(e.options(), e.inventoryGroup(s.handler(nil)))
		eventually(t, 60*time.Second, "all applied", func() bool { return s.total() == 30 })

		cl := e.adminClient()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		lagOf := func() admin.GroupLag {
			t.Helper()
			lags, err := admin.Lag(ctx, cl, []string{group}, "")
			if err != nil || len(lags) != 1 {
				t.Fatalf("Lag = %+v, %v", lags, err)
			}
			return lags[0]
		}
		var live admin.GroupLag
		eventually(t, 30*time.Second, "the running group at lag 0", func() bool {
			live = lagOf()
			return live.Lag == 0 && live.Members == 1 && live.State == "Stable"
		})
		for _, pl := range live.Partitions {
			if pl.Members != 1 || pl.State != "Stable" || pl.LagSeconds != 0 {
				t.Errorf("partition %d of the live group: %+v", pl.Partition, pl)
			}
		}
		r.stop(t)

		more := []*kgo.Record{e.stock("SKU-X", 1, 1), e.stock("SKU-X", 2, 2), e.stock("SKU-Y", 1, 1), e.stock("SKU-Y", 2, 2), e.stock("SKU-Y", 3, 3)}
		for i, rec := range more {
			rec.Partition = int32(i % 2) // 3 on partition 0, 2 on partition 1
		}
		e.produceTo(more...)
		stopped := lagOf()
		if stopped.State != "Empty" || stopped.Members != 0 || stopped.Lag != 5 {
			t.Errorf("stopped group: state %s, %d members, lag %d; want Empty, 0, 5", stopped.State, stopped.Members, stopped.Lag)
		}
		ends := e.endOffsets(topic)
		commits := e.committed(group, topic)
		for _, pl := range stopped.Partitions {
			want := map[int32]int64{0: 3, 1: 2}[pl.Partition]
			from := pl.Committed
			if pl.NoCommit { // no record reached this partition before the stop
				from = pl.Start
			}
			if pl.Lag != want || pl.End != ends[pl.Partition] || pl.End-from != want {
				t.Errorf("partition %d: committed %d end %d lag %d; want lag %d (end %d)", pl.Partition, pl.Committed, pl.End, pl.Lag, want, ends[pl.Partition])
			}
			if c, ok := commits[pl.Partition]; ok && c != pl.Committed {
				t.Errorf("partition %d: Lag says committed %d, the broker %d", pl.Partition, pl.Committed, c)
			}
		}
		if b.Real() {
			current, end := describeGroup(t, e.brokers, group, topic)
			for _, pl := range stopped.Partitions {
				if c, ok := current[pl.Partition]; (ok && c != pl.Committed) || end[pl.Partition] != pl.End {
					t.Errorf("partition %d: kafka-consumer-groups says current %d end %d; Lag says %d, %d",
						pl.Partition, current[pl.Partition], end[pl.Partition], pl.Committed, pl.End)
				}
			}
		}
	})
}

// A KIP-848 ("consumer" protocol) group, which real Kafka 4.x does not
// describe through the classic DescribeGroups: Lag still reports its
// member and state, and ExecuteReset still refuses to commit into it.
func TestAdminLagNextGenGroup(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		topic, group := e.topic(topics.TopicInventory), e.groupID("inventory")
		e.produce(e.stockBatch(6, 1, 2)...)
		member, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.Balancers(kgo.RangeBalancer()), kgo.ServerSideBalancer(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer member.Close()
		seen := 0
		eventually(t, 60*time.Second, "the member consumed all 12 records", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			seen += member.PollFetches(ctx).NumRecords()
			return seen == 12
		})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := member.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatal(err)
		}

		cl := e.adminClient()
		lags, err := admin.Lag(ctx, cl, []string{group}, "")
		if err != nil {
			t.Fatal(err)
		}
		g := lags[0]
		if g.Members != 1 || g.State != "Stable" || g.Lag != 0 || len(g.Partitions) != partitions {
			t.Errorf("next-gen group: members %d, state %s, lag %d, %d partitions; want 1, Stable, 0, %d", g.Members, g.State, g.Lag, len(g.Partitions), partitions)
		}
		plan, err := admin.PlanReset(ctx, cl, group, admin.ResetSpec{Mode: admin.ToEarliest})
		if err != nil {
			t.Fatal(err)
		}
		var live *admin.LiveGroupError
		if err := admin.ExecuteReset(ctx, cl, plan); !errors.As(err, &live) || live.Members != 1 {
			t.Errorf("ExecuteReset on the live next-gen group = %v, want a LiveGroupError", err)
		}
	})
}
