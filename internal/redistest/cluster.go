package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// clusterSlots is the number of hash slots of a Redis Cluster.
	clusterSlots = 16384
	// clusterTimeout bounds how long StartCluster waits for the nodes to
	// agree that the cluster is up.
	clusterTimeout = 30 * time.Second
)

// Cluster is a Redis Cluster of masters without replicas, each a Server
// bound to 127.0.0.1 with persistence disabled. It needs redis-server 7.0
// or later (cluster-port, CLUSTER ADDSLOTSRANGE).
type Cluster struct {
	nodes []*Server
}

// StartCluster starts masters cluster-enabled redis-servers, each on its
// own free client and bus ports, gives each an equal contiguous range of the
// 16384 hash slots (node i the i-th range), joins them with CLUSTER MEET and
// waits until every node reports cluster_state:ok and knows every other
// node. A cleanup kills them.
func StartCluster(tb testing.TB, masters int) *Cluster {
	tb.Helper()
	if masters < 1 {
		tb.Fatalf("redistest: StartCluster(%d): need at least one master", masters)
	}
	c := &Cluster{}
	for range masters {
		s, err := Launch(tb.TempDir(), Options{clusterNode: true})
		if err != nil {
			tb.Fatalf("redistest: cluster node: %v", err)
		}
		s.tb = tb
		tb.Cleanup(s.Kill)
		c.nodes = append(c.nodes, s)
	}
	if err := c.form(); err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	return c
}

// Nodes returns the masters, node i owning the i-th range of slots.
func (c *Cluster) Nodes() []*Server { return c.nodes }

// Addrs returns the masters' host:port addresses, in Nodes order.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		out[i] = s.Addr()
	}
	return out
}

// URL returns a redis:// URL listing every master as a seed node, for
// example "redis://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"; shopstream
// reads a URL with several hosts as a Redis Cluster.
func (c *Cluster) URL() string {
	return "redis://" + strings.Join(c.Addrs(), ",")
}

// form assigns the slots, joins the nodes and waits for the cluster.
func (c *Cluster) form() error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	clients := make([]*redis.Client, len(c.nodes))
	for i, s := range c.nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
		defer clients[i].Close()
	}
	n := len(c.nodes)
	for i, cl := range clients {
		lo, hi := i*clusterSlots/n, (i+1)*clusterSlots/n-1
		if err := cl.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			return fmt.Errorf("cluster node %s: CLUSTER ADDSLOTSRANGE %d %d: %w", c.nodes[i].Addr(), lo, hi, err)
		}
		// Distinct epochs, as redis-cli --cluster create sets them: the
		// nodes then need not resolve an epoch collision first.
		if err := cl.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("cluster node %s: CLUSTER SET-CONFIG-EPOCH: %w", c.nodes[i].Addr(), err)
		}
	}
	for _, s := range c.nodes[1:] {
		// The bus port is not port+10000: MEET names it.
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", s.port, s.bus).Err(); err != nil {
			return fmt.Errorf("cluster node %s: CLUSTER MEET %s: %w", c.nodes[0].Addr(), s.Addr(), err)
		}
	}
	backoff := 10 * time.Millisecond
	for {
		var notReady error
		var node *Server
		for i, cl := range clients {
			if notReady = clusterUp(ctx, cl, n); notReady != nil {
				node = c.nodes[i]
				break
			}
		}
		if notReady == nil {
			return nil
		}
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("no cluster within %v: node %s: %w\n%s", clusterTimeout, node.Addr(), notReady, tail(node.logPath()))
		case <-timer.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// clusterUp checks one node's view: every slot assigned, the cluster ok and
// all n nodes known.
func clusterUp(ctx context.Context, cl *redis.Client, n int) error {
	info, err := cl.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	fields := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	for k, want := range map[string]string{
		"cluster_state":          "ok",
		"cluster_slots_assigned": strconv.Itoa(clusterSlots),
		"cluster_known_nodes":    strconv.Itoa(n),
	} {
		if fields[k] != want {
			return fmt.Errorf("CLUSTER INFO %s:%s, want %s", k, fields[k], want)
		}
	}
	return nil
}

// logPath returns the log file of the running process ("" when stopped).
func (s *Server) logPath() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return ""
	}
	return s.proc.logPath
}
