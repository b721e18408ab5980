package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/processor"
)

// lagGroupFlag collects --group, repeatable and comma-separated.
type lagGroupFlag []string

func (g *lagGroupFlag) String() string { return strings.Join(*g, ",") }

func (g *lagGroupFlag) Set(s string) error {
	items := splitList(s)
	if len(items) == 0 {
		return errors.New("empty group name")
	}
	*g = append(*g, items...)
	return nil
}

// lagGroupID turns a built-in short name (inventory) into its group id
// (shopstream.inventory); anything else is taken as a full group id.
func lagGroupID(name string) string {
	if slices.Contains(allGroups, name) {
		return processor.GroupIDPrefix + name
	}
	return name
}

// runLag prints, per group, topic and partition, the committed offset, the
// end offset, the lag in records and the age of the oldest unconsumed
// record, with per-group totals, state and members.
func runLag(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("lag", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var af adminFlags
	af.register(fs)
	var groups lagGroupFlag
	fs.Var(&groups, "group", "group to report: short name (inventory) or full id (shopstream.inventory); repeatable, or comma-separated; default every shopstream.* group")
	topic := fs.String("topic", "", "report only this topic")
	asJSON := fs.Bool("json", false, "print a JSON array with one object per group, topic and partition")
	failOver := fs.Int64("fail-over", 0, "exit 3 when any group's total lag exceeds N records (for scripts and probes)")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("lag: unexpected argument %q; every setting is a --flag", fs.Arg(0))}
	}
	failSet := false
	fs.Visit(func(f *flag.Flag) { failSet = failSet || f.Name == "fail-over" })
	if failSet && *failOver < 0 {
		return &exitError{code: 2, err: fmt.Errorf("fail-over: %d is negative; give the largest acceptable total lag per group, in records", *failOver)}
	}
	ids := make([]string, len(groups))
	for i, g := range groups {
		ids[i] = lagGroupID(g)
	}

	cl, err := af.client(ctx, fs, getenv)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, af.timeout)
	defer cancel()
	lags, err := admin.Lag(ctx, cl, ids, *topic)
	if err != nil {
		return adminError(err)
	}

	if *asJSON {
		rows := []admin.PartitionLag{}
		for _, g := range lags {
			rows = append(rows, g.Partitions...)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			return err
		}
	} else {
		printLag(stdout, lags)
	}

	if failSet {
		var over []string
		for _, g := range lags {
			if g.Lag > *failOver {
				over = append(over, fmt.Sprintf("%s (%d)", g.Group, g.Lag))
			}
		}
		if len(over) > 0 {
			return &exitError{code: 3, err: fmt.Errorf("lag over --fail-over %d: %s", *failOver, strings.Join(over, ", "))}
		}
	}
	return nil
}

// adminError gives a not-found error exit code 2: the command named
// something that does not exist.
func adminError(err error) error {
	var nf *admin.NotFoundError
	if errors.As(err, &nf) {
		return &exitError{code: 2, err: err}
	}
	return err
}

// printLag prints the human table: one row per partition, then a totals
// row per group with its state and members.
func printLag(w io.Writer, lags []admin.GroupLag) {
	if len(lags) == 0 {
		fmt.Fprintln(w, "no shopstream consumer groups on this cluster (group ids starting with shopstream.)")
		return
	}
	tw, buf := newTable()
	fmt.Fprintln(tw, "GROUP\tTOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tTIME-LAG\tSTATE\tMEMBERS")
	noCommit := 0
	for i, g := range lags {
		if i > 0 {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t")
		}
		for _, p := range g.Partitions {
			committed := strconv.FormatInt(p.Committed, 10)
			if p.NoCommit {
				committed = "-*"
				noCommit++
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%s\t\t\n", g.Group, p.Topic, p.Partition, committed, p.End, p.Lag, lagAge(p.LagSeconds))
		}
		if len(g.Partitions) == 0 {
			fmt.Fprintf(tw, "%s\t(no topics: no commits, no assignment)\t\t\t\t\t\t\t\n", g.Group)
		}
		fmt.Fprintf(tw, "%s\tTOTAL\t\t\t\t%d\t%s\t%s\t%d\n", g.Group, g.Lag, lagAge(g.LagSeconds), g.State, g.Members)
	}
	flushTable(w, tw, buf)
	if noCommit > 0 {
		fmt.Fprintf(w, "\n* no committed offset (%s): the lag counts from the start offset, where the group would begin\n", plural(noCommit, "partition"))
	}
}

// newTable returns a tabwriter on a buffer; flushTable writes the buffer
// to w without the spaces tabwriter pads empty trailing cells with.
func newTable() (*tabwriter.Writer, *strings.Builder) {
	var b strings.Builder
	return tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0), &b
}

func flushTable(w io.Writer, tw *tabwriter.Writer, b *strings.Builder) {
	tw.Flush()
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		if body, ok := strings.CutSuffix(line, "\n"); ok {
			line = strings.TrimRight(body, " ") + "\n"
		}
		io.WriteString(w, line)
	}
}

// plural returns "1 partition", "2 partitions".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// lagAge formats an age in seconds: 0s, 4.2s, 1m30s, 2h5m0s.
func lagAge(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d <= 0:
		return "0s"
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}
