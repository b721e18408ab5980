package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/topics"
)

const dlqUsage = `usage: shopstream dlq <list|redrive> --topic T.dlq [flags]

  list      print the dead letters of a dead-letter topic (--json: every header)
  redrive   write selected dead letters back to their original topic, for the group
            that failed them; a dry run unless --execute

"shopstream dlq list -h" lists the flags.
`

// runDLQ is `shopstream dlq list|redrive`.
func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return &exitError{code: 2, err: errors.New("dlq: no subcommand given; want list or redrive")}
	}
	switch args[0] {
	case "list":
		return runDLQList(ctx, args[1:], stdout, stderr, getenv)
	case "redrive":
		return runDLQRedrive(ctx, args[1:], stdout, stderr, getenv)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, dlqUsage)
		return nil
	default:
		fmt.Fprint(stderr, dlqUsage)
		return &exitError{code: 2, err: fmt.Errorf("dlq: unknown subcommand %q; want list or redrive", args[0])}
	}
}

// dlqFlags are the flags list and redrive share.
type dlqFlags struct {
	conn                     adminFlags
	topic, group, class, key string
	since                    string
	asJSON                   bool
}

func (d *dlqFlags) register(fs *flag.FlagSet) {
	d.conn.register(fs)
	fs.StringVar(&d.topic, "topic", "", "dead-letter topic, such as "+topics.DLQTopic(topics.TopicOrder)+" (required)")
	fs.StringVar(&d.group, "group", "", "only records this group failed: short name (order-crm) or full group id")
	fs.StringVar(&d.class, "error-class", "", "only this error class: poison, permanent or retries_exhausted")
	fs.StringVar(&d.key, "key", "", "only records with this key (SKU, order id, customer id)")
	fs.StringVar(&d.since, "since", "", "only records that failed at or after this RFC 3339 time, or within this duration (30m, 24h, 7d)")
	fs.BoolVar(&d.asJSON, "json", false, "print JSON instead of a table")
}

// parse parses args and validates everything that needs no broker; every
// problem is reported at once, as a usage error.
// open parses the command line and connects to Kafka: the filter and a
// client the caller closes.
func (d *dlqFlags) open(ctx context.Context, fs *flag.FlagSet, args []string, getenv func(string) string) (admin.Filter, *kgo.Client, error) {
	f, err := d.parse(fs, args, time.Now())
	if err != nil {
		return f, nil, err
	}
	cl, err := d.conn.client(ctx, fs, getenv)
	return f, cl, err
}

func (d *dlqFlags) parse(fs *flag.FlagSet, args []string, now time.Time) (admin.Filter, error) {
	if err := fs.Parse(args); err != nil {
		return admin.Filter{}, &exitError{code: 2, err: err}
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("%s: unexpected argument %q; every setting is a --flag", fs.Name(), fs.Arg(0)))
	}
	if d.topic == "" {
		errs = append(errs, fmt.Errorf("topic: missing; set --topic to a dead-letter topic such as %s", topics.DLQTopic(topics.TopicOrder)))
	} else if err := admin.ValidateDLQTopic(d.topic); err != nil {
		errs = append(errs, fmt.Errorf("topic: %w", err))
	}
	if d.group != "" && !strings.Contains(d.group, ".") && !slices.Contains(allGroups, d.group) {
		errs = append(errs, fmt.Errorf("group: unknown group %q; known: %s (or give a full group id)", d.group, strings.Join(allGroups, ", ")))
	}
	f := admin.Filter{Group: d.group, ErrorClass: d.class, Key: d.key}
	if err := f.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("error-class: %w", err))
	}
	if d.since != "" {
		t, err := dlqSince(d.since, now)
		if err != nil {
			errs = append(errs, err)
		}
		f.Since = t
	}
	if err := errors.Join(errs...); err != nil {
		return f, &exitError{code: 2, err: err}
	}
	return f, nil
}

// dlqSince parses --since: an RFC 3339 time, or a positive duration back
// from now in Go's syntax plus a day unit (30m, 24h, 7d, 1d12h).
func dlqSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	rest, days := s, 0
	var err error
	if i := strings.IndexByte(s, 'd'); i > 0 {
		days, err = strconv.Atoi(s[:i])
		rest = s[i+1:]
	}
	var d time.Duration
	if rest != "" && err == nil {
		d, err = time.ParseDuration(rest)
	}
	d += time.Duration(days) * 24 * time.Hour
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("since: %q is neither an RFC 3339 time (2026-11-27T10:00:00Z) nor a positive duration (30m, 24h, 7d)", s)
	}
	return now.Add(-d), nil
}

func runDLQList(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("dlq list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var d dlqFlags
	d.register(fs)
	f, cl, err := d.open(ctx, fs, args, getenv)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, d.conn.timeout)
	defer cancel()
	dls, err := admin.ListDLQ(ctx, cl, d.topic, f)
	if err != nil {
		return fmt.Errorf("dlq list: %w", err)
	}
	if d.asJSON {
		if dls == nil {
			dls = []admin.DeadLetter{}
		}
		return opsJSON(stdout, dls)
	}
	filtered := f != admin.Filter{}
	if len(dls) == 0 {
		if filtered {
			fmt.Fprintf(stdout, "no dead letters in %s match the filter\n", d.topic)
		} else {
			fmt.Fprintf(stdout, "no dead letters in %s\n", d.topic)
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ORIGINAL TOPIC\tPARTITION\tOFFSET\tKEY\tGROUP\tCLASS\tATTEMPTS\tREDRIVES\tFAILED AT\tERROR")
	malformed, omitted := 0, 0
	for _, dl := range dls {
		if len(dl.Problems) > 0 {
			malformed++
		}
		failedAt := "?"
		if !dl.FailedAt.IsZero() {
			failedAt = dl.FailedAt.UTC().Format(time.RFC3339)
		}
		errText := opsClip(dl.Error, 60)
		if dl.ValueOmitted {
			omitted++
			errText = "[value omitted, " + opsCoord(dl.ValueOmittedBytes) + " bytes] " + errText
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n",
			opsOrQuestion(dl.OriginalTopic), opsCoord(int64(dl.OriginalPartition)), opsCoord(dl.OriginalOffset),
			opsClip(string(dl.Key), 40), opsOrQuestion(dl.Group), opsOrQuestion(dl.ErrorClass),
			dl.Attempts, dl.RedriveCount, failedAt, errText)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	what := fmt.Sprintf("%d dead letters in %s", len(dls), d.topic)
	if filtered {
		what += " match the filter"
	}
	fmt.Fprintln(stdout, what+"; --json shows every header and the full error")
	if malformed > 0 {
		fmt.Fprintf(stdout, "%d of them lack contract headers or carry malformed ones (? above); --json lists the problems\n", malformed)
	}
	if omitted > 0 {
		fmt.Fprintf(stdout, "%d of them were too large for Kafka with the original value and headers, so they hold neither ([value omitted] above, with the value's size); "+
			"the original is still at its original topic, partition and offset, and redrive reads it back from there\n", omitted)
	}
	return nil
}

func runDLQRedrive(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("dlq redrive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var d dlqFlags
	d.register(fs)
	var opts admin.RedriveOptions
	fs.BoolVar(&opts.Execute, "execute", false, "write the records and commit; without it, only show what would be redriven")
	fs.StringVar(&opts.ConsumerGroup, "consumer-group", "", "consumer group that remembers how far redrive went (default shopstream-redrive.<group or all>[.class=…][.key=…][.since=…])")
	f, cl, err := d.open(ctx, fs, args, getenv)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, d.conn.timeout)
	defer cancel()
	rep, rerr := admin.Redrive(ctx, cl, d.topic, f, opts)
	if rerr != nil && rep.Redriven == 0 && rep.Failed == 0 && rep.Missing == 0 {
		return fmt.Errorf("dlq redrive: %w", rerr)
	}
	if d.asJSON {
		if err := opsJSON(stdout, rep); err != nil {
			return err
		}
	} else if err := printRedrive(stdout, rep); err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("dlq redrive: %w", rerr)
	}
	return nil
}

func printRedrive(w io.Writer, rep admin.RedriveReport) error {
	if len(rep.Records) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		to := "REDRIVE TO"
		if rep.Executed {
			to = "REDRIVEN TO"
		}
		fmt.Fprintf(tw, "DLQ\tKEY\tGROUP\tCLASS\tORIGINAL\t%s\tCOUNT\n", to)
		for _, r := range rep.Records {
			dest := fmt.Sprintf("%s/%d", r.Topic, r.Partition)
			switch {
			case r.Skipped != "":
				dest = "skipped: " + r.Skipped
			case r.Missing != "":
				dest = "not redriven: " + opsClip(r.Missing, 120)
			case r.Error != "":
				dest = "failed: " + opsClip(r.Error, 60)
			case r.Offset >= 0:
				dest += fmt.Sprintf("@%d", r.Offset)
			}
			fmt.Fprintf(tw, "%d@%d\t%s\t%s\t%s\t%s/%s@%s\t%s\t%d\n",
				r.DLQPartition, r.DLQOffset, opsClip(r.Key, 40), opsOrQuestion(r.Group), opsOrQuestion(r.ErrorClass),
				opsOrQuestion(r.OriginalTopic), opsCoord(int64(r.OriginalPartition)), opsCoord(r.OriginalOffset), dest, r.RedriveCount)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	from := opsReadRanges(rep)
	readBack := 0
	for _, r := range rep.Records {
		if r.ValueOmitted && r.Skipped == "" && r.Missing == "" && r.Error == "" {
			readBack++
		}
	}
	if !rep.Executed {
		fmt.Fprintf(w, "dry run: %d of the %d dead letters read from %s (consumer group %s; read %s) would be redriven",
			rep.Selected-rep.Skipped-rep.Missing, rep.Read, rep.Topic, rep.ConsumerGroup, from)
		if readBack > 0 {
			fmt.Fprintf(w, " (%d of them from the original, their value omitted on the DLQ)", readBack)
		}
		if rep.Skipped > 0 {
			fmt.Fprintf(w, ", %d cannot be", rep.Skipped)
		}
		if rep.Missing > 0 {
			fmt.Fprintf(w, ", %d have lost their original (an executed run stops its partition's commit there)", rep.Missing)
		}
		fmt.Fprintln(w, "; nothing was written or committed. Add --execute to redrive.")
		return nil
	}
	fmt.Fprintf(w, "redrove %d of the %d dead letters read from %s (consumer group %s; read %s)", rep.Redriven, rep.Read, rep.Topic, rep.ConsumerGroup, from)
	if readBack > 0 {
		fmt.Fprintf(w, "; %d from the original, their value omitted on the DLQ", readBack)
	}
	if rep.Skipped > 0 {
		fmt.Fprintf(w, "; skipped %d", rep.Skipped)
	}
	if rep.Failed > 0 {
		fmt.Fprintf(w, "; %d writes failed", rep.Failed)
	}
	if rep.Missing > 0 {
		fmt.Fprintf(w, "; %d not redriven, their original gone", rep.Missing)
	}
	if len(rep.Committed) > 0 {
		fmt.Fprintf(w, "; committed %s", opsOffsetList(rep.Committed))
	} else {
		fmt.Fprint(w, "; nothing new to commit")
	}
	fmt.Fprintln(w)
	return nil
}

// opsReadRanges renders what a redrive read as "partition:from→until"
// for the partitions it read.
func opsReadRanges(rep admin.RedriveReport) string {
	ps := make([]int32, 0, len(rep.From))
	for p, from := range rep.From {
		if from < rep.Until[p] {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return "nothing new"
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%d:%d→%d", p, rep.From[p], rep.Until[p])
	}
	return "partition:offsets " + strings.Join(parts, " ")
}

// opsOffsetList renders partition → offset as "0:12 3:4", by partition.
func opsOffsetList(m map[int32]int64) string {
	ps := make([]int32, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%d:%d", p, m[p]))
	}
	if len(parts) == 0 {
		return "no partitions"
	}
	return "partition:offset " + strings.Join(parts, " ")
}

// opsCoord renders a partition or offset; -1 (unknown) is "?".
func opsCoord(n int64) string {
	if n < 0 {
		return "?"
	}
	return strconv.FormatInt(n, 10)
}

func opsOrQuestion(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// opsClip makes s one line of at most n runes.
func opsClip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func opsJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
