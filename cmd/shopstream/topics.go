package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/internal/devstack"
)

const topicsUsage = `usage: shopstream topics <ensure|describe> [flags]

  ensure     create the missing topics (default: the four topics and their .dlq topics)
             with shopstream's configs; reports, never changes, existing ones
  describe   print partitions, leaders, replicas, ISR and non-default configs

"shopstream topics ensure -h" lists the flags.
`

// runTopics is `shopstream topics ensure|describe`.
func runTopics(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, topicsUsage)
		return &exitError{code: 2, err: errors.New("topics: no subcommand given; want ensure or describe")}
	}
	switch args[0] {
	case "ensure":
		return runTopicsEnsure(ctx, args[1:], stdout, stderr, getenv)
	case "describe":
		return runTopicsDescribe(ctx, args[1:], stdout, stderr, getenv)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, topicsUsage)
		return nil
	default:
		fmt.Fprint(stderr, topicsUsage)
		return &exitError{code: 2, err: fmt.Errorf("topics: unknown subcommand %q; want ensure or describe", args[0])}
	}
}

func topicsFlagUsage() string {
	return "comma-separated topics (default: " + strings.Join(admin.DefaultTopics(), ",") + ")"
}

func runTopicsEnsure(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("topics ensure", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var conn adminFlags
	conn.register(fs)
	partitions := fs.Int("partitions", devstack.DefaultPartitions, "partitions of each created topic (-1: the broker default)")
	rf := fs.Int("replication-factor", -1, "replicas of each partition (-1: the broker default); 3 or more also sets min.insync.replicas=2")
	names := fs.String("topics", "", topicsFlagUsage())
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("topics ensure: unexpected argument %q; every setting is a --flag", fs.Arg(0)))
	}
	if *partitions == 0 || *partitions < -1 || *partitions > 1<<20 {
		errs = append(errs, fmt.Errorf("partitions: %d is not a positive count; set --partitions to 1 or more (or -1 for the broker default)", *partitions))
	}
	if *rf == 0 || *rf < -1 || *rf > 1<<10 {
		errs = append(errs, fmt.Errorf("replication-factor: %d is not a positive count; set --replication-factor to 1 or more (or -1 for the broker default)", *rf))
	}
	if err := errors.Join(errs...); err != nil {
		return &exitError{code: 2, err: err}
	}
	cl, err := conn.client(ctx, fs, getenv)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, conn.timeout)
	defer cancel()
	rep, eerr := admin.EnsureTopics(ctx, cl, splitList(*names), int32(*partitions), int16(*rf), nil)
	if *asJSON {
		if err := opsJSON(stdout, rep); err != nil {
			return err
		}
	} else if err := printEnsure(stdout, rep); err != nil {
		return err
	}
	if eerr != nil {
		return fmt.Errorf("topics ensure: %w", eerr)
	}
	return nil
}

func printEnsure(w io.Writer, rep admin.EnsureReport) error {
	if len(rep.Topics) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tSTATUS\tPARTITIONS\tRF\tNOTES")
	for _, t := range rep.Topics {
		status, notes := "exists", t.Differences
		if t.Created {
			status, notes = "created", nil
			var cfg []string
			for _, k := range slices.Sorted(maps.Keys(t.Configs)) {
				cfg = append(cfg, k+"="+t.Configs[k])
			}
			notes = append(notes, strings.Join(cfg, " "))
		} else if len(notes) == 0 {
			notes = []string{"as wanted"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", t.Topic, status, t.Partitions, t.ReplicationFactor, notes[0])
		for _, n := range notes[1:] {
			fmt.Fprintf(tw, "\t\t\t\t%s\n", n)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "created %d, existed %d", len(rep.Created()), len(rep.Existing()))
	if d := rep.Differing(); len(d) > 0 {
		fmt.Fprintf(w, "; %d existing topics differ from what was asked (%s) and were not changed", len(d), strings.Join(d, ", "))
	}
	fmt.Fprintln(w)
	return nil
}

func runTopicsDescribe(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("topics describe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var conn adminFlags
	conn.register(fs)
	names := fs.String("topics", "", topicsFlagUsage())
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("topics describe: unexpected argument %q; every setting is a --flag", fs.Arg(0))}
	}
	cl, err := conn.client(ctx, fs, getenv)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, conn.timeout)
	defer cancel()
	descs, derr := admin.DescribeTopics(ctx, cl, splitList(*names))
	if *asJSON {
		if descs == nil {
			descs = []admin.TopicDescription{}
		}
		if err := opsJSON(stdout, descs); err != nil {
			return err
		}
	} else if err := printDescribe(stdout, descs); err != nil {
		return err
	}
	if derr != nil {
		return fmt.Errorf("topics describe: %w", derr)
	}
	return nil
}

func printDescribe(w io.Writer, descs []admin.TopicDescription) error {
	for i, d := range descs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s  %d partitions, replication factor %d, id %s\n", d.Topic, len(d.Partitions), d.ReplicationFactor, d.ID)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if len(d.Configs) == 0 {
			fmt.Fprintln(tw, "  configs: all broker defaults")
		}
		for j, c := range d.Configs {
			label := ""
			if j == 0 {
				label = "configs:"
			}
			v := c.Value
			if c.Sensitive {
				v = "(sensitive)"
			}
			fmt.Fprintf(tw, "  %s\t%s=%s\t(%s)\n", label, c.Key, v, c.Source)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PARTITION\tLEADER\tREPLICAS\tISR\tSTATUS")
		for _, p := range d.Partitions {
			status := "ok"
			switch {
			case p.Error != "":
				status = p.Error
			case p.Leader < 0:
				status = "no leader"
			case p.UnderReplicated():
				status = "under-replicated"
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", p.Partition, opsCoord(int64(p.Leader)), opsNodes(p.Replicas), opsNodes(p.ISR), status)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// opsNodes renders broker ids as "1,2,3".
func opsNodes(ids []int32) string {
	if len(ids) == 0 {
		return "-"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}
