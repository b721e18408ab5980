package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopstream/shopstream/processor"
)

// runS6 is memory: the peak RSS of a process draining a 1M-record backlog
// vs one draining a 100k-record backlog, each in a fresh child process (a
// clean peak), with the broker in another child, so that the figure is the
// processor's alone. Fetch buffers and in-flight work are bounded by
// configuration, not by lag, so the two peaks should be about equal. A
// peak depends on where the garbage collector happens to run (single
// drains of the same backlog peaked 39-47 MiB), so each size is drained in
// three interleaved rounds and the medians are compared.
func runS6(ctx context.Context, c *config) ([]row, []string, error) {
	large, rounds := 1_000_000, 3
	if c.quick {
		large, rounds = 500_000, 1
	}
	small := large / 10
	const smallTopic, largeTopic = "bench.s6.small", "bench.s6.large"
	b, err := startBroker(ctx, smallTopic, largeTopic)
	if err != nil {
		return nil, nil, err
	}
	defer b.Close()
	if _, err := produceTimed(ctx, c, b.addrs, smallTopic, small, uniformKeys(6)); err != nil {
		return nil, nil, err
	}
	if _, err := produceTimed(ctx, c, b.addrs, largeTopic, large, uniformKeys(7)); err != nil {
		return nil, nil, err
	}
	drain := func(topic string, n, round int) (drainResult, error) {
		p, err := spawn("drain", drainConfig{Brokers: b.addrs, Topic: topic, Group: fmt.Sprintf("bench.s6.%s.%d", topic, round), Records: n})
		if err != nil {
			return drainResult{}, err
		}
		defer p.stop()
		l, err := p.line(ctx, 5*time.Minute)
		if err != nil {
			return drainResult{}, fmt.Errorf("drain %s: %w", topic, err)
		}
		var r drainResult
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			return r, fmt.Errorf("drain %s: child answered %q: %w", topic, l, err)
		}
		if r.Error != "" {
			return r, fmt.Errorf("drain %s: %s", topic, r.Error)
		}
		logf("  drained %d records: peak RSS %s, %s", n, mib(r.PeakKiB), kRate(float64(n)/r.Seconds))
		return r, nil
	}
	var smalls, larges []drainResult
	for r := range rounds {
		rs, err := drain(smallTopic, small, r)
		if err != nil {
			return nil, nil, err
		}
		rl, err := drain(largeTopic, large, r)
		if err != nil {
			return nil, nil, err
		}
		smalls, larges = append(smalls, rs), append(larges, rl)
	}
	rs, rl := medianPeak(smalls), medianPeak(larges)
	rows := []row{
		{
			scenario: fmt.Sprintf("S6 memory: peak RSS draining %s vs %s records", count(large), count(small)),
			ours:     mib(rl.PeakKiB), base: mib(rs.PeakKiB),
			ratio: float64(rl.PeakKiB) / float64(rs.PeakKiB), target: atMost(1.2),
		},
		{
			scenario: fmt.Sprintf("S6 memory: peak RSS draining %s records, absolute (MiB)", count(large)),
			ours:     mib(rl.PeakKiB), base: "limit 256 MiB",
			ratio: float64(rl.PeakKiB) / 1024, target: atMost(256),
		},
	}
	notes := []string{fmt.Sprintf("S6: each drain in a fresh child process (VmHWM of /proc/self/status), no-op sink, no fence, concurrency default %d; median of %d interleaved rounds (peaks %s / %s); RSS before consuming %s / %s; drain rates %s / %s.",
		64, rounds, peaks(larges), peaks(smalls), mib(rl.StartKiB), mib(rs.StartKiB), kRate(float64(large)/rl.Seconds), kRate(float64(small)/rs.Seconds))}
	return rows, notes, nil
}

// medianPeak is the drain with the median peak RSS.
func medianPeak(rs []drainResult) drainResult {
	sorted := slices.SortedFunc(slices.Values(rs), func(a, b drainResult) int { return cmp.Compare(a.PeakKiB, b.PeakKiB) })
	return sorted[len(sorted)/2]
}

func peaks(rs []drainResult) string {
	var out []string
	for _, r := range rs {
		out = append(out, mib(r.PeakKiB))
	}
	return strings.Join(out, ", ")
}

func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

type drainConfig struct {
	Brokers []string `json:"brokers"`
	Topic   string   `json:"topic"`
	Group   string   `json:"group"`
	Records int      `json:"records"`
}

type drainResult struct {
	Seconds  float64 `json:"seconds"`
	StartKiB int64   `json:"start_kib"` // VmHWM before the processor started
	PeakKiB  int64   `json:"peak_kib"`  // VmHWM after the drain
	Error    string  `json:"error,omitempty"`
}

// drainMain is the drain child: it drains one topic with the S1 processor
// configuration and prints its peak RSS as one JSON line.
func drainMain() error {
	var cfg drainConfig
	if err := json.Unmarshal([]byte(os.Getenv(configEnv)), &cfg); err != nil {
		return fmt.Errorf("%s: %w", configEnv, err)
	}
	var r drainResult
	err := func() error {
		start, err := vmHWM()
		if err != nil {
			return err
		}
		r.StartKiB = start
		m, err := runShopstream(context.Background(), cfg.Brokers, nil, processor.GroupConfig{
			Name: "s6", ID: cfg.Group, Topic: cfg.Topic, Handler: noop, Idempotency: processor.IdempotencyNone,
		}, cfg.Records, 4*time.Minute, nil)
		if err != nil {
			return err
		}
		r.Seconds = m.elapsed().Seconds()
		r.PeakKiB, err = vmHWM()
		return err
	}()
	if err != nil {
		r.Error = err.Error()
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// vmHWM returns the process's peak resident set size in KiB.
func vmHWM() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak RSS needs Linux's /proc: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}
