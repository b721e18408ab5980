package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/internal/redistest"
	"github.com/shopstream/shopstream/ordering"
	"github.com/shopstream/shopstream/topics"
)

// Usage mistakes are exit code 2, all reported at once, each naming its
// flag and the fix, before any broker is contacted.
func TestReplayFlagErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"nothing", nil, []string{"group: missing", "--group", "mode: missing", "--to-earliest", "--shift-by N"}},
		{"two modes", []string{"--group", "inventory", "--to-earliest", "--shift-by", "-3"}, []string{"--to-earliest and --shift-by", "exactly one"}},
		{"bad datetime", []string{"--group", "inventory", "--to-datetime", "2026-11-27 10:00"}, []string{"to-datetime", `"2026-11-27 10:00"`, "RFC 3339", "2026-11-27T10:00:00Z"}},
		{"datetime without zone", []string{"--group", "inventory", "--to-datetime", "2026-11-27T10:00:00"}, []string{"to-datetime", "RFC 3339"}},
		{"bad duration", []string{"--group", "inventory", "--by-duration", "half an hour"}, []string{"by-duration", "30m", "PT30M"}},
		{"negative duration", []string{"--group", "inventory", "--by-duration", "-5m"}, []string{"by-duration", "positive"}},
		{"bad partitions", []string{"--group", "inventory", "--to-latest", "--partitions", "0,x"}, []string{"partitions", `"x"`, "0,3"}},
		{"reapply without redis", []string{"--group", "inventory", "--to-latest", "--reapply"}, []string{"redis-url: missing", "SHOPSTREAM_REDIS_URL"}},
		{"reapply with a bad url", []string{"--group", "inventory", "--to-latest", "--reapply", "--redis-url", "http://x"}, []string{"redis-url", "redis://"}},
		{"stray argument", []string{"--group", "inventory", "--to-latest", "now"}, []string{`unexpected argument "now"`}},
		{"no brokers", []string{"--group", "inventory", "--to-latest"}, []string{"brokers: missing"}},
	}
	for _, c := range cases {
		err := runReplay(context.Background(), c.args, io.Discard, io.Discard, envOf(nil))
		if exitCode(err) != 2 {
			t.Errorf("%s: exit %d (%v), want 2", c.name, exitCode(err), err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
	for in, want := range map[string]time.Duration{"30m": 30 * time.Minute, "PT1H45M": 105 * time.Minute, "P1DT2H": 26 * time.Hour, "pt1.5s": 1500 * time.Millisecond} {
		if d, err := parseReplayDuration(in); err != nil || d != want {
			t.Errorf("parseReplayDuration(%q) = %v, %v; want %v", in, d, err, want)
		}
	}
	for _, in := range []string{"P", "PT", "P1H", "1d", ""} {
		if _, err := parseReplayDuration(in); err == nil {
			t.Errorf("parseReplayDuration(%q) accepted", in)
		}
	}
}

// A dry run prints the plan and changes nothing; --json prints it as one
// object; --execute commits it; a live group refuses --execute; unknown
// group, topic and partition are named.
func TestReplayCommand(t *testing.T) {
	f := newLagFixture(t)
	f.stock(0, "SKU-A", 1, 5, time.Now())
	f.stock(1, "SKU-B", 1, 3, time.Now())
	const group = "shopstream.inventory"
	f.commit(group, topics.TopicInventory, map[int32]int64{0: 5, 1: 3})

	out, err := f.run(runReplay, "--group", "inventory", "--shift-by", "-2")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"group shopstream.inventory: Empty, 0 members", "reset --shift-by -2: dry run", "TOPIC", "CURRENT", "NEW", "re-read 2", "TOTAL", "re-read 4, skip 0", "--reapply"} {
		if !strings.Contains(out, w) {
			t.Errorf("dry run output lacks %q:\n%s", w, out)
		}
	}
	if c := f.committed(group, topics.TopicInventory); c[0] != 5 || c[1] != 3 {
		t.Errorf("the dry run changed the commits: %v", c)
	}

	out, err = f.run(runReplay, "--group", "shopstream.inventory", "--to-earliest", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Group      string `json:"group"`
		Mode       string `json:"mode"`
		Executed   bool   `json:"executed"`
		Reread     int64  `json:"reread"`
		Partitions []struct {
			Topic     string `json:"topic"`
			Partition int32  `json:"partition"`
			Current   int64  `json:"current"`
			New       int64  `json:"new"`
			Reread    int64  `json:"reread"`
			NoCommit  bool   `json:"no_commit"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("replay --json: %v\n%s", err, out)
	}
	// The default scope is the group's committed topic, all of its partitions.
	if rep.Group != group || rep.Mode != "to-earliest" || rep.Executed || rep.Reread != 8 || len(rep.Partitions) != 6 ||
		rep.Partitions[0].Current != 5 || rep.Partitions[0].New != 0 || rep.Partitions[0].Reread != 5 || !rep.Partitions[2].NoCommit {
		t.Errorf("replay --json: %+v", rep)
	}

	out, err = f.run(runReplay, "--group", "inventory", "--to-offset", "1", "--partitions", "0", "--execute")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "reset --to-offset 1: executed") || !strings.Contains(out, "committed the new offsets of 1 partition of shopstream.inventory") {
		t.Errorf("--execute output:\n%s", out)
	}
	if c := f.committed(group, topics.TopicInventory); c[0] != 1 || c[1] != 3 {
		t.Errorf("commits after --execute: %v, want partition 0 at 1, 1 unchanged at 3", c)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--group", "nope", "--to-latest"}, "group nope not found"},
		{[]string{"--group", "inventory", "--to-latest", "--topic", "commerce.nope.v1"}, "topic commerce.nope.v1 not found"},
	} {
		if _, err := f.run(runReplay, c.args...); exitCode(err) != 2 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v (exit %d), want exit 2 with %q", c.args, err, exitCode(err), c.want)
		}
	}
	if _, err := f.run(runReplay, "--group", "inventory", "--to-latest", "--partitions", "9"); err == nil || !strings.Contains(err.Error(), "no partition 9") {
		t.Errorf("unknown partition: %v", err)
	}
	// A built-in group with no offsets yet resets its contract topic.
	out, err = f.run(runReplay, "--group", "catalog", "--to-latest")
	if err != nil || !strings.Contains(out, topics.TopicCatalog) || !strings.Contains(out, "no commit") {
		t.Errorf("replay of a new built-in group: %v\n%s", err, out)
	}

	// A live member: the plan is shown, --execute refused.
	member, err := kgo.NewClient(kgo.SeedBrokers(f.kafka.Addrs()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topics.TopicInventory))
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := kadm.NewClient(f.cl).DescribeGroups(context.Background(), group)
		if err == nil && len(d[group].Members) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the member never joined")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		member.PollFetches(ctx) // joins the group
		cancel()
	}
	_, err = f.run(runReplay, "--group", "inventory", "--to-earliest", "--execute")
	if err == nil || !strings.Contains(err.Error(), "group shopstream.inventory has 1 live member; stop them first") {
		t.Errorf("--execute on a live group: %v", err)
	}
	if c := f.committed(group, topics.TopicInventory); c[0] != 1 {
		t.Errorf("a refused --execute changed the commits: %v", c)
	}
}

// --reapply prints which fences it would lower and lowers them with
// --execute; a key outside the replayed range keeps its fence.
func TestReplayReapplyCommand(t *testing.T) {
	f := newLagFixture(t)
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	f.env = envOf(map[string]string{"SHOPSTREAM_BROKERS": strings.Join(f.kafka.Addrs(), ","), "SHOPSTREAM_REDIS_URL": rs.URL()})
	const group = "shopstream.inventory"
	f.stock(0, "SKU-A", 1, 5, time.Now())
	f.stock(1, "SKU-B", 1, 5, time.Now())
	f.commit(group, topics.TopicInventory, map[int32]int64{0: 5, 1: 5})
	ctx := context.Background()
	// The fence as the processor leaves it: the decimal version at FenceKey.
	for _, sku := range []string{"SKU-A", "SKU-B"} {
		if err := rdb.Set(ctx, ordering.FenceKey(group, sku), "5", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	version := func(sku string) int64 {
		v, err := rdb.Get(ctx, ordering.FenceKey(group, sku)).Int64()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	args := []string{"--group", "inventory", "--shift-by", "-3", "--partitions", "0", "--reapply"}
	out, err := f.run(runReplay, args...)
	if err != nil {
		t.Fatal(err)
	}
	want := "fence " + ordering.FenceKey(group, "SKU-A") + ": would lower 5 → 2 (first replayed version 3)"
	if !strings.Contains(out, want) || !strings.Contains(out, "reapply (dry run): 3 records") || strings.Contains(out, "SKU-B") {
		t.Errorf("reapply dry run lacks %q (or mentions SKU-B):\n%s", want, out)
	}
	if version("SKU-A") != 5 {
		t.Errorf("the dry run lowered the fence")
	}

	out, err = f.run(runReplay, append(args, "--execute")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "fence "+ordering.FenceKey(group, "SKU-A")+": lowered 5 → 2") || !strings.Contains(out, "reapply (executed)") {
		t.Errorf("reapply --execute output:\n%s", out)
	}
	if a, b := version("SKU-A"), version("SKU-B"); a != 2 || b != 5 {
		t.Errorf("fences after reapply: A %d, B %d; want 2, 5", a, b)
	}
	if c := f.committed(group, topics.TopicInventory); c[0] != 2 || c[1] != 5 {
		t.Errorf("commits after the replay: %v", c)
	}
}

// --reapply reaches Redis the way `run` does: user, password and CA from
// the service's environment (the chart sets them from Secrets), not only
// from the URL.
func TestReplayReapplyUsesTheServiceRedisSettings(t *testing.T) {
	f := newLagFixture(t)
	rs := redistest.StartWith(t, redistest.Options{TLS: true, Users: map[string]string{"shopstream": "s3cret-pw"}})
	const group = "shopstream.inventory"
	f.stock(0, "SKU-A", 1, 5, time.Now())
	f.commit(group, topics.TopicInventory, map[int32]int64{0: 5})
	env := map[string]string{
		"SHOPSTREAM_BROKERS":   strings.Join(f.kafka.Addrs(), ","),
		"SHOPSTREAM_REDIS_URL": rs.URL(), // rediss://, no user
		envRedisUsername:       "shopstream",
		envRedisPassword:       "s3cret-pw",
		envRedisCAFile:         rs.CAFile(),
	}
	args := []string{"--group", "inventory", "--shift-by", "-3", "--partitions", "0", "--reapply"}
	f.env = envOf(env)
	out, err := f.run(runReplay, args...)
	if err != nil {
		t.Fatalf("reapply with the service's Redis settings: %v\n%s", err, out)
	}
	if !strings.Contains(out, "reapply (dry run): 3 records") {
		t.Errorf("reapply dry run output:\n%s", out)
	}
	// The same without the password: refused, naming what to set.
	delete(env, envRedisPassword)
	f.env = envOf(env)
	_, err = f.run(runReplay, args...)
	if err == nil || !strings.Contains(err.Error(), envRedisPassword) {
		t.Errorf("reapply without the password: %v, want an authentication error naming %s", err, envRedisPassword)
	}
}
