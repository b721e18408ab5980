package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/internal/redistest"
	"github.com/shopstream/shopstream/ordering"
)

// A redis+sentinel:// URL reaches the master through a real Sentinel
// (redis-server --sentinel), and the version fence works over it.
func TestRedisSentinelURL(t *testing.T) {
	master := redistest.Start(t)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	_, mport, _ := net.SplitHostPort(master.Addr())
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %s 1\n", port, dir, mport)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, conf, "--sentinel")
	logf, _ := os.Create(filepath.Join(dir, "sentinel.log"))
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	sentinel := "127.0.0.1:" + strconv.Itoa(port)
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel})
	defer sc.Close()
	ctx := context.Background()
	for deadline := time.Now().Add(15 * time.Second); ; {
		if addr, err := sc.GetMasterAddrByName(ctx, "mymaster").Result(); err == nil && len(addr) == 2 {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "sentinel.log"))
			t.Fatalf("sentinel not ready:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	o, err := redisConfig{URL: "redis+sentinel://" + sentinel + "/0?master=mymaster"}.options(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewUniversalClient(o)
	defer rdb.Close()
	if err := checkRedis(ctx, rdb, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	fence := ordering.NewVersionFence(rdb)
	if _, err := fence.Advance(ctx, "g", []string{"SKU-1"}, []int64{7}); err != nil {
		t.Fatal(err)
	}
	direct := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer direct.Close()
	n, err := direct.DBSize(ctx).Result()
	if err != nil || n != 1 {
		t.Errorf("the master holds %d keys (%v), want the fence's 1", n, err)
	}
}
