package integration

import (
	"context"
	"encoding/base64"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/topics"
)

// deadLetterOf builds, for the produced record src, the dead letter the
// processor writes to dlqTopic's partition: with omitted, as when the copy
// was too large for Kafka — no value, none of src's headers (not even an
// earlier redrive's), the dead-letter headers of the contract and
// shopstream.value.omitted holding the size of src's value; without,
// src's value and headers too.
func deadLetterOf(dlqTopic string, partition int32, src *kgo.Record, group string, omitted bool) *kgo.Record {
	dl := &kgo.Record{Topic: dlqTopic, Partition: partition, Key: src.Key}
	if !omitted {
		dl.Value = src.Value
		dl.Headers = append(dl.Headers, src.Headers...)
	}
	for _, kv := range [][2]string{
		{topics.HeaderOriginalTopic, src.Topic},
		{topics.HeaderOriginalPartition, strconv.Itoa(int(src.Partition))},
		{topics.HeaderOriginalOffset, strconv.FormatInt(src.Offset, 10)},
		{topics.HeaderOriginalTimestamp, strconv.FormatInt(src.Timestamp.UnixMilli(), 10)},
		{topics.HeaderGroup, group},
		{topics.HeaderError, "crm 422: contact rejected"},
		{topics.HeaderErrorClass, topics.ErrorClassPermanent},
		{topics.HeaderAttempts, "1"},
		{topics.HeaderFailedAt, time.Now().UTC().Format(time.RFC3339Nano)},
	} {
		dl.Headers = append(dl.Headers, kgo.RecordHeader{Key: kv[0], Value: []byte(kv[1])})
	}
	if omitted {
		dl.Headers = append(dl.Headers, kgo.RecordHeader{Key: topics.HeaderValueOmitted, Value: []byte(strconv.Itoa(len(src.Value)))})
	}
	return dl
}

// produceLarge writes records to the partitions set on them with kgo's
// batch limit (1,000,012 bytes before compression) raised: the broker's
// max.message.bytes (1,048,588 by default) alone decides, on the batch as
// sent, compressed with codec.
func (e *env) produceLarge(codec kgo.CompressionCodec, recs ...*kgo.Record) {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(16<<20), kgo.ProducerBatchCompression(codec))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("produce large records: %v", err)
	}
}

// produceTxn writes records to the partitions set on them in one committed
// transaction, as the bridge writes the source topics.
func (e *env) produceTxn(recs ...*kgo.Record) {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID(e.prefix+"omitted-txn"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		e.t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("produce in transaction: %v", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		e.t.Fatalf("commit transaction: %v", err)
	}
}

// readLog reads every record of topic from each partition's start to its
// end offset; unlike readAll it counts offsets, not records, so deleted
// records and transaction markers do not make it wait for more.
func (e *env) readLog(topic string) []*kgo.Record {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	starts, err := e.admin.ListStartOffsets(ctx, topic)
	if err != nil {
		e.t.Fatal(err)
	}
	left := map[int32]int64{} // partition → end, while unread
	assign := map[int32]kgo.Offset{}
	for p, end := range e.endOffsets(topic) {
		if s, ok := starts.Lookup(topic, p); ok && s.Offset < end {
			left[p], assign[p] = end, kgo.NewOffset().At(s.Offset)
		}
	}
	if len(left) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign}))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			e.t.Fatalf("read %s: partitions %v unfinished: %v", topic, left, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
	return out
}

// firstErrors lists the records' write errors and missing originals.
func firstErrors(rep admin.RedriveReport) []string {
	var out []string
	for _, r := range rep.Records {
		if r.Error != "" || r.Missing != "" {
			out = append(out, r.Key+": "+r.Error+r.Missing)
		}
	}
	return out
}

// shopstreamHeaders lists r's shopstream.* headers as key=value, in order.
func shopstreamHeaders(r *kgo.Record) []string {
	var out []string
	for _, h := range r.Headers {
		if strings.HasPrefix(h.Key, "shopstream.") {
			out = append(out, h.Key+"="+string(h.Value))
		}
	}
	return out
}

// A dead letter written without its value (too large for Kafka) is listed
// as such, with the value's size, and redrive writes the original back —
// read from the source topic, its key, value and own headers, on its
// original partition, with the redrive headers replacing an earlier
// redrive's (whose count the dead letter no longer carries) — next to an
// ordinary dead letter. The originals are as large as those the processor
// dead-letters slim: above kgo's default batch limit uncompressed (but
// under max.message.bytes), or far above it but compressible.
func TestRedriveValueOmitted(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicOrder)
		orderTopic := e.topic(topics.TopicOrder)
		dlqTopic := topics.DLQTopic(orderTopic)
		crmID, emailID := e.groupID("order-crm"), e.groupID("order-email")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cl := e.adminClient()

		withNote := func(r *kgo.Record, note string) {
			r.Value = []byte(strings.Replace(string(r.Value), `"email":"a@example.com"`, `"email":"a@example.com","note":"`+note+`"`, 1))
		}
		// 1,020,000 bytes that do not compress (base64 of random bytes; cut
		// short, so not JSON: redrive copies bytes, it does not parse them).
		noise := make([]byte, 765000)
		rnd := rand.New(rand.NewPCG(1, 2))
		for i := range noise {
			noise[i] = byte(rnd.Uint32())
		}
		big := e.order("o-big", "evt-big")
		big.Partition = 2
		withNote(big, base64.StdEncoding.EncodeToString(noise))
		big.Value = big.Value[:1020000-1]
		big.Value = append(big.Value, '}')
		big.Headers = []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-big-01")}}
		e.produceLarge(kgo.NoCompression(), big)
		// 2 MiB that snappy shrinks far below max.message.bytes.
		huge := e.order("o-huge", "evt-huge")
		huge.Partition = 3
		withNote(huge, strings.Repeat("x", 2<<20))
		e.produceLarge(kgo.SnappyCompression(), huge)
		plain := e.order("o-plain", "evt-plain")
		plain.Partition = 2
		e.produceTo(plain)
		// Redriven once before (for order-email), and written in a
		// transaction as the bridge writes: read_committed must find it.
		again := e.order("o-again", "evt-again")
		again.Partition = 4
		again.Headers = []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-again-01")},
			{Key: topics.HeaderRedriveGroup, Value: []byte(emailID)}, {Key: topics.HeaderRedriveCount, Value: []byte("1")}}
		e.produceTxn(again)
		// The broker writes the commit markers after EndTransaction returns;
		// until then the record is above the last stable offset.
		eventually(t, 30*time.Second, "o-again below the last stable offset", func() bool {
			lso, err := e.admin.ListCommittedOffsets(ctx, orderTopic)
			o, ok := lso.Lookup(orderTopic, again.Partition)
			return err == nil && ok && o.Err == nil && o.Offset > again.Offset
		})

		e.produceTo(
			deadLetterOf(dlqTopic, 0, big, crmID, true),
			deadLetterOf(dlqTopic, 0, plain, crmID, false),
			deadLetterOf(dlqTopic, 0, huge, crmID, true),
			deadLetterOf(dlqTopic, 0, again, emailID, true),
		)
		src := map[string]*kgo.Record{"o-big": big, "o-huge": huge, "o-plain": plain, "o-again": again}

		dls, err := admin.ListDLQ(ctx, cl, dlqTopic, admin.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) != 4 {
			t.Fatalf("ListDLQ: %d dead letters, want 4", len(dls))
		}
		for _, d := range dls {
			s := src[string(d.Key)]
			omitted := string(d.Key) != "o-plain"
			if len(d.Problems) > 0 || d.ValueOmitted != omitted || d.OriginalOffset != s.Offset || d.OriginalPartition != s.Partition {
				t.Errorf("%s: omitted %v, original %d@%d, problems %v; want omitted %v, %d@%d", d.Key, d.ValueOmitted,
					d.OriginalPartition, d.OriginalOffset, d.Problems, omitted, s.Partition, s.Offset)
			}
			if omitted && (d.ValueOmittedBytes != int64(len(s.Value)) || len(d.Value) != 0) {
				t.Errorf("%s: value omitted bytes %d (value %d bytes on the DLQ), want %d", d.Key, d.ValueOmittedBytes, len(d.Value), len(s.Value))
			}
		}

		redriveGroup := e.prefix + "shopstream-redrive.all"
		opts := admin.RedriveOptions{ConsumerGroup: redriveGroup}
		orderEnds := e.endOffsets(orderTopic)
		dry, err := admin.Redrive(ctx, cl, dlqTopic, admin.Filter{}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if dry.Selected != 4 || dry.Missing != 0 || dry.Skipped != 0 || dry.Redriven != 0 {
			t.Errorf("dry run: %+v", dry)
		}
		for _, rr := range dry.Records {
			if rr.ValueOmitted != (rr.Key != "o-plain") || rr.Missing != "" || rr.Offset != -1 {
				t.Errorf("dry run record: %+v", rr)
			}
		}
		if got := e.endOffsets(orderTopic); !maps.Equal(got, orderEnds) {
			t.Errorf("a dry run wrote: order topic ends %v, were %v", got, orderEnds)
		}
		if c := e.committedOrNone(redriveGroup, dlqTopic); len(c) != 0 {
			t.Errorf("a dry run committed %v", c)
		}

		opts.Execute = true
		rep, err := admin.Redrive(ctx, cl, dlqTopic, admin.Filter{}, opts)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Redriven != 4 || rep.Missing != 0 || rep.Failed != 0 {
			t.Fatalf("redrive: %v; report %+v", firstErrors(rep), rep)
		}
		if c, ends := e.committedOrNone(redriveGroup, dlqTopic), e.endOffsets(dlqTopic); !sameNonZero(c, ends) {
			t.Errorf("redrive group committed %v, want the DLQ ends %v", c, ends)
		}
		written := map[string]admin.RedriveRecord{}
		for _, rr := range rep.Records {
			written[rr.Key] = rr
		}
		back := map[string]*kgo.Record{}
		for _, r := range e.readLog(orderTopic) {
			if w, ok := written[string(r.Key)]; ok && r.Partition == w.Partition && r.Offset == w.Offset {
				back[string(r.Key)] = r
			}
		}
		for key, want := range map[string]struct {
			group, count, traceparent string
		}{
			"o-big":   {crmID, "1", "00-big-01"},
			"o-huge":  {crmID, "1", ""},
			"o-plain": {crmID, "1", ""},
			"o-again": {emailID, "2", "00-again-01"},
		} {
			r, s := back[key], src[key]
			if r == nil {
				t.Errorf("%s: not found at the reported %s/%d@%d", key, written[key].Topic, written[key].Partition, written[key].Offset)
				continue
			}
			if r.Partition != s.Partition || string(r.Value) != string(s.Value) {
				t.Errorf("%s: redriven to partition %d with a %d-byte value; want partition %d and the original %d-byte value",
					key, r.Partition, len(r.Value), s.Partition, len(s.Value))
			}
			wantShop := []string{topics.HeaderRedriveGroup + "=" + want.group, topics.HeaderRedriveCount + "=" + want.count}
			if got := shopstreamHeaders(r); !slices.Equal(got, wantShop) {
				t.Errorf("%s: shopstream headers %v, want %v", key, got, wantShop)
			}
			if want.traceparent != "" && !hasHeader(r, "traceparent", want.traceparent) {
				t.Errorf("%s: lost its own header: %v", key, r.Headers)
			}
		}
	})
}

// A dead letter without its value whose original is gone — deleted below
// the partition's start, or another record at its offset — is not
// redriven: the report names the original's topic, partition and offset
// and why, the redrive group's offset stays before it on its DLQ
// partition (so every later run tries it again), and everything else is
// redriven.
func TestRedriveValueOmittedOriginalGone(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		e := newEnv(t, b, topics.TopicOrder)
		orderTopic := e.topic(topics.TopicOrder)
		dlqTopic := topics.DLQTopic(orderTopic)
		crmID, emailID := e.groupID("order-crm"), e.groupID("order-email")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cl := e.adminClient()

		o1, o2, o3 := e.order("o-1", "evt-1"), e.order("o-2", "evt-2"), e.order("o-3", "evt-3")
		o4, o5, o6 := e.order("o-4", "evt-4"), e.order("o-5", "evt-5"), e.order("o-6", "evt-6")
		o1.Partition, o2.Partition, o3.Partition = 1, 1, 1 // offsets 0, 1, 2
		o4.Partition, o5.Partition, o6.Partition = 3, 5, 5
		e.produceTo(o1, o2, o3, o4, o5, o6)
		del := kadm.Offsets{}
		del.Add(kadm.Offset{Topic: orderTopic, Partition: 1, At: 2, LeaderEpoch: -1})
		resp, err := e.admin.DeleteRecords(ctx, del)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("delete records below 2 on partition 1: %v", err)
		}
		// A dead letter for "o-x" whose original offset holds o-4: not the
		// record that failed (the topic was re-created, say).
		ox := *o4
		ox.Key = []byte("o-x")
		e.produceTo(
			deadLetterOf(dlqTopic, 0, o1, crmID, true), // 0@0: gone
			deadLetterOf(dlqTopic, 0, o3, crmID, true), // 0@1: there
			deadLetterOf(dlqTopic, 1, o5, crmID, false),
			deadLetterOf(dlqTopic, 1, &ox, crmID, true), // 1@1: another record
			deadLetterOf(dlqTopic, 1, o6, crmID, false),
			deadLetterOf(dlqTopic, 2, o3, emailID, true), // 2@0: there
		)
		orderEnds := e.endOffsets(orderTopic)

		redriveGroup := e.prefix + "shopstream-redrive.all"
		opts := admin.RedriveOptions{ConsumerGroup: redriveGroup}
		dry, err := admin.Redrive(ctx, cl, dlqTopic, admin.Filter{}, opts)
		if err != nil {
			t.Fatalf("a dry run reports lost originals without failing: %v", err)
		}
		if dry.Missing != 2 || dry.Selected != 6 {
			t.Errorf("dry run: missing %d of %d selected, want 2 of 6: %+v", dry.Missing, dry.Selected, dry.Records)
		}

		check := func(what string, rep admin.RedriveReport, err error, wantRead, wantRedriven int) {
			t.Helper()
			// The error names the first missing original it read (the DLQ
			// partitions are read in parallel): either one.
			if err == nil || !strings.Contains(err.Error(), "2 dead letters without their value were not redriven") ||
				!strings.Contains(err.Error(), orderTopic+"/1@0") && !strings.Contains(err.Error(), orderTopic+"/3@0") ||
				!strings.Contains(err.Error(), "next run retries") {
				t.Errorf("%s: err = %v; want it to name %s/1@0 or /3@0 and say the next run retries", what, err, orderTopic)
			}
			if rep.Read != wantRead || rep.Missing != 2 || rep.Redriven != wantRedriven || rep.Failed != 0 {
				t.Errorf("%s: read %d missing %d redriven %d failed %d; want %d, 2, %d, 0", what, rep.Read, rep.Missing, rep.Redriven, rep.Failed, wantRead, wantRedriven)
			}
			missing := map[string]string{}
			for _, rr := range rep.Records {
				if rr.Missing != "" {
					missing[strconv.Itoa(int(rr.DLQPartition))+"@"+strconv.FormatInt(rr.DLQOffset, 10)] = rr.Missing
					if rr.Offset != -1 {
						t.Errorf("%s: %s has Missing %q and was written to %d@%d", what, rr.Key, rr.Missing, rr.Partition, rr.Offset)
					}
				}
			}
			for dl, want := range map[string][]string{
				"0@0": {orderTopic + "/1@0", "is gone", "starts at offset 2"},
				"1@1": {orderTopic + "/3@0", "another record", `"o-4"`, `"o-x"`},
			} {
				for _, w := range want {
					if !strings.Contains(missing[dl], w) {
						t.Errorf("%s: dead letter %s: missing %q, want it to say %q", what, dl, missing[dl], w)
					}
				}
			}
			// Each partition stops at its missing original; the one without
			// one is committed to its end.
			if c := e.committedOrNone(redriveGroup, dlqTopic); !maps.Equal(c, map[int32]int64{1: 1, 2: 1}) {
				t.Errorf("%s: redrive group committed %v, want partition 1 at 1 (its missing original), 2 at its end 1, nothing on 0", what, c)
			}
		}

		opts.Execute = true
		rep, err := admin.Redrive(ctx, cl, dlqTopic, admin.Filter{}, opts)
		check("first run", rep, err, 6, 4)
		// o-3 twice (for order-crm and order-email), o-5, o-6; nothing else.
		var keys []string
		for _, r := range e.readLog(orderTopic) {
			if r.Offset >= orderEnds[r.Partition] {
				keys = append(keys, string(r.Key))
			}
		}
		slices.Sort(keys)
		if want := []string{"o-3", "o-3", "o-5", "o-6"}; !slices.Equal(keys, want) {
			t.Errorf("written to the order topic: %v, want %v", keys, want)
		}

		// The next run reads from the missing ones again: still missing,
		// still not committed past; the records after them on their
		// partitions are redriven again (the groups' dedupe absorbs that).
		rep, err = admin.Redrive(ctx, cl, dlqTopic, admin.Filter{}, opts)
		check("second run", rep, err, 4, 2)
	})
}
