package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// replayReport is what replay prints; --json prints it as one object.
type replayReport struct {
	*admin.ResetPlan
	Executed bool           `json:"executed"`
	Reread   int64          `json:"reread"`
	Skip     int64          `json:"skip"`
	Reapply  *admin.Reapply `json:"reapply,omitempty"`
}

// runReplay moves a group's committed offsets with the semantics of
// Kafka's kafka-consumer-groups --reset-offsets: a dry run unless
// --execute, refused on a live group; --reapply also rewinds the version
// fence or the dedupe marks of exactly the replayed records.
func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var af adminFlags
	af.register(fs)
	group := fs.String("group", "", "the group to move: short name (inventory) or full id (shopstream.inventory)")
	toEarliest := fs.Bool("to-earliest", false, "reset to the earliest offset (log start)")
	toLatest := fs.Bool("to-latest", false, "reset to the latest offset (log end): skip everything not yet read")
	toDatetime := fs.String("to-datetime", "", "reset to the first record at or after this RFC 3339 time (2026-11-27T10:00:00Z); the end if none")
	byDuration := fs.String("by-duration", "", "reset to the first record at or after now minus this duration (30m, 2h, or ISO 8601 PT30M)")
	toOffset := fs.Int64("to-offset", 0, "reset to this offset, clamped to each partition's [start, end]")
	shiftBy := fs.Int64("shift-by", 0, "move the committed offset by N (negative: back), clamped to [start, end]")
	topic := fs.String("topic", "", "reset only this topic (default: the group's topics, or a built-in group's topic)")
	partitions := fs.String("partitions", "", "reset only these partitions, comma-separated (0,3)")
	execute := fs.Bool("execute", false, "commit the new offsets (default: dry run; the group must have no live members)")
	reapply := fs.Bool("reapply", false, "also rewind the version fence / dedupe marks of exactly the replayed records, so they are applied again (needs --redis-url)")
	redisURL := fs.String("redis-url", "", "URL of the fence and dedupe store, for --reapply, in any form `run` takes (env SHOPSTREAM_REDIS_URL)")
	// The rest of run's Redis settings, so that --reapply reaches the
	// store the way the service does (a password from a Secret, TLS).
	var rc redisConfig
	redisSettings := rc.register(fs)
	asJSON := fs.Bool("json", false, "print the plan (and what was done) as one JSON object")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: err}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("replay: unexpected argument %q; every setting is a --flag", fs.Arg(0))}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if !given["redis-url"] {
		*redisURL = getenv("SHOPSTREAM_REDIS_URL")
	}
	for _, st := range redisSettings {
		if v := getenv(st.env); v != "" && !given[st.flag] {
			*st.dst = v
		}
	}
	rc.URL = *redisURL

	var errs []error
	id := lagGroupID(strings.TrimSpace(*group))
	if id == "" {
		errs = append(errs, errors.New("group: missing; name the group with --group (inventory or shopstream.inventory)"))
	}
	spec := admin.ResetSpec{Topic: *topic}
	var modes []string
	if *toEarliest {
		modes, spec.Mode = append(modes, "--to-earliest"), admin.ToEarliest
	}
	if *toLatest {
		modes, spec.Mode = append(modes, "--to-latest"), admin.ToLatest
	}
	if given["to-datetime"] {
		modes, spec.Mode = append(modes, "--to-datetime"), admin.ToDatetime
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(*toDatetime))
		if err != nil {
			errs = append(errs, fmt.Errorf("to-datetime: %q is not an RFC 3339 time; write it like 2026-11-27T10:00:00Z or 2026-11-27T11:00:00.000+01:00", *toDatetime))
		}
		spec.At = t
	}
	if given["by-duration"] {
		modes, spec.Mode = append(modes, "--by-duration"), admin.ByDuration
		d, err := parseReplayDuration(*byDuration)
		if err != nil {
			errs = append(errs, err)
		}
		spec.Duration = d
	}
	if given["to-offset"] {
		modes, spec.Mode = append(modes, "--to-offset"), admin.ToOffset
		spec.Offset = *toOffset
	}
	if given["shift-by"] {
		modes, spec.Mode = append(modes, "--shift-by"), admin.ShiftBy
		spec.Offset = *shiftBy
	}
	const allModes = "--to-earliest, --to-latest, --to-datetime T, --by-duration D, --to-offset N or --shift-by N"
	switch len(modes) {
	case 0:
		errs = append(errs, fmt.Errorf("mode: missing; give exactly one of %s", allModes))
	case 1:
	default:
		errs = append(errs, fmt.Errorf("mode: %s given together; give exactly one of %s", strings.Join(modes, " and "), allModes))
	}
	if given["partitions"] {
		ps, err := parseReplayPartitions(*partitions)
		if err != nil {
			errs = append(errs, err)
		}
		spec.Partitions = ps
	}
	var redisOpts *redis.UniversalOptions
	if *reapply {
		if *redisURL == "" {
			errs = append(errs, errors.New("redis-url: missing; --reapply needs the fence and dedupe store: set --redis-url or SHOPSTREAM_REDIS_URL (redis://host:6379/0)"))
		} else if o, err := rc.options(getenv); err != nil {
			errs = append(errs, err)
		} else {
			redisOpts = o
		}
	}
	if err := errors.Join(errs...); err != nil {
		return &exitError{code: 2, err: err}
	}
	domain, builtin := replayGroupDomain(id)
	if builtin {
		spec.DefaultTopic = topics.DefaultTopic(domain)
		spec.AllowNewGroup = true
	}

	cl, err := af.client(ctx, fs, getenv)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, af.timeout)
	defer cancel()
	plan, err := admin.PlanReset(ctx, cl, id, spec)
	if err != nil {
		return adminError(err)
	}
	rep := replayReport{ResetPlan: plan, Reread: plan.Reread(), Skip: plan.Skip()}

	var rdb redis.UniversalClient
	if *reapply {
		rdb = redis.NewUniversalClient(redisOpts)
		defer rdb.Close()
		if err := checkRedis(ctx, rdb, af.timeout); err != nil {
			return err
		}
		if rep.Reapply, err = admin.PlanReapply(ctx, cl, rdb, plan, domain); err != nil {
			return err
		}
	}
	if *execute {
		// Fences first: should the commit then fail, they are merely
		// lower than needed; the other way round a failure would leave a
		// replay that re-applies nothing.
		if rep.Reapply != nil {
			if err := admin.ExecuteReapply(ctx, cl, rdb, rep.Reapply); err != nil {
				return err
			}
		}
		if err := admin.ExecuteReset(ctx, cl, plan); err != nil {
			if rep.Reapply != nil && rep.Reapply.Executed {
				err = fmt.Errorf("%w (the fences and dedupe marks listed were already rewound; run the same replay again once the group is stopped)", err)
			}
			return err
		}
		rep.Executed = true
	}

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printReplay(stdout, rep, modeText(modes, spec, *toDatetime, *byDuration))
	return nil
}

// replayGroupDomain returns the domain of a built-in group id, and false
// for any other group.
func replayGroupDomain(id string) (topics.Domain, bool) {
	name, ok := strings.CutPrefix(id, processor.GroupIDPrefix)
	if !ok || !slices.Contains(allGroups, name) {
		return "", false
	}
	switch {
	case name == "catalog":
		return topics.DomainCatalog, true
	case name == "inventory":
		return topics.DomainInventory, true
	case strings.HasPrefix(name, "order-"):
		return topics.DomainOrder, true
	default:
		return topics.DomainCustomer, true
	}
}

var isoDuration = regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

// parseReplayDuration reads a Go duration (30m, 1h30m) or, as Kafka's tool
// takes it, an ISO 8601 one (PT30M, P1DT2H).
func parseReplayDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("by-duration: %q is not a duration; write it like 30m, 2h or 1h30m (ISO 8601 PT30M works too)", s)
	d, err := time.ParseDuration(s)
	if err != nil {
		m := isoDuration.FindStringSubmatch(strings.ToUpper(s))
		if m == nil || s == "P" || strings.HasSuffix(strings.ToUpper(s), "T") {
			return 0, bad
		}
		d = 0
		for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute, time.Second} {
			if m[i+1] == "" {
				continue
			}
			f, err := strconv.ParseFloat(m[i+1], 64)
			if err != nil {
				return 0, bad
			}
			d += time.Duration(f * float64(unit))
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("by-duration: %q must be positive: how far back from now to go", s)
	}
	return d, nil
}

// parseReplayPartitions reads "0,3".
func parseReplayPartitions(s string) ([]int32, error) {
	items := splitList(s)
	if len(items) == 0 {
		return nil, errors.New("partitions: empty; list partition numbers like 0,3")
	}
	var out []int32
	for _, it := range items {
		p, err := strconv.ParseInt(it, 10, 32)
		if err != nil || p < 0 {
			return nil, fmt.Errorf("partitions: %q is not a partition number; list them like 0,3", it)
		}
		if !slices.Contains(out, int32(p)) {
			out = append(out, int32(p))
		}
	}
	return out, nil
}

func modeText(modes []string, spec admin.ResetSpec, datetime, duration string) string {
	switch spec.Mode {
	case admin.ToDatetime:
		return "--to-datetime " + datetime
	case admin.ByDuration:
		return "--by-duration " + duration
	case admin.ToOffset, admin.ShiftBy:
		return fmt.Sprintf("%s %d", modes[0], spec.Offset)
	}
	return modes[0]
}

// printReplay prints the plan table, what was done, and the reapply.
func printReplay(w io.Writer, rep replayReport, mode string) {
	p := rep.ResetPlan
	fmt.Fprintf(w, "group %s: %s, %s\n", p.Group, p.State, plural(p.Members, "member"))
	if rep.Executed {
		fmt.Fprintf(w, "reset %s: executed\n\n", mode)
	} else {
		fmt.Fprintf(w, "reset %s: dry run, nothing changed (add --execute to commit)\n\n", mode)
	}
	tw, buf := newTable()
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT\tNEW\tSTART\tEND\tCHANGE")
	for _, r := range p.Partitions {
		cur := strconv.FormatInt(r.Current, 10)
		if r.NoCommit {
			cur = "-"
		}
		var change []string
		switch {
		case r.Reread > 0:
			change = append(change, fmt.Sprintf("re-read %d", r.Reread))
		case r.Skip > 0:
			change = append(change, fmt.Sprintf("skip %d", r.Skip))
		default:
			change = append(change, "none")
		}
		if r.Clamped != "" {
			change = append(change, "(clamped to "+r.Clamped+")")
		}
		if r.NoCommit {
			change = append(change, "(no commit: would begin at start)")
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%s\n", r.Topic, r.Partition, cur, r.New, r.Start, r.End, strings.Join(change, " "))
	}
	fmt.Fprintf(tw, "TOTAL\t\t\t\t\t\tre-read %d, skip %d\n", rep.Reread, rep.Skip)
	flushTable(w, tw, buf)
	for _, n := range p.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	if rep.Executed {
		fmt.Fprintf(w, "\ncommitted the new offsets of %s of %s; when it starts it re-reads %s and skips %d\n", plural(len(p.Partitions), "partition"), p.Group, plural(int(rep.Reread), "record"), rep.Skip)
	}
	if rep.Reapply != nil {
		printReapply(w, rep.Reapply)
	} else if rep.Reread > 0 {
		fmt.Fprintln(w, "\nthe version fence and event-id dedupe still skip what the group already applied; add --reapply to apply the replayed records again")
	}
}

func printReapply(w io.Writer, r *admin.Reapply) {
	state := "dry run"
	if r.Executed {
		state = "executed"
	}
	fmt.Fprintf(w, "\nreapply (%s): %s read in the replayed ranges, %d poison skipped\n", state, plural(r.Records, "record"), r.Poison)
	if len(r.Fences) == 0 && len(r.IDs) == 0 {
		fmt.Fprintln(w, "  nothing to rewind")
	}
	for _, f := range r.Fences {
		switch {
		case f.Lowered && r.Executed:
			fmt.Fprintf(w, "  fence %s: lowered %d → %d (first replayed version %d)\n", f.Key, f.From, f.To, f.FirstVersion)
		case f.Lowered:
			fmt.Fprintf(w, "  fence %s: would lower %d → %d (first replayed version %d)\n", f.Key, f.From, f.To, f.FirstVersion)
		case f.From == 0:
			fmt.Fprintf(w, "  fence %s: left alone: no version stored (nothing applied yet)\n", f.Key)
		default:
			fmt.Fprintf(w, "  fence %s: left alone: stored %d is below the first replayed version %d\n", f.Key, f.From, f.FirstVersion)
		}
	}
	for _, id := range r.IDs {
		switch {
		case id.Present && r.Executed:
			fmt.Fprintf(w, "  dedupe %s: forgot event %s (%s)\n", id.Key, id.ID, id.Subject)
		case id.Present:
			fmt.Fprintf(w, "  dedupe %s: would forget event %s (%s)\n", id.Key, id.ID, id.Subject)
		default:
			fmt.Fprintf(w, "  dedupe %s: no mark (event %s was not applied)\n", id.Key, id.ID)
		}
	}
}
