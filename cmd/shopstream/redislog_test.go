package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
)

// jsonLines decodes every line of out as one JSON object.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not one JSON object: %q", line)
		}
		events = append(events, m)
	}
	return events
}

// A go-redis line becomes one JSON warning of the service's log, without
// credentials, e-mail addresses or a line break.
func TestRedisLoggerWritesOneJSONEvent(t *testing.T) {
	var buf bytes.Buffer
	l := redisLogger{log: newLogger(&buf, "info"), secrets: []string{"", "env-s3cret"}}
	l.Printf(context.Background(), "sentinel: GetMasterAddrByName addr=%s failed: %s\n%s",
		"rediss://shopstream:url-s3cret@10.0.0.7:6380/0", "WRONGPASS env-s3cret", "goroutine 7 [running]: ops@example.com")
	events := jsonLines(t, buf.String())
	if len(events) != 1 {
		t.Fatalf("%d events, want 1:\n%s", len(events), buf.String())
	}
	ev := events[0]
	if ev["level"] != "warn" || ev["component"] != "go-redis" || ev["service"] != "shopstream" {
		t.Errorf("event %v: want level warn, component go-redis, service shopstream", ev)
	}
	msg, _ := ev["message"].(string)
	for _, want := range []string{"rediss://[credentials redacted]@10.0.0.7:6380/0", "WRONGPASS [redacted]", "goroutine 7 [running]", "[email redacted]"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	for _, leak := range []string{"url-s3cret", "env-s3cret", "ops@example.com"} {
		if strings.Contains(buf.String(), leak) {
			t.Errorf("output holds %q: %s", leak, buf.String())
		}
	}

	buf.Reset()
	redisLogger{log: newLogger(&buf, "error")}.Printf(context.Background(), "pool: failed to dial")
	if buf.Len() != 0 {
		t.Errorf("a logger at level error wrote a go-redis warning: %s", buf.String())
	}
}

func TestRedactCredentials(t *testing.T) {
	for _, c := range []struct {
		in      string
		secrets []string
		want    string
	}{
		{"dial redis://u:pw@h:6379/0 failed", nil, "dial redis://[credentials redacted]@h:6379/0 failed"},
		{"redis+sentinel://:pw@s1:26379,s2:26379/0?master=m", nil, "redis+sentinel://[credentials redacted]@s1:26379,s2:26379/0?master=m"},
		{"redis://u:p@ss@h:6379", []string{"p@ss"}, "redis://[credentials redacted]@h:6379"},
		{"redis://u:p%40ss@h:6379 and rediss://v:q@k:1", nil, "redis://[credentials redacted]@h:6379 and rediss://[credentials redacted]@k:1"},
		{"redis://h:6379/0 and mail a@b.c", nil, "redis://h:6379/0 and mail a@b.c"},
		{"AUTH hunter22 refused", []string{"", "hunter22"}, "AUTH [redacted] refused"},
	} {
		if got := redactCredentials(c.in, c.secrets); got != c.want {
			t.Errorf("redactCredentials(%q, %q) = %q, want %q", c.in, c.secrets, got, c.want)
		}
	}
}

func TestFlagValue(t *testing.T) {
	for _, c := range []struct {
		args  []string
		want  string
		found bool
	}{
		{[]string{"run"}, "", false},
		{[]string{"run", "--log-level", "debug"}, "debug", true},
		{[]string{"run", "-log-level=warn"}, "warn", true},
		{[]string{"run", "--log-level=warn", "--brokers", "b:9092", "-log-level", "error"}, "error", true},
		{[]string{"run", "--", "--log-level", "debug"}, "", false},
		{[]string{"run", "--log-level"}, "", false},
		{[]string{"run", "--log-levels=debug"}, "", false},
	} {
		got, found := flagValue(c.args, "log-level")
		if got != c.want || found != c.found {
			t.Errorf("flagValue(%q) = %q, %v; want %q, %v", c.args, got, found, c.want, c.found)
		}
	}
}

// A command's go-redis output goes through its JSON log: `shopstream run`
// against a Redis that refuses connections prints only JSON lines, go-redis'
// dial failures among them, at the level --log-level or
// SHOPSTREAM_LOG_LEVEL sets. Not parallel: go-redis' logger is
// process-wide, and parallel tests wait until this one is done.
func TestGoRedisLogsAreJSON(t *testing.T) {
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	env := map[string]string{
		"SHOPSTREAM_BROKERS":   closed,
		"SHOPSTREAM_REDIS_URL": "redis://shopstream:url-s3cret@" + closed + "/0",
		"SHOPSTREAM_GROUPS":    "order-crm",
		"SHOPSTREAM_CRM_URL":   "http://127.0.0.1:1/hook",
	}
	for _, c := range []struct {
		name     string
		args     []string
		logLevel string
		want     bool
	}{
		{"default level", nil, "", true},
		{"flag error", []string{"--log-level", "error"}, "", false},
		{"env error", nil, "error", false},
		{"flag over env", []string{"--log-level=warn"}, "error", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			env["SHOPSTREAM_LOG_LEVEL"] = c.logLevel
			stderr := &syncBuffer{} // go-redis dials, and logs, from its own goroutines
			args := append([]string{"run", "--connect-timeout", "1s"}, c.args...)
			err := run(context.Background(), args, io.Discard, stderr, envOf(env))
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "cannot reach Redis") {
				t.Fatalf("run = %v, want exit code 2 and Redis unreachable", err)
			}
			var dial []string
			for _, ev := range jsonLines(t, stderr.String()) {
				if ev["component"] == "go-redis" {
					dial = append(dial, ev["message"].(string))
				}
			}
			if got := slices.ContainsFunc(dial, func(m string) bool { return strings.Contains(m, "failed to dial") }); got != c.want {
				t.Errorf("go-redis dial failure logged = %v, want %v; stderr:\n%s", got, c.want, stderr.String())
			}
			if strings.Contains(stderr.String(), "url-s3cret") {
				t.Errorf("the password of the URL is in the output:\n%s", stderr.String())
			}
		})
	}
}
