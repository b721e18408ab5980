package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shopstream/shopstream/handlers"
	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

const (
	// sinkLatency is how long the slow sinks of S3 to S5 take per request.
	sinkLatency = 5 * time.Millisecond
	// slowConcurrency and slowBuffered configure shopstream against a slow sink.
	slowConcurrency = 256
	slowBuffered    = 32 * slowConcurrency
)

// runS3 is the slow sink: the webhook handler posting to a real HTTP sink
// that answers after 5 ms, shopstream with key-level concurrency vs the
// classic worker-per-partition consumer, over the same uniformly keyed
// records. The sink checks per-SKU arrival order in every run, and that
// shopstream delivered every SKU's last version. shopstream is CPU-bound
// here and the baseline is not (it waits on the sink), so a busy neighbour
// slows one side only: shopstream's figure is the median of three rounds.
func runS3(ctx context.Context, c *config) ([]row, []string, error) {
	n, window, rounds := 60_000, 10*time.Second, 3
	if c.quick {
		n, window, rounds = 12_000, 4*time.Second, 1
	}
	b, err := startBroker(ctx, topics.TopicInventory)
	if err != nil {
		return nil, nil, err
	}
	defer b.Close()
	ds, err := produceTimed(ctx, c, b.addrs, topics.TopicInventory, n, uniformKeys(3))
	if err != nil {
		return nil, nil, err
	}
	cfg := processor.GroupConfig{
		Name: "s3", Idempotency: processor.IdempotencyNone,
		Concurrency: slowConcurrency, MaxBuffered: slowBuffered,
	}
	run := func(id string, atEnd func()) (measured, *sink, error) {
		sk, err := startSink(sinkLatency)
		if err != nil {
			return measured{}, nil, err
		}
		defer sk.Close()
		// The handlers' own pooled client (MaxIdleConnsPerHost 64), as deployed.
		wh, err := handlers.NewWebhook(handlers.WebhookConfig{Name: "sink", URL: sk.url + "/hook"})
		if err != nil {
			return measured{}, nil, err
		}
		cfg := cfg
		cfg.ID, cfg.Handler = id, wh
		m, err := runShopstream(ctx, b.addrs, nil, cfg, n, 5*time.Minute, atEnd)
		return m, sk, err
	}
	var (
		ours      []measured
		checks    error
		summaries []string
	)
	for r := range rounds {
		m, sk, err := run(fmt.Sprintf("bench.s3.%d", r), nil)
		if err != nil {
			return nil, nil, err
		}
		ours = append(ours, m)
		summaries = append(summaries, sk.summary())
		checks = joinErrs(checks, prefixErr(fmt.Sprintf("round %d", r+1), joinErrs(sk.orderErr(), sk.finalStateErr(ds))))
		logf("  round %d: shopstream %s; sink saw %s", r+1, kRate(m.rate()), sk.summary())
	}
	oursRate := median(ours)

	bsk, err := startSink(sinkLatency)
	if err != nil {
		return nil, nil, err
	}
	defer bsk.Close()
	bwh, err := handlers.NewWebhook(handlers.WebhookConfig{Name: "sink", URL: bsk.url + "/hook"})
	if err != nil {
		return nil, nil, err
	}
	base, err := perPartition(ctx, b.addrs, ds.topic, "bench.s3-baseline", bwh, n, window)
	if err != nil {
		return nil, nil, err
	}
	logf("  worker per partition %s (%d records in %s)", kRate(base.rate()), base.records, base.elapsed().Round(time.Millisecond))
	checks = joinErrs(checks, prefixErr("baseline", bsk.orderErr()))

	rows := []row{{
		scenario: "S3 slow sink: webhook to a 5 ms HTTP sink, 10k SKUs, per-SKU order checked",
		ours:     kRate(oursRate) + fmt.Sprintf(" (concurrency %d)", slowConcurrency),
		base:     kRate(base.rate()) + " worker per partition",
		ratio:    oursRate / base.rate(), unit: "×", target: atLeast(20),
		err: checks,
	}}
	notes := []string{fmt.Sprintf("S3: %d records over %d SKUs and %d partitions, sink latency %s, webhook handler with the handlers' default HTTP client; "+
		"shopstream: median of %d rounds (%s), its sink saw %s; the baseline ran %d of the records in %s (its rate is steady), its sink saw %s; checks: %s.",
		n, skuCount, partitions, sinkLatency, rounds, rates(ours), strings.Join(summaries, "; "), base.records, base.elapsed().Round(time.Millisecond), bsk.summary(), okOr(checks))}

	if c.cpuProfile || c.memProfile {
		note, err := profiled(c, "S3", func(atEnd func()) error {
			_, _, err := run("bench.s3-profile", atEnd)
			return err
		})
		if err != nil {
			return rows, notes, err
		}
		notes = append(notes, note)
	}
	return rows, notes, nil
}

func okOr(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func prefixErr(prefix string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// joinErrs joins errors into one "; "-separated error (nil if all are nil).
func joinErrs(errs ...error) error {
	var msg string
	for _, err := range errs {
		if err == nil {
			continue
		}
		if msg != "" {
			msg += "; "
		}
		msg += err.Error()
	}
	if msg == "" {
		return nil
	}
	return fmt.Errorf("%s", msg)
}
