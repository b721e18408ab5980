package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/test/realkafka"
	"github.com/shopstream/shopstream/topics"
)

// TestBrokerLoss: on a real 3-node cluster (KRaft, replication factor 3,
// min.insync.replicas 2; test/realkafka) two processes run every group
// while the stream is produced; mid-stream a node is SIGKILLed, the stream
// goes on and must keep being processed while the node is down, then the
// node is restarted on its data. The short version kills the leader of
// inventory partition 0 once; the long one also kills the coordinator of
// the inventory group (offset commits and the group move to another node)
// and the leader of an order partition. Afterwards the invariant checker
// must hold, and the dead-letter topics may hold poison records only: a
// broker loss must not dead-letter a good record.
//
// It needs its own cluster (nodes are killed), so it starts one even when
// SHOPSTREAM_TEST_BROKERS names a running Kafka (java and mvn on PATH, as
// in CI); it is skipped only when SHOPSTREAM_TEST_KAFKA=kfake opts out of
// real Kafka. The cluster starts once (10–20 s).
func TestBrokerLoss(t *testing.T) {
	eachRealBackend(t, func(t *testing.T, _ *backend) {
		ctx, cancel := context.WithTimeout(context.Background(), size(10*time.Minute, 30*time.Minute))
		defer cancel()
		c, err := realkafka.Start(ctx, realkafka.Options{Nodes: 3, Dir: t.TempDir(), Log: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Stop)
		b := &backend{Name: "kafka-" + realkafka.Version + "-3nodes", Shared: c.Brokers()}
		s := newStack(t, b, fastRetry)
		s.generate(stream(81, size(2000, 30000), 0.02))
		inventory, order := s.prefix+topics.TopicInventory, s.prefix+topics.TopicOrder

		// What each round kills.
		type target struct {
			what string
			node func() (int, error)
		}
		leaderOf := func(topic string, part int32) func() (int, error) {
			return func() (int, error) {
				md, err := s.adm.Metadata(ctx, topic)
				if err != nil {
					return 0, err
				}
				p, ok := md.Topics[topic].Partitions[part]
				if !ok || p.Leader < 0 {
					return 0, fmt.Errorf("%s/%d has no leader", topic, part)
				}
				return int(p.Leader), nil
			}
		}
		targets := []target{{fmt.Sprintf("leader of %s/0", inventory), leaderOf(inventory, 0)}}
		if long {
			targets = append(targets,
				target{"coordinator of shopstream.inventory", func() (int, error) {
					r := s.adm.FindGroupCoordinators(ctx, "shopstream.inventory")
					co, ok := r["shopstream.inventory"]
					if !ok || co.Err != nil {
						return 0, fmt.Errorf("find coordinator: %v", co.Err)
					}
					return int(co.NodeID), nil
				}},
				target{fmt.Sprintf("leader of %s/1", order), leaderOf(order, 1)})
		}

		// The stream in len(targets)+1 parts: one before the first kill,
		// one while each node is down.
		parts := len(targets) + 1
		per := (len(s.source) + parts - 1) / parts
		part := func(i int) []devstack.Produced {
			return s.source[min(i*per, len(s.source)):min((i+1)*per, len(s.source))]
		}
		batch, pause := size(100, 500), size(300*time.Millisecond, 500*time.Millisecond)

		s.start()
		s.start()
		if err := s.feedPart(ctx, part(0), batch, pause); err != nil {
			t.Fatal(err)
		}
		calls := func() int { return len(s.sim.Calls()) }
		waitFor(t, 2*time.Minute, "processing under way", func() bool { return calls() >= 100 })

		for i, tg := range targets {
			node, err := tg.node()
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Kill(node); err != nil {
				t.Fatal(err)
			}
			killed, before := time.Now(), calls()
			fed := make(chan error, 1)
			go func() { fed <- s.feedPart(ctx, part(i+1), batch, pause) }()
			// Progress while the node is down: a few hundred sink calls,
			// which needs new leaders for the node's partitions (and a new
			// coordinator) and the rest of the stream produced.
			want := min(300, len(part(i+1))/4)
			waitFor(t, 2*time.Minute, fmt.Sprintf("%d sink calls with node %d down", want, node), func() bool {
				return calls() >= before+want
			})
			during := calls() - before
			if err := c.Restart(ctx, node); err != nil {
				t.Fatal(err)
			}
			t.Logf("round %d: SIGKILLed node %d (%s); %d sink calls while it was down; back after %s",
				i+1, node, tg.what, during, time.Since(killed).Round(time.Second))
			if err := <-fed; err != nil {
				t.Fatal(err)
			}
		}
		s.waitCaughtUp(size(3*time.Minute, 10*time.Minute))
		requireOK(t, s.check("broker-loss"))

		// Only poison on the dead-letter topics.
		for _, d := range devstack.DLQTopics() {
			dls, err := admin.ListDLQ(ctx, s.cl, s.prefix+d, admin.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, dl := range dls {
				if dl.ErrorClass != topics.ErrorClassPoison {
					t.Errorf("%s: a %s record was dead-lettered during the broker loss: key %q: %s",
						s.prefix+d, dl.ErrorClass, dl.Key, clip(dl.Error, 200))
				}
			}
		}
	})
}
