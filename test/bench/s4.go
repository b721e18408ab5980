package main

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/handlers"
	"github.com/shopstream/shopstream/ordering"
	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// runS4 is hot SKUs: Zipf-keyed stock updates (the hottest SKU ~2% of the
// records) through the fenced inventory group and the Magento client to a
// 5 ms sink, with coalescing (GroupConfig.Coalesce = handlers.CoalesceKey)
// vs the same run without. Every run must leave every SKU at its highest
// produced version at the sink, with no version arriving out of order. The
// coalescing run is CPU-bound and the other waits on its hottest SKUs, so
// each figure is the median of three interleaved rounds.
func runS4(ctx context.Context, c *config) ([]row, []string, error) {
	n, rounds := 50_000, 3
	if c.quick {
		n, rounds = 10_000, 1
	}
	b, err := startBroker(ctx, topics.TopicInventory)
	if err != nil {
		return nil, nil, err
	}
	defer b.Close()
	pick, exponent := zipfKeys(4, 0.02)
	ds, err := produceTimed(ctx, c, b.addrs, topics.TopicInventory, n, pick)
	if err != nil {
		return nil, nil, err
	}
	srv, stopRedis, err := startRedis()
	if err != nil {
		return nil, nil, err
	}
	defer stopRedis()
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	fence := ordering.NewVersionFence(rdb)

	type result struct {
		m       measured
		calls   int
		summary string
		check   error
	}
	run := func(id string, coalesce func(*topics.Event) (string, bool)) (result, error) {
		sk, err := startSink(sinkLatency)
		if err != nil {
			return result{}, err
		}
		defer sk.Close()
		mg, err := handlers.NewMagento(handlers.MagentoConfig{BaseURL: sk.url, Token: "bench-token"})
		if err != nil {
			return result{}, err
		}
		m, err := runShopstream(ctx, b.addrs, fence, processor.GroupConfig{
			Name: "s4", ID: id, Handler: mg.Inventory(), Idempotency: processor.IdempotencyFence,
			Concurrency: slowConcurrency, MaxBuffered: slowBuffered, Coalesce: coalesce,
		}, n, 5*time.Minute, nil)
		if err != nil {
			return result{}, err
		}
		return result{m: m, calls: sk.calls(), summary: sk.summary(), check: joinErrs(sk.orderErr(), sk.finalStateErr(ds))}, nil
	}
	var (
		co, plain   []measured
		checks      error
		coSummary   string
		plainSumm   string
		skippedLast int64
	)
	for r := range rounds {
		c, err := run(fmt.Sprintf("bench.s4-coalesce.%d", r), handlers.CoalesceKey)
		if err != nil {
			return nil, nil, err
		}
		logf("  round %d: coalescing %s: %d sink calls, %d skipped stale", r+1, kRate(c.m.rate()), c.calls, c.m.stats.SkippedStale)
		p, err := run(fmt.Sprintf("bench.s4-plain.%d", r), nil)
		if err != nil {
			return nil, nil, err
		}
		logf("  round %d: without coalescing %s: %d sink calls", r+1, kRate(p.m.rate()), p.calls)
		co, plain = append(co, c.m), append(plain, p.m)
		coSummary, plainSumm, skippedLast = c.summary, p.summary, c.m.stats.SkippedStale
		checks = joinErrs(checks,
			prefixErr(fmt.Sprintf("round %d with coalescing", r+1), c.check),
			prefixErr(fmt.Sprintf("round %d without", r+1), p.check))
	}
	coRate, plainRate := median(co), median(plain)
	rows := []row{{
		scenario: "S4 hot SKUs: Zipf keys (hottest ≈ 2%), 5 ms sink, fenced; final state checked",
		ours:     kRate(coRate) + " coalescing",
		base:     kRate(plainRate) + " without coalescing",
		ratio:    coRate / plainRate, unit: "×", target: atLeast(5),
		err: checks,
	}}
	notes := []string{fmt.Sprintf("S4: %d records, Zipf exponent %.3f over %d SKUs (hottest SKU %.1f%% of records); Magento source-items client (handlers' default HTTP client), concurrency %d, max buffered %d; "+
		"median of %d interleaved rounds (coalescing %s; without %s); last round: with coalescing %d skipped stale and the sink saw %s; without, it saw %s; final state and per-SKU order in every run: %s.",
		n, exponent, skuCount, 100*ds.hottest, slowConcurrency, slowBuffered, rounds, rates(co), rates(plain), skippedLast, coSummary, plainSumm, okOr(checks))}
	return rows, notes, nil
}
