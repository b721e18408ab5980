package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/internal/redistest"
)

// startRedis starts a real redis-server on a free loopback port with
// persistence off (internal/redistest) in a temporary directory; stop
// kills it and removes the directory.
func startRedis() (srv *redistest.Server, stop func(), err error) {
	dir, err := os.MkdirTemp("", "shopstream-bench-redis-")
	if err != nil {
		return nil, nil, err
	}
	srv, err = redistest.Launch(dir, redistest.Options{})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return srv, func() {
		srv.Stop()
		os.RemoveAll(dir)
	}, nil
}

// redisCPU is the CPU time (user and system) the server has used so far,
// from INFO cpu.
func redisCPU(ctx context.Context, rdb *redis.Client) (time.Duration, error) {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO cpu: %w", err)
	}
	var total time.Duration
	for _, line := range strings.Split(info, "\n") {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "used_cpu_user" && name != "used_cpu_sys") {
			continue
		}
		secs, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, fmt.Errorf("redis INFO cpu: %s is %q: %w", name, value, err)
		}
		total += time.Duration(secs * float64(time.Second))
	}
	return total, nil
}
