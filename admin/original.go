package admin

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topics"
)

// sourceAt is where a record was read on its original topic.
type sourceAt struct {
	topic     string
	partition int32
	offset    int64
}

func (s sourceAt) String() string { return fmt.Sprintf("%s/%d@%d", s.topic, s.partition, s.offset) }

// readBackOmitted replaces, for each record of recs (not skipped) that was
// dead-lettered without its value, raws[i] with the original read back from
// its original topic, partition and offset, and sets its RedriveCount from
// it. When the original is gone or is not the one that failed (another key,
// or a value of another size than omittedBytes[i], when known), it sets the
// record's Missing instead. An error means nothing could be decided: the
// original topics could not be read.
func readBackOmitted(ctx context.Context, cl *kgo.Client, adm *kadm.Client, recs []RedriveRecord, raws []*kgo.Record, omittedBytes []int64) error {
	var want []sourceAt
	for _, r := range recs {
		if r.ValueOmitted && r.Skipped == "" {
			want = append(want, sourceAt{r.OriginalTopic, r.OriginalPartition, r.OriginalOffset})
		}
	}
	if len(want) == 0 {
		return nil
	}
	found, gone, err := readOriginals(ctx, cl, adm, want)
	if err != nil {
		return err
	}
	for i := range recs {
		r := &recs[i]
		if !r.ValueOmitted || r.Skipped != "" {
			continue
		}
		at := sourceAt{r.OriginalTopic, r.OriginalPartition, r.OriginalOffset}
		orig, ok := found[at]
		switch {
		case !ok:
			r.Missing = "original " + at.String() + " " + gone[at]
		case !bytes.Equal(orig.Key, raws[i].Key):
			r.Missing = fmt.Sprintf("original %s is another record: its key is %q, the dead letter's %q (was the topic deleted and re-created?)",
				at, orig.Key, raws[i].Key)
		case omittedBytes[i] >= 0 && int64(len(orig.Value)) != omittedBytes[i]:
			r.Missing = fmt.Sprintf("original %s is another record: its value has %d bytes, %s says %d (was the topic deleted and re-created?)",
				at, len(orig.Value), topics.HeaderValueOmitted, omittedBytes[i])
		default:
			raws[i] = orig
			// Such a dead letter does not carry the original's redrive count
			// (the original's headers were left out): the original does.
			if n, err := strconv.Atoi(headerOf(orig, topics.HeaderRedriveCount)); err == nil && n >= r.RedriveCount {
				r.RedriveCount = n + 1
			}
		}
	}
	return nil
}

// readOriginals reads the record at each location of want, read_committed
// as the processor reads, with a short-lived direct client. It returns the
// records found and, for every other location, why there is no committed
// record there. Locations below a partition's start offset or not below its
// last stable offset are decided from the listed offsets, without reading;
// the others are read one after another per partition, jumping ahead
// between them. An error (the offsets could not be listed, a fetch failed,
// ctx ended) decides nothing.
func readOriginals(ctx context.Context, cl *kgo.Client, adm *kadm.Client, want []sourceAt) (found map[sourceAt]*kgo.Record, gone map[sourceAt]string, err error) {
	names := map[string]bool{}
	for _, w := range want {
		names[w.topic] = true
	}
	ts := slices.Sorted(maps.Keys(names))
	starts, err := adm.ListStartOffsets(ctx, ts...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("start offsets of the original topics %v: %w", ts, err)
	}
	stables, err := adm.ListCommittedOffsets(ctx, ts...)
	if err == nil {
		err = stables.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("last stable offsets of the original topics %v: %w", ts, err)
	}

	found, gone = map[sourceAt]*kgo.Record{}, map[sourceAt]string{}
	pending := map[string]map[int32][]int64{} // offsets still to read, ascending
	for _, w := range want {
		start, ok1 := starts.Lookup(w.topic, w.partition)
		stable, ok2 := stables.Lookup(w.topic, w.partition)
		switch {
		case !ok1 || !ok2:
			return nil, nil, fmt.Errorf("original %s: the broker listed no offsets for its partition", w)
		case w.offset < start.Offset:
			gone[w] = fmt.Sprintf("is gone: the partition now starts at offset %d (retention or DeleteRecords deleted it)", start.Offset)
		case w.offset >= stable.Offset:
			gone[w] = fmt.Sprintf("is not there: the partition's committed records end before offset %d (was the topic deleted and re-created?)", stable.Offset)
		default:
			if pending[w.topic] == nil {
				pending[w.topic] = map[int32][]int64{}
			}
			if q := pending[w.topic][w.partition]; !slices.Contains(q, w.offset) {
				pending[w.topic][w.partition] = append(q, w.offset)
			}
		}
	}
	left := 0
	assign := map[string]map[int32]kgo.Offset{}
	for t, ps := range pending {
		assign[t] = map[int32]kgo.Offset{}
		for p, q := range ps {
			slices.Sort(q)
			assign[t][p] = kgo.NewOffset().At(q[0])
			left += len(q)
		}
	}
	if left == 0 {
		return found, gone, nil
	}
	rd, err := kgo.NewClient(append(connOpts(cl),
		kgo.ConsumePartitions(assign),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Every wanted offset is below the last stable offset, so a commit
		// or abort marker at the latest follows it: seeing the markers, the
		// reader never waits at the end of the committed records for an
		// offset that read_committed filters out (an aborted record).
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, nil, fmt.Errorf("read the original topics: %w", err)
	}
	defer rd.Close()
	for left > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("read the original topics: %d originals unread: %w", left, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("read original topic %s partition %d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return nil, nil, ferr
		}
		last := map[string]map[int32]int64{} // highest offset of this poll
		fs.EachRecord(func(r *kgo.Record) {
			q := pending[r.Topic][r.Partition]
			for len(q) > 0 && q[0] <= r.Offset {
				at := sourceAt{r.Topic, r.Partition, q[0]}
				switch {
				case q[0] < r.Offset:
					// Compaction removed it, or it was never committed; a
					// reset to the start after a deletion lands here too.
					gone[at] = fmt.Sprintf("is gone: read_committed, the partition continues at offset %d (compaction, retention or DeleteRecords removed it, or it was never committed)", r.Offset)
				case r.Attrs.IsControl():
					gone[at] = "is a transaction marker, not a record"
				default:
					found[at] = r
				}
				q = q[1:]
				left--
			}
			pending[r.Topic][r.Partition] = q
			if last[r.Topic] == nil {
				last[r.Topic] = map[int32]int64{}
			}
			last[r.Topic][r.Partition] = max(last[r.Topic][r.Partition], r.Offset)
		})
		// Done partitions stop fetching; the others jump to their next
		// offset rather than read every record up to it.
		done := map[string][]int32{}
		jump := map[string]map[int32]kgo.EpochOffset{}
		for t, ps := range last {
			for p, at := range ps {
				switch q := pending[t][p]; {
				case len(q) == 0:
					done[t] = append(done[t], p)
				case q[0] > at+1:
					if jump[t] == nil {
						jump[t] = map[int32]kgo.EpochOffset{}
					}
					jump[t][p] = kgo.EpochOffset{Epoch: -1, Offset: q[0]}
				}
			}
		}
		rd.RemoveConsumePartitions(done)
		rd.SetOffsets(jump)
	}
	return found, gone, nil
}

// headerOf returns the value of r's first header named key, or "".
func headerOf(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
