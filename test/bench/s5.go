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

const (
	// s5Limit and s5Burst are the sink's rate limit (requests/s) and burst.
	s5Limit = 500
	s5Burst = 10
)

// runS5 is the recovery flood: a backlog waiting for the fenced inventory
// group after an outage, drained through the Magento client limited to 500
// requests/s. The sink must never see more than 1.1 × the limit within any
// one-second window, and the drain (from the processor's start, group join
// included) must take at most 1.2 × calls/limit.
func runS5(ctx context.Context, c *config) ([]row, []string, error) {
	n := 50_000
	if c.quick {
		n = 5_000
	}
	b, err := startBroker(ctx, topics.TopicInventory)
	if err != nil {
		return nil, nil, err
	}
	defer b.Close()
	ds, err := produceTimed(ctx, c, b.addrs, topics.TopicInventory, n, uniformKeys(5))
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
	sk, err := startSink(sinkLatency)
	if err != nil {
		return nil, nil, err
	}
	defer sk.Close()
	mg, err := handlers.NewMagento(handlers.MagentoConfig{BaseURL: sk.url, Token: "bench-token", RateLimit: s5Limit, Burst: s5Burst})
	if err != nil {
		return nil, nil, err
	}
	logf("  draining %d records at %d requests/s (about %s)", n, s5Limit, time.Duration(float64(n)/s5Limit*float64(time.Second)).Round(time.Second))
	m, err := runShopstream(ctx, b.addrs, ordering.NewVersionFence(rdb), processor.GroupConfig{
		Name: "s5", ID: "bench.s5", Handler: mg.Inventory(), Idempotency: processor.IdempotencyFence,
	}, n, time.Duration(3*float64(n)/s5Limit*float64(time.Second))+time.Minute, nil)
	if err != nil {
		return nil, nil, err
	}
	drain := m.end.Sub(m.start)
	calls := sk.calls()
	most, span := sk.maxWindow(time.Second)
	ideal := time.Duration(float64(calls) / s5Limit * float64(time.Second))
	checks := joinErrs(sk.orderErr(), sk.finalStateErr(ds))
	logf("  drained in %s; %d calls; most in one second %d", drain.Round(time.Millisecond), calls, most)
	rows := []row{
		{
			scenario: fmt.Sprintf("S5 recovery flood: peak requests in any 1 s window (limit %d/s, burst %d)", s5Limit, s5Burst),
			ours:     fmt.Sprintf("%d requests", most), base: fmt.Sprintf("limit %d", s5Limit),
			ratio: float64(most) / s5Limit, target: atMost(1.1), err: checks,
		},
		{
			scenario: fmt.Sprintf("S5 recovery flood: drain time of a %d-record backlog", n),
			ours:     drain.Round(100 * time.Millisecond).String(), base: fmt.Sprintf("%s = %d calls / %d per s", ideal.Round(100*time.Millisecond), calls, s5Limit),
			ratio: drain.Seconds() / ideal.Seconds(), target: atMost(1.2), err: checks,
		},
	}
	notes := []string{fmt.Sprintf("S5: %d records over %d SKUs, fenced inventory group (default concurrency 64), Magento client to a %s sink; the sink saw %s, from first to last in %s; drain timed from the processor's start, group join included; order and final state: %s.",
		n, skuCount, sinkLatency, sk.summary(), span.Round(time.Millisecond), okOr(checks))}
	return rows, notes, nil
}
