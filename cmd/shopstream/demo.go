package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/processor"
)

// demoReport is the demo's result; --json prints it as one object.
type demoReport struct {
	Applied          int64                  `json:"applied"`
	SkippedStale     int64                  `json:"skipped_stale"`
	SkippedDuplicate int64                  `json:"skipped_duplicate"`
	Filtered         int64                  `json:"filtered"`
	Retried          int64                  `json:"retried"`
	DeadLettered     int64                  `json:"dead_lettered"`
	Lost             int                    `json:"lost"`
	Produced         int                    `json:"produced"`
	OK               bool                   `json:"ok"`
	Groups           []processor.GroupStats `json:"groups"`
	Verdict          devstack.Verdict       `json:"verdict"`
	Seconds          float64                `json:"seconds"`
}

// runDemo is the embedded default: embedded Kafka and Redis, a Magento and
// webhook simulator, realistic traffic (with duplicates, out-of-order stock
// updates, poison records and flaky sinks) and the real processor between
// them. It exits non-zero when the verdict fails.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	seed := fs.Int64("seed", 1, "seed of the generated traffic and the simulated failures")
	logLevel := fs.String("log-level", envDefault(getenv, "SHOPSTREAM_LOG_LEVEL", "error"), "log level of the processor's JSON logs on stderr (env SHOPSTREAM_LOG_LEVEL)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up when processing has not caught up by then")
	var gen devstack.GenConfig
	fs.IntVar(&gen.SKUs, "skus", 0, "products (default 50)")
	fs.IntVar(&gen.StockUpdates, "stock-updates", 0, "stock updates (default 400)")
	fs.IntVar(&gen.Orders, "orders", 0, "orders (default 40)")
	fs.IntVar(&gen.Customers, "customers", 0, "customers (default 20)")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	gen.Seed = *seed
	if err := gen.Validate(); err != nil {
		return &exitError{code: 2, err: err}
	}
	log := newLogger(stderr, *logLevel)
	tuneGC(log)
	start := time.Now()

	kafka, err := devstack.StartKafka(ctx, devstack.KafkaOptions{})
	if err != nil {
		return err
	}
	defer kafka.Close()
	mr, err := miniredis.Run()
	if err != nil {
		return fmt.Errorf("start embedded redis: %w", err)
	}
	defer mr.Close()
	sim := devstack.NewSimulator()
	sim.SetSeed(*seed)
	if _, err := sim.Start("127.0.0.1:0"); err != nil {
		return fmt.Errorf("start simulator: %w", err)
	}
	defer sim.Close()
	// Flaky sinks, so retries show: a few 503s and a 429 with Retry-After.
	sim.SetFailRate(devstack.SinkSourceItems, 0.03, 503)
	sim.SetFailRate(devstack.SinkCRM, 0.05, 503)
	sim.FailNext(devstack.SinkFraud, 2, 429, "1")

	cfg := &config{
		Brokers:      kafka.Addrs(),
		RedisURL:     "redis://" + mr.Addr(),
		MagentoURL:   sim.URL(),
		MagentoToken: sim.Token(),
		CRMURL:       sim.WebhookURL(devstack.SinkCRM),
		FraudURL:     sim.WebhookURL(devstack.SinkFraud),
		EmailURL:     sim.WebhookURL(devstack.SinkEmail),
		Groups:       allGroups,
		LogLevel:     *logLevel,
		Topology:     topology{DrainTimeout: 10 * time.Second},
	}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	proc, err := newProcessor(cfg, rdb, prometheus.NewRegistry(), log)
	if err != nil {
		return err
	}
	runCtx, stopProc := context.WithCancel(ctx)
	defer stopProc()
	procDone := make(chan error, 1)
	go func() { procDone <- proc.Run(runCtx) }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addrs()...))
	if err != nil {
		return err
	}
	defer cl.Close()
	manifest, err := devstack.Generate(ctx, cl, gen)
	if err != nil {
		return fmt.Errorf("generate traffic: %w", err)
	}
	waitErr := waitCaughtUp(ctx, kadm.NewClient(cl), *timeout)
	stopProc()
	if err := <-procDone; err != nil {
		return fmt.Errorf("processor: %w", err)
	}
	if waitErr != nil {
		return waitErr
	}

	dlq, err := devstack.ReadDLQ(ctx, cl, devstack.DLQTopics())
	if err != nil {
		return err
	}
	verdict := devstack.Check(manifest, sim.Calls(), dlq, devstack.DefaultGroups())
	ok := demoStrict(&verdict) && verdict.OK()
	rep := demoReport{
		Groups:   proc.Stats(),
		Verdict:  verdict,
		Lost:     verdict.Lost,
		Produced: len(manifest.Records),
		OK:       ok,
		Seconds:  time.Since(start).Seconds(),
	}
	for _, g := range rep.Groups {
		rep.Applied += g.Applied
		rep.SkippedStale += g.SkippedStale
		rep.SkippedDuplicate += g.SkippedDuplicate
		rep.Filtered += g.Filtered
		rep.Retried += g.Retried
		rep.DeadLettered += g.DeadLettered
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printDemo(stdout, rep)
	}
	if !rep.OK {
		return &exitError{code: 1, err: errors.New("demo verdict failed: see the problems above")}
	}
	return nil
}

// waitCaughtUp waits until every shopstream group has committed every
// partition of its topic to the end offset.
func waitCaughtUp(ctx context.Context, adm *kadm.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	groups := make([]string, len(allGroups))
	for i, g := range allGroups {
		groups[i] = processor.GroupIDPrefix + g
	}
	for {
		lag, err := adm.Lag(ctx, groups...)
		if err == nil && totalLag(lag) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processing did not catch up within %s (lag %d): %w", timeout, totalLag(lag), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// totalLag sums the lag of every group; a group that has not committed yet
// counts as lagging.
func totalLag(lag kadm.DescribedGroupLags) int64 {
	if len(lag) == 0 {
		return -1
	}
	var sum int64
	for _, g := range lag {
		if g.Error() != nil || len(g.Lag) == 0 {
			return -1
		}
		for _, ps := range g.Lag {
			for _, l := range ps {
				if l.Err != nil {
					return -1
				}
				sum += l.Lag
			}
		}
	}
	return sum
}

// demoStrict holds the demo to more than devstack.Check does, which also
// judges runs with crashes and sink outages (the chaos suite): here nothing
// crashes and every injected sink failure is transient, so a valid event on
// a DLQ or an event id applied twice is a failure too. It adds a problem for
// each and reports whether there was none.
func demoStrict(v *devstack.Verdict) bool {
	ok := true
	for _, g := range v.Groups {
		if g.DeadLettered > 0 {
			ok = false
			v.Problems = append(v.Problems, fmt.Sprintf("%s: %d valid events dead-lettered, though every failure the demo injects is transient", g.Group, g.DeadLettered))
		}
		if g.DuplicateApplies > 0 {
			ok = false
			v.Problems = append(v.Problems, fmt.Sprintf("%s: %d events applied again, though nothing crashed (dedupe or fence let them through)", g.Group, g.DuplicateApplies))
		}
	}
	return ok
}

func printDemo(w io.Writer, rep demoReport) {
	fmt.Fprintf(w, "shopstream demo: %d records produced to embedded Kafka, processed by %d consumer groups in %.1fs\n\n",
		rep.Produced, len(rep.Groups), rep.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "group\tconsumed\tapplied\tskipped_stale\tskipped_duplicate\tfiltered\tretried\tdead_lettered\t")
	var t processor.GroupStats
	for _, g := range rep.Groups {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", g.Group, g.Consumed, g.Applied, g.SkippedStale, g.SkippedDuplicate, g.Filtered, g.Retried, g.DeadLettered)
		t.Consumed += g.Consumed
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", t.Consumed, rep.Applied, rep.SkippedStale, rep.SkippedDuplicate, rep.Filtered, rep.Retried, rep.DeadLettered)
	tw.Flush()
	fmt.Fprintf(w, "\nverdict, checked against what the simulated Magento and webhooks received:\n%s\n", rep.Verdict.String())
	if rep.OK {
		fmt.Fprintln(w, "PASS: every SKU at its highest version, no regression, nothing lost, every poison record on its DLQ; "+
			"every call carried its event, no valid event dead-lettered, none applied twice")
	} else {
		fmt.Fprintln(w, "FAIL")
	}
}
