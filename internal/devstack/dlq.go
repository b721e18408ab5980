package devstack

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
)

// ReadDLQ reads every record of the given dead-letter topics, from each
// partition's start to the end offset it had when ReadDLQ was called, and
// returns them ordered by topic, partition and offset. cl is used for the
// offset look-ups; the records are read by a short-lived direct (group-less)
// client with cl's seed brokers, dialer, TLS and SASL settings, so cl may be
// a group consumer. A topic that does not exist is an error.
func ReadDLQ(ctx context.Context, cl *kgo.Client, dlqTopics []string) ([]DLQRecord, error) {
	if len(dlqTopics) == 0 {
		return nil, nil
	}
	adm := kadm.NewClient(cl) // not closed: closing it would close cl
	starts, err := adm.ListStartOffsets(ctx, dlqTopics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("read dlq %v: list start offsets: %w", dlqTopics, err)
	}
	ends, err := adm.ListEndOffsets(ctx, dlqTopics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("read dlq %v: list end offsets: %w", dlqTopics, err)
	}

	type tp struct {
		topic     string
		partition int32
	}
	from := make(map[string]map[int32]kgo.Offset)
	until := make(map[tp]int64) // partitions still to read → their end offset
	ends.Each(func(e kadm.ListedOffset) {
		s, _ := starts.Lookup(e.Topic, e.Partition)
		if e.Offset <= s.Offset {
			return // empty
		}
		if from[e.Topic] == nil {
			from[e.Topic] = make(map[int32]kgo.Offset)
		}
		from[e.Topic][e.Partition] = kgo.NewOffset().At(s.Offset)
		until[tp{e.Topic, e.Partition}] = e.Offset
	})
	if len(until) == 0 {
		return nil, nil
	}

	rd, err := kgo.NewClient(append(connOpts(cl),
		kgo.ConsumePartitions(from),
		kgo.KeepControlRecords(), // control records take offsets too: see them to reach the end
	)...)
	if err != nil {
		return nil, fmt.Errorf("read dlq %v: %w", dlqTopics, err)
	}
	defer rd.Close()

	var out []DLQRecord
	for len(until) > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read dlq %v: %d partitions unfinished: %w", dlqTopics, len(until), err)
		}
		if err := fs.Err0(); err != nil {
			return nil, fmt.Errorf("read dlq %v: %w", dlqTopics, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("read dlq %s partition %d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			k := tp{r.Topic, r.Partition}
			end, ok := until[k]
			if !ok || r.Offset >= end {
				return // written after we looked
			}
			if r.Offset+1 >= end {
				delete(until, k)
			}
			if r.Attrs.IsControl() {
				return
			}
			hs := make(map[string]string, len(r.Headers))
			for _, h := range r.Headers {
				hs[h.Key] = string(h.Value)
			}
			out = append(out, DLQRecord{
				Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
				Key: string(r.Key), Value: r.Value, Headers: hs, Timestamp: r.Timestamp,
			})
		})
	}
	slices.SortFunc(out, func(a, b DLQRecord) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	return out, nil
}

// connOpts copies how cl connects: seed brokers, dialer, TLS and SASL.
func connOpts(cl *kgo.Client) []kgo.Opt {
	var opts []kgo.Opt
	if seeds, ok := cl.OptValue(kgo.SeedBrokers).([]string); ok {
		opts = append(opts, kgo.SeedBrokers(seeds...))
	}
	if fn, ok := cl.OptValue(kgo.Dialer).(func(context.Context, string, string) (net.Conn, error)); ok && fn != nil {
		opts = append(opts, kgo.Dialer(fn))
	}
	if c, ok := cl.OptValue(kgo.DialTLSConfig).(*tls.Config); ok && c != nil {
		opts = append(opts, kgo.DialTLSConfig(c))
	}
	if ms, ok := cl.OptValue(kgo.SASL).([]sasl.Mechanism); ok && len(ms) > 0 {
		opts = append(opts, kgo.SASL(ms...))
	}
	return opts
}
