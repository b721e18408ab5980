package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/shopstream/shopstream/internal/gctune"
)

// row is one line of the table.
type row struct {
	scenario string  // "S1 overhead"
	ours     string  // shopstream's absolute figure
	base     string  // the baseline's, measured in the same run
	ratio    float64 // the judged figure
	unit     string  // appended to ratio and target ("×" or "")
	target   target
	err      error // a failed run or check: the row fails whatever its ratio
}

// target is "ratio ≥ v" (atLeast) or "ratio ≤ v".
type target struct {
	atLeast bool
	v       float64
}

func atLeast(v float64) target { return target{atLeast: true, v: v} }
func atMost(v float64) target  { return target{v: v} }

func (r row) pass() bool {
	if r.err != nil || r.ratio != r.ratio { // NaN: never measured
		return false
	}
	if r.target.atLeast {
		return r.ratio >= r.target.v
	}
	return r.ratio <= r.target.v
}

func (r row) targetText() string {
	if r.target == (target{}) {
		return "—"
	}
	op := "≤"
	if r.target.atLeast {
		op = "≥"
	}
	return fmt.Sprintf("%s %s%s", op, trimFloat(r.target.v), r.unit)
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func renderReport(c *config, rows []row, notes []string, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## shopstream load harness, %s\n\n", c.stamp)
	sizes := "full sizes"
	if c.quick {
		sizes = "-quick sizes (a smoke run, not a measurement)"
	}
	fmt.Fprintf(&b, "Machine: %s. Commit %s; %s; records compressed with %s; %s; took %s.\n\n", machine(), commit(), sizes, c.compression, gcText(gcSettings), took.Round(time.Second))
	b.WriteString("| scenario | shopstream | baseline (same run) | ratio | target | result |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, r := range rows {
		ratio := "—"
		if r.ratio == r.ratio && r.ours != "" {
			ratio = fmt.Sprintf("%.2f%s", r.ratio, r.unit)
		}
		result := "**pass**"
		if !r.pass() {
			result = "**FAIL**"
			if r.err != nil {
				result += ": " + escape(r.err.Error())
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.scenario, orDash(r.ours), orDash(r.base), ratio, r.targetText(), result)
	}
	if len(notes) > 0 {
		b.WriteString("\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func escape(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// machine describes where the run happened: CPU model and count, memory, Go.
func machine() string {
	model, cpus := "unknown CPU", 0
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "model name":
				model = strings.TrimSpace(v)
			case "processor":
				cpus++
			}
		}
		f.Close()
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kib); err == nil {
			mem = fmt.Sprintf(", %.1f GiB RAM", float64(kib)/(1<<20))
		}
	}
	return fmt.Sprintf("%s, %d CPUs online (nproc %d, GOMAXPROCS %d)%s, %s/%s, %s",
		model, cpus, runtime.NumCPU(), runtime.GOMAXPROCS(0), mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

// gcText describes the collector settings of the processes that run
// shopstream (see internal/gctune).
func gcText(s gctune.Settings) string {
	t := fmt.Sprintf("garbage collector GOGC=%d (%s)", s.Percent, s.PercentFrom)
	if s.LimitFrom == "none" {
		return t + ", no soft memory limit"
	}
	return fmt.Sprintf("%s, soft memory limit %.0f MiB (%s)", t, float64(s.Limit)/(1<<20), s.LimitFrom)
}

// commit names the checked-out commit, "+dirty" with local changes.
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	id := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		id += "+dirty"
	}
	return id
}

func kRate(perSec float64) string {
	switch {
	case perSec >= 1e6:
		return fmt.Sprintf("%.2f M rec/s", perSec/1e6)
	case perSec >= 1e3:
		return fmt.Sprintf("%.1f k rec/s", perSec/1e3)
	}
	return fmt.Sprintf("%.0f rec/s", perSec)
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }
