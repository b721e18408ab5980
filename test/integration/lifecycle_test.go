package integration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// While the DLQ cannot be written, the partition does not commit past the
// failed record, even though later records of other keys finish; once the
// DLQ accepts the write, the commit moves on.
func TestDLQWriteFailureBlocksCommit(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnvSeeded(t, b, 1, topics.TopicInventory) // no DLQ topic yet

		poison := &kgo.Record{Topic: e.topic(topics.TopicInventory), Partition: 0, Key: []byte("SKU-A"), Value: []byte("garbage")}
		good := e.stock("SKU-B", 1, 5)
		e.produceTo(poison, good)

		s := newSink()
		opts := e.options()
		opts.DLQTimeout = time.Second
		opts.ClientOpts = []kgo.Opt{kgo.MetadataMinAge(100 * time.Millisecond)} // see the new DLQ topic soon
		r := e.start(opts, e.inventoryGroup(s.handler(nil)))
		eventually(t, 30*time.Second, "the good record applied and two DLQ write failures", func() bool {
			return s.total() == 1 && metric(t, r, "shopstream_dlq_write_failures_total", nil) >= 2
		})
		// Several commit intervals (50ms) have passed since the good record
		// finished: the commit must still not have moved past offset 0.
		if got := e.committed(e.groupID("inventory"), e.topic(topics.TopicInventory)); got[0] > 0 {
			t.Fatalf("committed offset %d while the record at offset 0 is not on its DLQ", got[0])
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := e.admin.CreateTopic(ctx, 1, -1, nil, topics.DLQTopic(e.topic(topics.TopicInventory))); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, "commit to the end after the DLQ write", func() bool {
			return e.committed(e.groupID("inventory"), e.topic(topics.TopicInventory))[0] == 2
		})
		if n := len(e.readAll(topics.DLQTopic(e.topic(topics.TopicInventory)))); n != 1 {
			t.Errorf("DLQ has %d records, want 1", n)
		}
	})
}

// checkAppliedOnce asserts every (sku, version) reached the sink exactly
// once and in order.
func checkAppliedOnce(t *testing.T, sinks []*sink, skus, versions int) {
	t.Helper()
	all := map[string][]int64{}
	for _, s := range sinks {
		applied, _, _, overlaps := s.snapshot()
		if overlaps != 0 {
			t.Errorf("%d same-key overlaps", overlaps)
		}
		for k, vs := range applied {
			all[k] = append(all[k], vs...)
		}
	}
	for i := range skus {
		sku := fmt.Sprintf("SKU-%03d", i)
		vs := slices.Clone(all[sku])
		slices.Sort(vs)
		want := make([]int64, versions)
		for v := range want {
			want[v] = int64(v + 1)
		}
		if !slices.Equal(vs, want) {
			t.Errorf("%s applied %v, want each of 1..%d once", sku, vs, versions)
		}
	}
}

// A second member joins mid-stream: cooperative-sticky revokes partitions
// from the first, which drains and commits its finished work before
// releasing them. No version is applied twice and nothing is lost.
func TestRevocationCommitsFinishedWork(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		const skus, versions = 60, 10
		e.produce(e.stockBatch(skus, 1, versions)...)
		var second atomic.Pointer[running]
		s1, s2 := newSink(), newSink()
		// After 50 records the first member holds each call until the second
		// member has joined, so the rebalance happens mid-stream, with records
		// in flight, however fast the machine is.
		g1 := e.inventoryGroup(s1.handler(func(ctx context.Context, _ *topics.Event) error {
			if s1.total() < 50 {
				return nil
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				if r := second.Load(); r != nil && r.proc.Ready(ctx) == nil {
					return nil
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					return errors.New("second member never joined")
				}
				time.Sleep(5 * time.Millisecond)
			}
		}))
		g1.Concurrency = 4
		e.start(e.options(), g1)
		eventually(t, 30*time.Second, "first member applying", func() bool { return s1.total() >= 50 })
		g2 := e.inventoryGroup(s2.handler(nil))
		g2.Concurrency = 4
		second.Store(e.start(e.options(), g2))
		eventually(t, 60*time.Second, "all applied", func() bool { return s1.total()+s2.total() >= skus*versions })
		if s2.total() == 0 {
			t.Error("the second member received no partition")
		}
		checkAppliedOnce(t, []*sink{s1, s2}, skus, versions)
	})
}

// SIGTERM (context cancel) mid-stream: in-flight records finish, finished
// work is committed, the group is left; a restarted processor resumes from
// the commit and nothing is lost or applied twice.
func TestShutdownDrainsCommitsAndRestartResumes(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		const skus, versions = 50, 8
		e.produce(e.stockBatch(skus, 1, versions)...)
		var cancelled atomic.Int32
		gate := make(chan struct{})
		var started atomic.Int32
		s1 := newSink()
		g1 := e.inventoryGroup(s1.handler(func(ctx context.Context, ev *topics.Event) error {
			if started.Add(1) > 100 {
				<-gate // hold in-flight work until shutdown has begun
			}
			time.Sleep(time.Millisecond)
			if ctx.Err() != nil {
				cancelled.Add(1)
			}
			return ctx.Err()
		}))
		g1.Concurrency = 8
		r1 := e.start(e.options(), g1)
		eventually(t, 30*time.Second, "8 records held in flight", func() bool {
			return metric(t, r1, "shopstream_inflight", nil) == 8 && started.Load() >= 108
		})
		stopped := make(chan struct{})
		go func() { r1.stop(t); close(stopped) }()
		// Shutdown has begun when the group stops starting records; release
		// the held ones then: they must be drained, not dropped.
		close(gate)
		<-stopped
		if cancelled.Load() != 0 {
			t.Errorf("%d in-flight records were cancelled instead of drained", cancelled.Load())
		}
		first := s1.total()
		if first < 100 || first >= skus*versions {
			t.Fatalf("first run applied %d records; the test needs a mid-stream stop", first)
		}
		// Everything below the committed offsets was applied by the first run.
		committed := e.committed(e.groupID("inventory"), e.topic(topics.TopicInventory))
		var below int64
		for _, off := range committed {
			below += off
		}
		if below == 0 || below > int64(first) {
			t.Errorf("committed %d records' worth of offsets after %d applied", below, first)
		}

		s2 := newSink()
		r2 := e.start(e.options(), e.inventoryGroup(s2.handler(nil)))
		eventually(t, 60*time.Second, "the rest applied", func() bool { return first+s2.total() >= skus*versions })
		checkAppliedOnce(t, []*sink{s1, s2}, skus, versions)
		// What the first run finished past its commit was re-read and skipped
		// by the fence, not applied again.
		reread := counter(r2, e.groupID("inventory"), e.topic(topics.TopicInventory), processor.OutcomeSkippedStale)
		if want := int64(skus*versions) - below - int64(s2.total()); reread != want {
			t.Errorf("second run skipped %d stale records, want %d (re-read past the commit)", reread, want)
		}
	})
}

// Redis down: the group pauses (never skips the check, never dead-letters)
// and resumes by itself when Redis answers again.
func TestRedisOutagePausesAndResumes(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicInventory)
		const skus = 20
		e.produce(e.stockBatch(skus, 1, 1)...)
		s := newSink()
		r := e.start(e.options(), e.inventoryGroup(s.handler(nil)))
		eventually(t, 30*time.Second, "first batch applied", func() bool { return s.total() == skus })

		e.redis.Stop()
		e.produce(e.stockBatch(skus, 2, 3)...)
		eventually(t, 30*time.Second, "group paused", func() bool {
			return metric(t, r, "shopstream_paused", map[string]string{"group": e.groupID("inventory")}) == 1
		})
		// A SKU the group has applied before is in its fence cache, so its
		// next record (version 2) may reach the sink before the failed
		// Advance pauses the group; the one after it (version 3) waits
		// behind that Advance: nothing runs ahead of a version whose fence
		// write is not done.
		applied, _, _, _ := s.snapshot()
		for sku, vs := range applied {
			for i, v := range vs {
				if v != int64(i+1) || v > 2 {
					t.Fatalf("%s applied %v while Redis was down; want [1] or [1 2]", sku, vs)
				}
			}
		}
		e.redis.Start()
		eventually(t, 60*time.Second, "second batch applied", func() bool { return s.total() == 3*skus })
		eventually(t, 10*time.Second, "group resumed", func() bool {
			return metric(t, r, "shopstream_paused", map[string]string{"group": e.groupID("inventory")}) == 0
		})
		st := r.proc.Stats()[0]
		if st.DeadLettered != 0 || st.SkippedStale != 0 {
			t.Errorf("dead_lettered=%d skipped_stale=%d during a Redis outage, want 0", st.DeadLettered, st.SkippedStale)
		}
		checkAppliedOnce(t, []*sink{s}, skus, 3)
	})
}
