package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/internal/redistest"
	"github.com/shopstream/shopstream/ordering"
)

// Both cluster forms of --redis-url reach a real 3-master Redis Cluster
// through a cluster client, and `shopstream run` on it applies traffic with
// the verdict holding: the fence and dedupe keys of its batches spread over
// every master.
func TestRunOnRedisCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := redistest.StartCluster(t, 3)
	addrs := cluster.Addrs()
	for _, u := range []string{cluster.URL(), "redis+cluster://" + addrs[1]} {
		o, err := redisConfig{URL: u}.options(envOf(nil))
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		rdb := redis.NewUniversalClient(o)
		if _, ok := rdb.(*redis.ClusterClient); !ok {
			t.Errorf("%s: a %T, want *redis.ClusterClient", u, rdb)
		}
		if err := checkRedis(ctx, rdb, 5*time.Second); err != nil {
			t.Errorf("%s: %v", u, err)
		}
		rdb.Close()
	}

	kafka, err := devstack.StartKafka(ctx, devstack.KafkaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	sim := devstack.NewSimulator()
	if _, err := sim.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	svc := startService(t, ctx, kafka, cluster.URL(), sim, devstack.GenConfig{Seed: 11, SKUs: 30, StockUpdates: 120, Orders: 12, Customers: 6})
	resp, err := http.Get("http://" + svc.httpAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d on a Redis Cluster", resp.StatusCode)
	}
	if v := svc.stop(t, ctx, sim); !v.OK() {
		t.Errorf("verdict failed on a Redis Cluster:\n%s\nlogs:\n%s", v, svc.logs)
	}
	for _, addr := range addrs {
		node := redis.NewClient(&redis.Options{Addr: addr})
		for _, pattern := range []string{
			ordering.FenceKey("shopstream.inventory", "*"),
			ordering.DedupeKey("shopstream.order-crm", "*"),
		} {
			keys, err := node.Keys(ctx, pattern).Result()
			if err != nil || len(keys) == 0 {
				t.Errorf("master %s: %d keys %s (%v), want some on every master", addr, len(keys), pattern, err)
			}
		}
		node.Close()
	}
}
