package devstack

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/admin"
)

// ReadDLQ reads every record of the given dead-letter topics, from each
// partition's start to the end offset it had when ReadDLQ was called, and
// returns them ordered by topic, partition and offset, through
// admin.ListDLQ (so cl may be a group consumer). A topic that does not
// exist is an error.
func ReadDLQ(ctx context.Context, cl *kgo.Client, dlqTopics []string) ([]DLQRecord, error) {
	var out []DLQRecord
	for _, t := range dlqTopics {
		dls, err := admin.ListDLQ(ctx, cl, t, admin.Filter{})
		if err != nil {
			return nil, fmt.Errorf("read dlq: %w", err)
		}
		for _, d := range dls {
			h := make(map[string]string, len(d.Headers))
			for _, kv := range d.Headers {
				if _, seen := h[kv.Key]; !seen { // the first of a name counts, as in the processor
					h[kv.Key] = string(kv.Value)
				}
			}
			out = append(out, DLQRecord{Topic: d.Topic, Partition: d.Partition, Offset: d.Offset,
				Key: string(d.Key), Value: d.Value, Headers: h, Timestamp: d.Timestamp})
		}
	}
	return out, nil
}
