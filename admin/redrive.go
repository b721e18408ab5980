package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topics"
)

// RedriveGroupPrefix starts the default consumer group id of a redrive.
const RedriveGroupPrefix = "shopstream-redrive."

// RedriveOptions configures Redrive.
type RedriveOptions struct {
	// Execute writes the records and commits the redrive group's offsets.
	// Without it Redrive is a dry run: it reports what it would redrive,
	// writes nothing and commits nothing.
	Execute bool
	// ConsumerGroup is the group whose committed offsets on the dead-letter
	// topic mark how far redrive has gone. Empty means RedriveGroupID(f).
	// It must not be a group with live members (a processor group).
	ConsumerGroup string
}

// RedriveGroupID returns the default consumer group of a redrive with
// filter f: "shopstream-redrive." + the group filter's short name, or "all"
// without one, then ".class=C", ".key=K" and ".since=T" for each other
// criterion that is set.
//
// Every distinct filter has its own group because a run commits past every
// record it read, selected or not: a run for order-crm must not move the
// position of a run for all groups (which would then never redrive the
// order-email records the order-crm run passed over), and a run for
// poison records must not hide the permanent ones from a later run.
// A --since given as a duration resolves to a new time, so a new group, on
// every run; pass a fixed time (or ConsumerGroup) to continue such a run.
func RedriveGroupID(f Filter) string {
	name := "all"
	if f.Group != "" {
		name = strings.TrimPrefix(f.Group, shopstreamGroupPrefix)
	}
	id := RedriveGroupPrefix + name
	if f.ErrorClass != "" {
		id += ".class=" + f.ErrorClass
	}
	if f.Key != "" {
		id += ".key=" + f.Key
	}
	if !f.Since.IsZero() {
		id += ".since=" + f.Since.UTC().Format(time.RFC3339Nano)
	}
	return id
}

// RedriveReport says what a Redrive read, selected and wrote.
type RedriveReport struct {
	// Topic is the dead-letter topic; ConsumerGroup the redrive group.
	Topic         string `json:"topic"`
	ConsumerGroup string `json:"consumer_group"`
	// Executed is false for a dry run.
	Executed bool `json:"executed"`
	// From is where reading started per dead-letter partition: the
	// group's committed offset, or the partition's start. Until is the end
	// offset reading stopped at.
	From  map[int32]int64 `json:"from"`
	Until map[int32]int64 `json:"until"`
	// Read counts the records read; Selected those the filter selected.
	Read     int `json:"read"`
	Selected int `json:"selected"`
	// Redriven counts the records written and acknowledged (0 in a dry
	// run); Skipped the selected records that cannot be redriven (their
	// Skipped field says why); Failed the writes that failed; Missing the
	// dead letters written without the original's value whose original
	// could not be read back (their Missing field says why; counted in a
	// dry run too).
	Redriven int `json:"redriven"`
	Skipped  int `json:"skipped"`
	Failed   int `json:"failed"`
	Missing  int `json:"missing"`
	// Records has one entry per selected record, in dead-letter order.
	Records []RedriveRecord `json:"records"`
	// Committed is the redrive group's new offset per dead-letter partition
	// (empty in a dry run).
	Committed map[int32]int64 `json:"committed,omitempty"`
}

// RedriveRecord is one selected dead letter and where it went.
type RedriveRecord struct {
	DLQPartition int32  `json:"dlq_partition"`
	DLQOffset    int64  `json:"dlq_offset"`
	Key          string `json:"key"`
	// Group is the group that failed it, the new record's
	// shopstream.redrive.group.
	Group      string `json:"group"`
	ErrorClass string `json:"error_class"`
	// Where the failed record was read.
	OriginalTopic     string `json:"original_topic"`
	OriginalPartition int32  `json:"original_partition"`
	OriginalOffset    int64  `json:"original_offset"`
	// RedriveCount is the new record's shopstream.redrive.count.
	RedriveCount int `json:"redrive_count"`
	// ValueOmitted is set for a dead letter written without the original's
	// value (shopstream.value.omitted): the record written is the original,
	// read back from OriginalTopic, OriginalPartition and OriginalOffset.
	ValueOmitted bool `json:"value_omitted,omitempty"`
	// Topic, Partition and Offset locate the new record: the original
	// topic and partition; Offset is -1 until written (always in a dry run).
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	// Skipped says why the record cannot be redriven; Missing why the
	// original of a ValueOmitted dead letter could not be read back; Error
	// why its write failed.
	Skipped string `json:"skipped,omitempty"`
	Missing string `json:"missing,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Redrive writes the dead letters of dlqTopic that f selects back to their
// original topic and partition: the original key and value, the original
// headers without any shopstream.* header, plus shopstream.redrive.group
// (the shopstream.group that failed it: only that group processes the
// record, the others count it filtered) and shopstream.redrive.count (one
// more than the dead letter carried). The record gets a new timestamp, so
// the source topic's retention does not delete it before it is consumed.
//
// A dead letter written without the original's value (ValueOmitted: it was
// too large for Kafka with it) is redriven from the original itself, read
// back read_committed from its original topic, partition and offset: its
// key, value and headers, with the redrive headers set as above (the count
// continues from the original's own, which such a dead letter does not
// carry). Its key must be the dead letter's, and its value as long as
// shopstream.value.omitted says. It is written in a batch of its own, so
// that only the topic's max.message.bytes bounds it, as it bounded the
// original (one within a few dozen bytes of it may be refused with the
// redrive headers added: a failed write). If the original is gone (below the
// partition's start offset, removed by compaction, or another record at
// that offset), nothing is written for it: its Missing field says why,
// and it stops the commit like a failed write, so every later run tries it
// again. The originals are read in a dry run too.
//
// Redrive reads from the redrive consumer group's committed offsets (or the
// partition start) to the end offsets it has when called, so a record is
// redriven once per filter and a later run continues where the last one
// stopped. With opts.Execute the writes are produced with acks=all, and
// only after they are acknowledged are the group's offsets committed (per
// partition up to the first failed write or missing original, so that
// record is redriven by the next run; records after it in the same
// partition may be redriven twice, which the groups' fence and dedupe
// absorb). Without Execute, nothing is written or committed.
//
// Two runs of the same filter at the same time may both redrive a record:
// Kafka does not lock a group that has no members.
func Redrive(ctx context.Context, cl *kgo.Client, dlqTopic string, f Filter, opts RedriveOptions) (RedriveReport, error) {
	rep := RedriveReport{Topic: dlqTopic, Executed: opts.Execute, ConsumerGroup: opts.ConsumerGroup, Records: []RedriveRecord{}}
	if rep.ConsumerGroup == "" {
		rep.ConsumerGroup = RedriveGroupID(f)
	}
	if err := ValidateDLQTopic(dlqTopic); err != nil {
		return rep, err
	}
	if err := f.Validate(); err != nil {
		return rep, err
	}
	if err := requireTopic(ctx, cl, dlqTopic); err != nil {
		return rep, err
	}
	adm := kadm.NewClient(cl) // not closed: that would close cl
	if opts.Execute {
		if err := redriveGroupIdle(ctx, adm, rep.ConsumerGroup); err != nil {
			return rep, err
		}
	}
	starts, ends, err := dlqBounds(ctx, adm, dlqTopic)
	if err != nil {
		return rep, err
	}
	committed, err := redriveCommitted(ctx, adm, rep.ConsumerGroup, dlqTopic)
	if err != nil {
		return rep, err
	}
	rep.From, rep.Until = map[int32]int64{}, ends
	for p, start := range starts {
		from := start // no commit, or one below the start: retention deleted what it pointed at
		if c, ok := committed[p]; ok && c > start {
			from = c
		}
		rep.From[p] = min(from, ends[p])
	}

	type pick struct {
		rec *kgo.Record // what is written back: the dead letter, or the original it omitted
		out *RedriveRecord
	}
	var picks []pick
	var raws []*kgo.Record
	var omittedBytes []int64 // per record: DeadLetter.ValueOmittedBytes
	err = readDLQRange(ctx, cl, dlqTopic, rep.From, ends, func(r *kgo.Record) {
		rep.Read++
		d := parseDeadLetter(r)
		if !f.Match(&d) {
			return
		}
		rep.Selected++
		rep.Records = append(rep.Records, RedriveRecord{
			DLQPartition: r.Partition, DLQOffset: r.Offset, Key: string(r.Key),
			Group: d.Group, ErrorClass: d.ErrorClass,
			OriginalTopic: d.OriginalTopic, OriginalPartition: d.OriginalPartition, OriginalOffset: d.OriginalOffset,
			RedriveCount: d.RedriveCount + 1, ValueOmitted: d.ValueOmitted,
			Topic: d.OriginalTopic, Partition: d.OriginalPartition, Offset: -1,
			Skipped: unredrivable(&d),
		})
		raws = append(raws, r)
		omittedBytes = append(omittedBytes, d.ValueOmittedBytes)
	})
	if err != nil {
		return rep, err
	}
	if err := checkTargets(ctx, cl, rep.Records); err != nil {
		return rep, err
	}
	if err := readBackOmitted(ctx, cl, adm, rep.Records, raws, omittedBytes); err != nil {
		return rep, err
	}
	for i := range rep.Records {
		switch {
		case rep.Records[i].Skipped != "":
			rep.Skipped++
		case rep.Records[i].Missing != "":
			rep.Missing++
		default:
			picks = append(picks, pick{raws[i], &rep.Records[i]})
		}
	}
	if !opts.Execute {
		return rep, nil
	}

	// Write, and wait for every acknowledgement (acks=all). An original
	// read back for a dead letter without its value was too large to
	// dead-letter whole and may be above kgo's batch limit (1,000,012 bytes
	// before compression) although Kafka holds it: the topic's
	// max.message.bytes bounds a batch as sent, compressed. So it is written
	// alone, in a batch of its own that only a produce request's own limit
	// bounds, and the broker decides. The others are batched as usual, and
	// the dead letters' order is kept.
	if len(picks) > 0 {
		producer := func(opts ...kgo.Opt) (*kgo.Client, error) {
			return kgo.NewClient(append(connOpts(cl), append([]kgo.Opt{
				kgo.RecordPartitioner(kgo.ManualPartitioner()),
				kgo.RequiredAcks(kgo.AllISRAcks()),
			}, opts...)...)...)
		}
		pr, err := producer()
		if err != nil {
			return rep, fmt.Errorf("redrive producer: %w", err)
		}
		defer pr.Close()
		write := func(c *kgo.Client, ps []pick) {
			if len(ps) == 0 {
				return
			}
			recs := make([]*kgo.Record, len(ps))
			outOf := make(map[*kgo.Record]*RedriveRecord, len(ps))
			for i, p := range ps {
				recs[i] = &kgo.Record{
					Topic:     p.out.Topic,
					Partition: p.out.Partition,
					Key:       p.rec.Key,
					Value:     p.rec.Value,
					Headers:   redriveHeaders(p.rec.Headers, p.out.Group, p.out.RedriveCount),
				}
				outOf[recs[i]] = p.out
			}
			// ProduceSync returns results in completion order, not input order.
			for _, res := range c.ProduceSync(ctx, recs...) {
				out := outOf[res.Record]
				if res.Err != nil {
					out.Error = res.Err.Error()
					rep.Failed++
					continue
				}
				out.Partition, out.Offset = res.Record.Partition, res.Record.Offset
				rep.Redriven++
			}
		}
		alone := pr // for the originals read back
		if slices.ContainsFunc(picks, func(p pick) bool { return p.out.ValueOmitted }) {
			// 100 MiB: Kafka's socket.request.max.bytes default, and kgo's
			// limit on a request (BrokerMaxWriteBytes).
			if alone, err = producer(kgo.ProducerBatchMaxBytes(100 << 20)); err != nil {
				return rep, fmt.Errorf("redrive producer: %w", err)
			}
			defer alone.Close()
		}
		var batch []pick
		for _, p := range picks {
			if !p.out.ValueOmitted {
				batch = append(batch, p)
				continue
			}
			write(pr, batch)
			batch = nil
			write(alone, []pick{p})
		}
		write(pr, batch)
	}

	// Commit only now: every write before a partition's commit point is
	// acknowledged. A partition stops at its first failed record or missing
	// original.
	commitAt := map[int32]int64{}
	for p, from := range rep.From {
		if ends[p] > from {
			commitAt[p] = ends[p]
		}
	}
	for _, r := range rep.Records {
		if (r.Error != "" || r.Missing != "") && r.DLQOffset < commitAt[r.DLQPartition] {
			commitAt[r.DLQPartition] = r.DLQOffset
		}
	}
	offs := kadm.Offsets{}
	for p, at := range commitAt {
		if at > rep.From[p] {
			offs.AddOffset(dlqTopic, p, at, -1)
		}
	}
	if len(offs) > 0 {
		err := retryGroupOp(ctx, func() error {
			resp, err := adm.CommitOffsets(ctx, rep.ConsumerGroup, offs)
			if err == nil {
				err = resp.Error()
			}
			return err
		})
		if err != nil {
			return rep, fmt.Errorf("redrive wrote %d records but could not commit group %s on %s: %w; the next run redrives them again",
				rep.Redriven, rep.ConsumerGroup, dlqTopic, err)
		}
		rep.Committed = map[int32]int64{}
		offs.Each(func(o kadm.Offset) { rep.Committed[o.Partition] = o.At })
	}
	var problems []string
	if rep.Failed > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d writes failed (first: %s)",
			rep.Failed, len(picks), firstRedriveProblem(rep.Records, func(r *RedriveRecord) string { return r.Error })))
	}
	if rep.Missing > 0 {
		problems = append(problems, fmt.Sprintf("%d dead letters without their value were not redriven: the original could not be read back (first: %s)",
			rep.Missing, firstRedriveProblem(rep.Records, func(r *RedriveRecord) string { return r.Missing })))
	}
	if len(problems) > 0 {
		return rep, fmt.Errorf("redrive: %s; the group's offsets stop before them, so the next run retries them",
			strings.Join(problems, "; "))
	}
	return rep, nil
}

// unredrivable says why d cannot be redriven, or "".
func unredrivable(d *DeadLetter) string {
	switch {
	case d.OriginalTopic == "":
		return "no " + topics.HeaderOriginalTopic + " header: the original topic is unknown"
	case d.OriginalPartition < 0:
		return "no valid " + topics.HeaderOriginalPartition + " header: the original partition is unknown"
	case d.Group == "":
		return "no " + topics.HeaderGroup + " header: the group that must process it is unknown"
	case d.ValueOmitted && d.OriginalOffset < 0:
		return "no valid " + topics.HeaderOriginalOffset + " header: its value was omitted and the original cannot be found"
	case strings.HasSuffix(d.OriginalTopic, topics.DLQSuffix):
		return "its original topic " + d.OriginalTopic + " is a dead-letter topic"
	}
	return ""
}

// checkTargets marks the records whose original topic or partition no
// longer exists as skipped.
func checkTargets(ctx context.Context, cl *kgo.Client, recs []RedriveRecord) error {
	want := map[string]bool{}
	for _, r := range recs {
		if r.Skipped == "" {
			want[r.Topic] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	md, err := topicMetadata(ctx, cl, slices.Sorted(maps.Keys(want)))
	if err != nil {
		return fmt.Errorf("the original topics: %w", err)
	}
	parts := map[string]int32{} // topic → partition count; absent: unknown topic
	for t, td := range md.topics {
		parts[t] = int32(len(td.Partitions))
	}
	for i := range recs {
		r := &recs[i]
		if r.Skipped != "" {
			continue
		}
		n, ok := parts[r.Topic]
		switch {
		case !ok:
			r.Skipped = "original topic " + r.Topic + " does not exist"
		case r.Partition >= n:
			r.Skipped = fmt.Sprintf("original partition %d does not exist (%s has %d)", r.Partition, r.Topic, n)
		}
	}
	return nil
}

// redriveHeaders keeps the original headers, drops every shopstream.*
// header (the dead-letter ones, and an earlier redrive's group and count:
// the processor reads the first header of a name, so they are replaced, not
// appended to) and adds the redrive group and count.
func redriveHeaders(hs []kgo.RecordHeader, group string, count int) []kgo.RecordHeader {
	out := make([]kgo.RecordHeader, 0, len(hs)+2)
	for _, h := range hs {
		if !strings.HasPrefix(h.Key, shopstreamGroupPrefix) {
			out = append(out, h)
		}
	}
	return append(out,
		kgo.RecordHeader{Key: topics.HeaderRedriveGroup, Value: []byte(group)},
		kgo.RecordHeader{Key: topics.HeaderRedriveCount, Value: []byte(strconv.Itoa(count))},
	)
}

// redriveGroupIdle refuses a group with live members: committing its
// offsets would fail or fight its consumers.
func redriveGroupIdle(ctx context.Context, adm *kadm.Client, group string) error {
	var g kadm.DescribedGroup
	err := retryGroupOp(ctx, func() error {
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return err
		}
		g = gs[group]
		if errors.Is(g.Err, kerr.GroupIDNotFound) {
			return nil // never used: no members
		}
		return g.Err
	})
	if err != nil {
		return fmt.Errorf("describe redrive group %s: %w", group, err)
	}
	if len(g.Members) > 0 {
		return fmt.Errorf("consumer group %s has %d live members (state %s): it is not a redrive group; leave --consumer-group empty or name a group no consumer uses",
			group, len(g.Members), g.State)
	}
	return nil
}

// redriveCommitted returns the group's committed offsets on topic.
func redriveCommitted(ctx context.Context, adm *kadm.Client, group, topic string) (map[int32]int64, error) {
	var resp kadm.OffsetResponses
	err := retryGroupOp(ctx, func() (err error) {
		resp, err = adm.FetchOffsets(ctx, group)
		return err
	})
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of redrive group %s: %w", group, err)
	}
	out := map[int32]int64{}
	var ferr error
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic != topic {
			return
		}
		if o.Err != nil && ferr == nil {
			ferr = fmt.Errorf("committed offset of redrive group %s on %s partition %d: %w", group, topic, o.Partition, o.Err)
		}
		if o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out, ferr
}

// retryGroupOp runs op until it succeeds, fails for good, or ctx ends:
// right after a broker starts, or while a coordinator moves, group requests
// fail with retriable errors (COORDINATOR_NOT_AVAILABLE) for a while.
func retryGroupOp(ctx context.Context, op func() error) error {
	wait := 50 * time.Millisecond
	for {
		err := op()
		if err == nil || !kerr.IsRetriable(err) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// firstRedriveProblem describes the first record for which problem (its
// Error or Missing) is set.
func firstRedriveProblem(recs []RedriveRecord, problem func(*RedriveRecord) string) string {
	for i := range recs {
		if p := problem(&recs[i]); p != "" {
			r := &recs[i]
			return fmt.Sprintf("dead letter %d@%d to %s partition %d: %s", r.DLQPartition, r.DLQOffset, r.Topic, r.Partition, p)
		}
	}
	return ""
}
