package main

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/internal/redistest"
	"github.com/shopstream/shopstream/ordering"
)

// BenchmarkFence measures the version fence's batch calls against a real
// redis-server: Versions (one MGET per batch) and Advance (one EVALSHA of
// the compare-and-set script per batch), for batches of 1, 64 and 500 keys
// (500 is the processor's largest batch). keys/s is the figure to compare
// with the ~9 k/s of one round trip per record.
func BenchmarkFence(b *testing.B) {
	srv := redistest.Start(b)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { rdb.Close() })
	fence := ordering.NewVersionFence(rdb)
	ctx := context.Background()
	for _, size := range []int{1, 64, 500} {
		subjects := make([]string, size)
		for i := range subjects {
			subjects[i] = "SKU-" + strconv.Itoa(i)
		}
		versions := make([]int64, size)
		b.Run("Versions/batch="+strconv.Itoa(size), func(b *testing.B) {
			for b.Loop() {
				if _, err := fence.Versions(ctx, "bench", subjects); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "keys/s")
		})
		b.Run("Advance/batch="+strconv.Itoa(size), func(b *testing.B) {
			v := int64(baseVersion)
			for b.Loop() {
				v++
				for i := range versions {
					versions[i] = v // every key advances: the script writes
				}
				if _, err := fence.Advance(ctx, "bench", subjects, versions); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "keys/s")
		})
	}
}
