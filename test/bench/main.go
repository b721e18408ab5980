// Command bench is shopstream's load harness (issue 6). Every scenario
// measures shopstream and a baseline side by side, in the same run and on
// the same broker, and compares their ratio with a target: the machines are
// shared and noisy, so only ratios are judged; absolute figures are printed
// beside them for context.
//
//	go run ./test/bench [-quick] [-scenarios S1,S3] [-cpuprofile] [-memprofile] [-compression snappy] [-results DIR]
//
// It prints one markdown table, writes it with the machine's description to
// DIR/<timestamp>.md (default test/bench/results, git-ignored), and exits 1
// when a scenario misses its target or a check fails. Kafka is kfake in a
// child process spoken to over TCP; Redis is a real redis-server on a free
// loopback port; sinks are real HTTP servers on loopback. `make bench` runs
// the Go micro-benchmarks first, then this.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/shopstream/shopstream/internal/gctune"
)

func main() {
	role := os.Getenv(roleEnv)
	if role != "broker" {
		// The harness and its drain children host shopstream's groups,
		// so they run with the collector settings `shopstream run`
		// applies; the raw baselines of S1 and S3 share the harness
		// process and so share the settings. The broker, standing in
		// for a Kafka of its own, keeps Go's defaults.
		gcSettings = gctune.Apply()
	}
	if role != "" {
		os.Exit(child(role))
	}
	os.Exit(run())
}

// gcSettings are the harness's garbage collector settings, for the report.
var gcSettings gctune.Settings

// config is what the flags choose.
type config struct {
	quick       bool
	compression string // producer batch compression: a key of codecs
	cpuProfile  bool
	memProfile  bool
	dir         string // results directory
	stamp       string // names the results of this run
}

// scenario produces rows of the table; an error fails the scenario's rows.
type scenario struct {
	id   string
	name string
	run  func(ctx context.Context, c *config) ([]row, []string, error)
}

var scenarios = []scenario{
	{"S1", "overhead", nil}, // S1 and S2 share a broker and runs: see runS12
	{"S2", "fence", nil},
	{"S3", "slow sink", runS3},
	{"S4", "hot SKUs", runS4},
	{"S5", "recovery flood", runS5},
	{"S6", "memory", runS6},
}

func run() int {
	c := &config{}
	list := flag.String("scenarios", "S1,S2,S3,S4,S5,S6", "comma-separated scenarios to run")
	flag.BoolVar(&c.quick, "quick", false, "smaller sizes, one round: a smoke run, not a measurement")
	flag.BoolVar(&c.cpuProfile, "cpuprofile", false, "write CPU profiles of shopstream in S1, S2 and S3 to the results directory (from an extra, unmeasured run)")
	flag.BoolVar(&c.memProfile, "memprofile", false, "write heap profiles of shopstream in S1, S2 and S3 to the results directory (from an extra, unmeasured run)")
	flag.StringVar(&c.compression, "compression", "snappy", "batch compression of the produced records: none, gzip, snappy (franz-go's default), lz4 or zstd")
	flag.StringVar(&c.dir, "results", filepath.Join("test", "bench", "results"), "directory for the table and the profiles")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		return 2
	}
	if _, ok := codecs[c.compression]; !ok {
		fmt.Fprintf(os.Stderr, "bench: -compression: unknown codec %q (none, gzip, snappy, lz4, zstd)\n", c.compression)
		return 2
	}
	selected := map[string]bool{}
	for _, s := range strings.Split(*list, ",") {
		s = strings.ToUpper(strings.TrimSpace(s))
		if s == "" {
			continue
		}
		if !slices.ContainsFunc(scenarios, func(sc scenario) bool { return sc.id == s }) {
			fmt.Fprintf(os.Stderr, "bench: -scenarios: unknown scenario %q (known: S1 to S6)\n", s)
			return 2
		}
		selected[s] = true
	}
	if len(selected) == 0 {
		fmt.Fprintln(os.Stderr, "bench: -scenarios: none selected")
		return 2
	}
	started := time.Now()
	c.stamp = started.UTC().Format("20060102T150405Z")
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "bench: results directory: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var rows []row
	var notes []string
	add := func(id, name string, rs []row, ns []string, err error) {
		if err != nil {
			logf("%s: %v", id, err)
			if len(rs) == 0 {
				rs = []row{{scenario: id + " " + name}}
			}
			for i := range rs {
				rs[i].err = err
			}
		}
		rows = append(rows, rs...)
		notes = append(notes, ns...)
	}
	if selected["S1"] || selected["S2"] {
		logf("S1/S2: overhead and fence")
		rs, ns, err := runS12(ctx, c, selected["S1"], selected["S2"])
		add("S1/S2", "overhead and fence", rs, ns, err)
	}
	for _, sc := range scenarios {
		if sc.run == nil || !selected[sc.id] || ctx.Err() != nil {
			continue
		}
		logf("%s: %s", sc.id, sc.name)
		rs, ns, err := sc.run(ctx, c)
		add(sc.id, sc.name, rs, ns, err)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "bench: interrupted")
		return 1
	}

	report := renderReport(c, rows, notes, time.Since(started))
	fmt.Print(report)
	path := filepath.Join(c.dir, c.stamp+".md")
	if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "bench: wrote %s\n", path)
	for _, r := range rows {
		if !r.pass() {
			return 1
		}
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
