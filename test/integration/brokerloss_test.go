package integration

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/test/realkafka"
	"github.com/shopstream/shopstream/topics"
)

// On a real 3-node cluster (RF 3, min.insync.replicas 2), SIGKILL the leader
// of a partition while shopstream processes a steady acks=all stream, then
// restart it. Processing goes on while the node is down; afterwards every
// produced version was applied, no SKU's versions went down at the sink,
// and each SKU ends at its highest version.
func TestBrokerLossOnThreeNodes(t *testing.T) {
	eachRealBackend(t, func(t *testing.T, _ *backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		c, err := realkafka.Start(ctx, realkafka.Options{Nodes: 3, Dir: t.TempDir(), Log: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Stop)
		e := newEnvSeeded(t, &backend{Name: "cluster3", Shared: c.Brokers()}, partitions,
			topics.TopicInventory, topics.DLQTopic(topics.TopicInventory))

		const skus, versions = 40, 60
		prod, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...), kgo.RequiredAcks(kgo.AllISRAcks()))
		if err != nil {
			t.Fatal(err)
		}
		defer prod.Close()
		var produced atomic.Int64
		produceErr := make(chan error, 1)
		release := make(chan struct{}) // the second half of the stream waits for the kill
		go func() {
			defer close(produceErr)
			for v := 1; v <= versions; v++ {
				if v == versions/3 {
					<-release
				}
				var batch []*kgo.Record
				for s := range skus {
					batch = append(batch, e.stock(fmt.Sprintf("SKU-%03d", s), int64(v), v))
				}
				if err := prod.ProduceSync(ctx, batch...).FirstErr(); err != nil {
					produceErr <- fmt.Errorf("produce version %d: %w", v, err)
					return
				}
				produced.Add(int64(len(batch)))
			}
		}()

		s := newSink()
		g := e.inventoryGroup(s.handler(nil))
		g.Concurrency = 16
		r := e.start(e.options(), g)
		firstThird := int64(skus * (versions/3 - 1))
		eventually(t, 2*time.Minute, "the first third applied", func() bool { return int64(s.total()) >= firstThird })

		md, err := e.admin.Metadata(ctx, e.topic(topics.TopicInventory))
		if err != nil {
			t.Fatal(err)
		}
		leader := int(md.Topics[e.topic(topics.TopicInventory)].Partitions[0].Leader)
		if err := c.Kill(leader); err != nil {
			t.Fatal(err)
		}
		close(release)
		before := s.total()
		eventually(t, 2*time.Minute, "progress while the leader is down", func() bool { return s.total() >= before+skus*5 })
		if err := c.Restart(ctx, leader); err != nil {
			t.Fatal(err)
		}
		if err := <-produceErr; err != nil {
			t.Fatal(err)
		}
		eventually(t, 3*time.Minute, "every version applied", func() bool {
			applied, _, _, _ := s.snapshot()
			for i := range skus {
				vs := applied[fmt.Sprintf("SKU-%03d", i)]
				if len(vs) == 0 || vs[len(vs)-1] != versions {
					return false
				}
			}
			return true
		})
		applied, _, _, overlaps := s.snapshot()
		if overlaps != 0 {
			t.Errorf("%d same-key overlaps", overlaps)
		}
		for i := range skus {
			sku := fmt.Sprintf("SKU-%03d", i)
			vs := applied[sku]
			if !slices.IsSorted(vs) {
				t.Errorf("%s regressed at the sink: %v", sku, vs)
			}
			for v := int64(1); v <= versions; v++ {
				if !slices.Contains(vs, v) {
					t.Errorf("%s: version %d was never applied (lost)", sku, v)
				}
			}
		}
		if st := r.proc.Stats()[0]; st.DeadLettered != 0 {
			t.Errorf("%d records dead-lettered during a broker loss", st.DeadLettered)
		}
		t.Logf("killed node %d (leader of partition 0); %d produced, %d applied", leader, produced.Load(), s.total())
	})
}
