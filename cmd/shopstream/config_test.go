package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/handlers"
	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var fullEnv = map[string]string{
	"SHOPSTREAM_BROKERS":       "127.0.0.1:9092",
	"SHOPSTREAM_REDIS_URL":     "redis://127.0.0.1:6379/0",
	"SHOPSTREAM_MAGENTO_URL":   "http://magento.local",
	"SHOPSTREAM_MAGENTO_TOKEN": "secret-token",
	"SHOPSTREAM_CRM_URL":       "http://crm.local/hook",
	"SHOPSTREAM_FRAUD_URL":     "http://fraud.local/hook",
	"SHOPSTREAM_EMAIL_URL":     "http://email.local/hook",
}

func TestRunConfigFromEnvAndFlags(t *testing.T) {
	cfg, err := parseRunConfig([]string{"--brokers", "b1:9092, b2:9092", "--groups", "shopstream.inventory,order-crm"}, envOf(fullEnv))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Brokers, []string{"b1:9092", "b2:9092"}) {
		t.Errorf("brokers %v: the flag must override the environment", cfg.Brokers)
	}
	if cfg.RedisURL != fullEnv["SHOPSTREAM_REDIS_URL"] || cfg.MagentoToken != "secret-token" {
		t.Errorf("environment not read: %+v", cfg)
	}
	if !slices.Equal(cfg.Groups, []string{"inventory", "order-crm"}) {
		t.Errorf("groups %v, want [inventory order-crm]", cfg.Groups)
	}
	if cfg.HTTPAddr != ":9090" {
		t.Errorf("http-addr default %q, want :9090", cfg.HTTPAddr)
	}
}

func TestRunConfigErrorsNameTheSetting(t *testing.T) {
	only := func(keep ...string) map[string]string {
		m := map[string]string{}
		for _, k := range keep {
			m[k] = fullEnv[k]
		}
		return m
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want []string
		// yaml, if set, is the topology file (SHOPSTREAM_CONFIG).
		yaml string
	}{
		{"no brokers", nil, only("SHOPSTREAM_REDIS_URL", "SHOPSTREAM_MAGENTO_URL", "SHOPSTREAM_MAGENTO_TOKEN", "SHOPSTREAM_CRM_URL", "SHOPSTREAM_FRAUD_URL", "SHOPSTREAM_EMAIL_URL"),
			[]string{"brokers", "SHOPSTREAM_BROKERS"}, ""},
		{"group without its sink", []string{"--groups", "order-fraud"}, only("SHOPSTREAM_BROKERS", "SHOPSTREAM_REDIS_URL"),
			[]string{"fraud-url", "SHOPSTREAM_FRAUD_URL", "order-fraud"}, ""},
		{"all groups by default need every sink", nil, only("SHOPSTREAM_BROKERS", "SHOPSTREAM_REDIS_URL", "SHOPSTREAM_CRM_URL"),
			[]string{"magento-url", "magento-token", "fraud-url", "email-url"}, ""},
		{"unknown group", []string{"--groups", "inventory,shipping"}, fullEnv, []string{"groups", "shipping", "order-email"}, ""},
		{"bad redis url", []string{"--redis-url", "http://x"}, fullEnv, []string{"redis-url", "redis://"}, ""},
		{"broker without port", []string{"--brokers", "kafka1"}, fullEnv, []string{"brokers", "kafka1", "host:port"}, ""},
		{"unknown flag", []string{"--brokerz", "x"}, fullEnv, []string{"brokerz", "usage"}, ""},
		{"stray argument", []string{"inventory"}, fullEnv, []string{"unexpected argument"}, ""},
		{"bad log level", []string{"--log-level", "loud"}, fullEnv, []string{"log-level", "loud"}, ""},
		{"missing config file", []string{"--config", "/nonexistent/shopstream.yaml"}, fullEnv, []string{"config", "/nonexistent/shopstream.yaml"}, ""},
		// The YAML decoder would store 2.5 as 2 without a word.
		{"fraction for an integer setting", nil, fullEnv,
			[]string{"groups.inventory.concurrency", "2.5", "line 2", "not a whole number", "cut to 2", "2 or 3"},
			"groups:\n  inventory: {concurrency: 2.5}\n"},
		{"fraction for a nested integer setting", nil, fullEnv,
			[]string{"groups.order-fraud.retry.max_attempts", "3.5", "not a whole number", "3 or 4"},
			"groups:\n  order-fraud:\n    retry: {max_attempts: 3.5}\n"},
		{"fraction through a merge key", nil, fullEnv,
			[]string{"groups.order-crm.burst", "groups.order-email.burst", "0.5", "such as 1"},
			"groups:\n  order-crm: &base {burst: 0.5, rate_limit: 1}\n  order-email:\n    <<: *base\n"},
		{"rate_limit NaN", nil, fullEnv, []string{"groups.order-crm.rate_limit", "NaN", "0: unlimited"},
			"groups:\n  order-crm: {rate_limit: .nan}\n"},
		{"rate_limit +Inf", nil, fullEnv, []string{"groups.order-email.rate_limit", "+Inf", "finite"},
			"groups:\n  order-email: {rate_limit: .inf}\n"},
		{"rate_limit -Inf", nil, fullEnv, []string{"groups.order-email.rate_limit", "-Inf"},
			"groups:\n  order-email: {rate_limit: -.inf}\n"},
		{"rate_limit negative", nil, fullEnv, []string{"groups.catalog.rate_limit", "-1"},
			"groups:\n  catalog: {rate_limit: -1}\n"},
		// processor.New refuses these too, but only when the service starts.
		{"negative retry settings", nil, fullEnv,
			[]string{"groups.catalog.retry.max_attempts", "-3", "default 8", "groups.catalog.retry.initial_backoff", "-1s", "default 200ms"},
			"groups:\n  catalog: {retry: {max_attempts: -3, initial_backoff: -1s}}\n"},
		{"negative retry bounds", nil, fullEnv,
			[]string{"groups.inventory.retry.max_backoff: -1s", "groups.inventory.retry.max_elapsed: -5m0s"},
			"groups:\n  inventory: {retry: {max_backoff: -1s, max_elapsed: -5m}}\n"},
		{"retry max_backoff below initial_backoff", nil, fullEnv,
			[]string{"groups.inventory.retry.max_backoff", "1s is below initial_backoff 2s"},
			"groups:\n  inventory: {retry: {initial_backoff: 2s, max_backoff: 1s}}\n"},
		{"retry initial_backoff above the default max_backoff", nil, fullEnv,
			[]string{"groups.inventory.retry.max_backoff", "30s (the default) is below initial_backoff 1m0s"},
			"groups:\n  inventory: {retry: {initial_backoff: 1m}}\n"},
		{"concurrency above the processor's limit", nil, fullEnv, []string{"groups.inventory.concurrency", "100001", "1 to 100000"},
			"groups:\n  inventory: {concurrency: 100001}\n"},
		{"max_buffered below concurrency", nil, fullEnv, []string{"groups.catalog.max_buffered", "10 is below concurrency 100"},
			"groups:\n  catalog: {concurrency: 100, max_buffered: 10}\n"},
		{"max_buffered below the default concurrency", nil, fullEnv, []string{"groups.catalog.max_buffered", "63 is below concurrency 64"},
			"groups:\n  catalog: {max_buffered: 63}\n"},
		{"negative timeouts", nil, fullEnv,
			[]string{"drain_timeout", "revoke_timeout", "dedupe_ttl", "groups.order-crm.timeout", "groups.order-crm.burst"},
			"drain_timeout: -1s\nrevoke_timeout: -1s\ndedupe_ttl: -1h\ngroups:\n  order-crm: {timeout: -1s, burst: -1}\n"},
		// Every problem at once: the file's (a type error, an unknown key,
		// invalid values in two groups) and the flags'.
		{"every problem at once", []string{"--log-level", "loud"}, fullEnv,
			[]string{"log-level", "cannot unmarshal !!str `eight`", "topics.shoes", "groups.catalog.concurrency", "1.5",
				"groups.order-crm.rate_limit", "groups.order-email.retry.max_attempts", "groups.order-email.retry.max_elapsed"},
			"topics:\n  shoes: x\ngroups:\n  inventory: {concurrency: eight}\n  catalog: {concurrency: 1.5}\n" +
				"  order-crm: {rate_limit: .nan}\n  order-email: {retry: {max_attempts: -1, max_elapsed: -1s}}\n"},
	}
	dir := t.TempDir()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.yaml != "" {
				path := filepath.Join(dir, fmt.Sprintf("topology-%d.yaml", i))
				if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append([]string{"--config", path}, args...)
			}
			_, err := parseRunConfig(args, envOf(c.env))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret-token") {
				t.Errorf("error leaks the token: %q", err)
			}
		})
	}
}

func TestTopologyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`
topics:
  inventory: acme.inventory
drain_timeout: 45s
groups:
  inventory:
    concurrency: 128
    rate_limit: 50
    retry:
      max_attempts: 3
      initial_backoff: 100ms
`), 0o600)
	cfg, err := parseRunConfig([]string{"--config", good}, envOf(fullEnv))
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Topology.Groups["inventory"]
	if cfg.Topology.Topics["inventory"] != "acme.inventory" || cfg.Topology.DrainTimeout != 45*time.Second ||
		g.Concurrency != 128 || g.RateLimit != 50 || g.Retry.MaxAttempts != 3 || g.Retry.Initial != 100*time.Millisecond {
		t.Errorf("topology not read: %+v", cfg.Topology)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("groups:\n  inventory:\n    concurrancy: 5\n  shipping: {}\ntopics:\n  returns: x\n"), 0o600)
	_, err = parseRunConfig([]string{"--config", bad}, envOf(fullEnv))
	if err == nil {
		t.Fatal("a misspelt key was accepted")
	}
	if !strings.Contains(err.Error(), "concurrancy") {
		t.Errorf("error %q does not name the unknown key", err)
	}
}

// TestRunConfigAgreesWithProcessor: the loader refuses the group settings
// that processor.New or a sink (handlers) would refuse when the service
// starts — so `run` reports them with every other problem, naming the key —
// and accepts what they accept. It is stricter in one place only: a NaN or
// infinite rate_limit, which the sinks would take.
func TestRunConfigAgreesWithProcessor(t *testing.T) {
	cases := []string{
		"{}",
		"{concurrency: 1}", "{concurrency: 100000}", "{concurrency: 100001}", "{concurrency: -1}", "{concurrency: 3000}",
		"{max_buffered: 64}", "{max_buffered: 63}", "{max_buffered: -1}", "{concurrency: 1, max_buffered: 1}",
		"{concurrency: 10, max_buffered: 9}", "{concurrency: 100000, max_buffered: 99999}", "{concurrency: -5, max_buffered: 10}",
		"{retry: {max_attempts: 1}}", "{retry: {max_attempts: -1}}",
		"{retry: {initial_backoff: 30s}}", "{retry: {initial_backoff: 31s}}",
		"{retry: {max_backoff: 200ms}}", "{retry: {max_backoff: 199ms}}",
		"{retry: {initial_backoff: 1s, max_backoff: 1s}}", "{retry: {initial_backoff: 2s, max_backoff: 1s}}",
		"{retry: {initial_backoff: -1ns}}", "{retry: {max_backoff: -1ns}}", "{retry: {max_elapsed: -1ns}}",
		"{retry: {initial_backoff: -1s, max_backoff: -2s}}",
		"{timeout: -1s}", "{burst: -1}", "{rate_limit: -0.1}", "{rate_limit: 0, burst: 0, timeout: 0s}",
		"{rate_limit: 0.001, burst: 1000000, timeout: 1h}",
	}
	dir := t.TempDir()
	for i, settings := range cases {
		path := filepath.Join(dir, fmt.Sprintf("topology-%d.yaml", i))
		if err := os.WriteFile(path, []byte("groups:\n  inventory: "+settings+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := parseRunConfig([]string{"--config", path, "--groups", "inventory"}, envOf(fullEnv))
		gs := cfg.Topology.Groups["inventory"]
		// As newProcessor builds it; without brokers processor.New only
		// validates (it creates no client).
		_, perr := processor.New(processor.Options{}, processor.GroupConfig{
			Name: "inventory", Topic: "t", Domain: topics.DomainInventory, Idempotency: processor.IdempotencyNone,
			Handler:     processor.HandlerFunc(func(context.Context, *topics.Event) error { return nil }),
			Concurrency: gs.Concurrency, MaxBuffered: gs.MaxBuffered, Retry: gs.Retry,
		})
		if perr == nil || !strings.Contains(perr.Error(), "brokers") {
			t.Fatalf("%s: processor.New without brokers: %v", settings, perr)
		}
		procRejects := strings.Contains(perr.Error(), `group "inventory"`)
		_, herr := handlers.NewWebhook(handlers.WebhookConfig{Name: "crm", URL: "http://crm.local/hook",
			Timeout: gs.Timeout, RateLimit: gs.RateLimit, Burst: gs.Burst})
		switch {
		case err == nil && procRejects:
			t.Errorf("%s: loaded, but processor.New refuses it:\n%v", settings, perr)
		case err == nil && herr != nil:
			t.Errorf("%s: loaded, but the sink refuses it: %v", settings, herr)
		case err != nil && !procRejects && herr == nil:
			t.Errorf("%s: refused, but processor.New and the sink take it: %v", settings, err)
		case err != nil && !strings.Contains(err.Error(), "groups.inventory."):
			t.Errorf("%s: the error names no key of groups.inventory: %v", settings, err)
		}
	}
}

// TestRunConfigIntegerKeys: every integer key of a group, nested ones
// included (found by reflection, so a new one is covered), refuses a
// fraction, naming the key, while a whole number written as a float
// (100.0, as some YAML generators write numbers) loads as that integer.
func TestRunConfigIntegerKeys(t *testing.T) {
	type intKey struct {
		path  []string
		index []int
	}
	var keys []intKey
	var walk func(path []string, index []int, ty reflect.Type)
	walk = func(path []string, index []int, ty reflect.Type) {
		for i := range ty.NumField() {
			f := ty.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			p, ix := append(slices.Clone(path), name), append(slices.Clone(index), i)
			if f.Type.Kind() == reflect.Struct {
				walk(p, ix, f.Type)
			} else if isInteger(f.Type) {
				keys = append(keys, intKey{p, ix})
			}
		}
	}
	walk(nil, nil, reflect.TypeFor[groupSettings]())
	var names []string
	for _, k := range keys {
		names = append(names, strings.Join(k.path, "."))
	}
	for _, want := range []string{"concurrency", "max_buffered", "burst", "retry.max_attempts"} {
		if !slices.Contains(names, want) {
			t.Fatalf("integer keys %v: %s missing", names, want)
		}
	}

	dir := t.TempDir()
	load := func(k intKey, value string) (*config, error) {
		// {a: {b: value}} for the path a.b
		flow := value
		for i := len(k.path) - 1; i >= 0; i-- {
			flow = "{" + k.path[i] + ": " + flow + "}"
		}
		path := filepath.Join(dir, "topology.yaml")
		if err := os.WriteFile(path, []byte("groups:\n  inventory: "+flow+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return parseRunConfig([]string{"--config", path, "--groups", "inventory"}, envOf(fullEnv))
	}
	for i, k := range keys {
		name := names[i]
		if _, err := load(k, "2.5"); err == nil {
			t.Errorf("%s: 2.5 accepted", name)
		} else if !strings.Contains(err.Error(), "groups.inventory."+name+": 2.5 (line 2) is not a whole number") {
			t.Errorf("%s: 2.5 refused without naming the key: %v", name, err)
		}
		cfg, err := load(k, "100.0")
		if err != nil {
			t.Errorf("%s: 100.0 refused: %v", name, err)
			continue
		}
		if got := reflect.ValueOf(cfg.Topology.Groups["inventory"]).FieldByIndex(k.index).Int(); got != 100 {
			t.Errorf("%s: 100.0 loaded as %d", name, got)
		}
	}
}
