package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// partitions of every topic the harness creates.
	partitions = 6
	// skuCount is the number of distinct SKUs (record keys).
	skuCount = 10000
	// baseVersion is where every SKU's versions start: versions look like
	// updated_at in milliseconds, as many ERPs send them.
	baseVersion = 1732701600000
)

// dataset is what was produced to a topic: per SKU index, the highest
// version (0: the SKU never occurs), for the final-state checks.
type dataset struct {
	topic      string
	records    int
	maxVersion []int64
	// hottest is the share of records of the most frequent SKU.
	hottest float64
}

func skuName(i int) string {
	return "SKU-" + fmt.Sprintf("%05d", i)
}

// appendRecord appends an inventory.stock.updated CloudEvent of about 300
// bytes, in the attribute order producers write it.
func appendRecord(b []byte, seq int, sku string, version int64) []byte {
	b = append(b, `{"specversion":"1.0","id":"01JD3YV7Q8`...)
	b = appendPadded(b, seq, 16)
	b = append(b, `","source":"erp/warehouse-feed","type":"inventory.stock.updated","subject":"`...)
	b = append(b, sku...)
	b = append(b, `","time":"2026-11-27T10:00:00.123Z","version":`...)
	b = strconv.AppendInt(b, version, 10)
	b = append(b, `,"datacontenttype":"application/json","data":{"sku":"`...)
	b = append(b, sku...)
	b = append(b, `","source_code":"default","quantity":`...)
	b = strconv.AppendInt(b, int64(seq%997), 10)
	b = append(b, `,"status":1}}`...)
	return b
}

// appendPadded appends n in hexadecimal, zero-padded to width digits.
func appendPadded(b []byte, n, width int) []byte {
	s := strconv.FormatInt(int64(n), 16)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// uniformKeys picks SKUs uniformly at random (seeded: every run produces the
// same records).
func uniformKeys(seed uint64) func() int {
	rng := rand.New(rand.NewPCG(seed, 1))
	return func() int { return rng.IntN(skuCount) }
}

// zipfKeys picks SKUs with Zipf-distributed popularity: the rank-k SKU has
// weight 1/k^s, with s chosen so that the hottest SKU gets hottest of the
// records. Ranks are shuffled over SKU indexes, so hot SKUs land on random
// partitions. math/rand's Zipf needs s > 1, which would make the hottest SKU
// ~10% or more of 10k keys; hence the inverse-CDF sampler.
func zipfKeys(seed uint64, hottest float64) (pick func() int, exponent float64) {
	weights := func(s float64) (cdf []float64) {
		cdf = make([]float64, skuCount)
		sum := 0.0
		for k := range skuCount {
			sum += math.Pow(float64(k+1), -s)
			cdf[k] = sum
		}
		return cdf
	}
	lo, hi := 0.0, 2.0 // p1(s) = 1/H(n,s) grows with s
	for range 60 {
		mid := (lo + hi) / 2
		cdf := weights(mid)
		if 1/cdf[skuCount-1] < hottest {
			lo = mid
		} else {
			hi = mid
		}
	}
	cdf := weights(lo)
	total := cdf[skuCount-1]
	rng := rand.New(rand.NewPCG(seed, 2))
	perm := rng.Perm(skuCount)
	return func() int {
		u := rng.Float64() * total
		k := sort.SearchFloat64s(cdf, u)
		return perm[min(k, skuCount-1)]
	}, lo
}

// codecs are the -compression choices: how the producer compresses its
// batches. The consumer's fetch limits count compressed bytes, so this
// changes how many records one fetch brings (S6).
var codecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"gzip":   kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}

// produce writes n records to topic, keyed by SKU, with per-SKU versions
// increasing by one per record from baseVersion.
func produce(ctx context.Context, c *config, brokers []string, topic string, n int, pick func() int) (*dataset, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.MaxBufferedRecords(1<<16),
		kgo.ProducerBatchCompression(codecs[c.compression]),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ds := &dataset{topic: topic, records: n, maxVersion: make([]int64, skuCount)}
	counts := make([]int, skuCount)
	var (
		mu       sync.Mutex
		firstErr error
	)
	names := make([]string, skuCount)
	for i := range names {
		names[i] = skuName(i)
	}
	for i := range n {
		k := pick()
		counts[k]++
		v := baseVersion + int64(counts[k])
		ds.maxVersion[k] = v
		sku := names[k]
		rec := &kgo.Record{Key: []byte(sku), Value: appendRecord(make([]byte, 0, 320), i, sku, v)}
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("produce to %s: %w", topic, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return nil, fmt.Errorf("produce to %s: %w", topic, firstErr)
	}
	top := 0
	for _, c := range counts {
		top = max(top, c)
	}
	ds.hottest = float64(top) / float64(n)
	return ds, nil
}

// produceTimed is produce with a progress line on stderr.
func produceTimed(ctx context.Context, c *config, brokers []string, topic string, n int, pick func() int) (*dataset, error) {
	start := time.Now()
	ds, err := produce(ctx, c, brokers, topic, n, pick)
	if err == nil {
		logf("  produced %d records to %s in %s", n, topic, time.Since(start).Round(time.Millisecond))
	}
	return ds, err
}
