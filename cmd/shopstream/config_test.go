package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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
	}{
		{"no brokers", nil, only("SHOPSTREAM_REDIS_URL", "SHOPSTREAM_MAGENTO_URL", "SHOPSTREAM_MAGENTO_TOKEN", "SHOPSTREAM_CRM_URL", "SHOPSTREAM_FRAUD_URL", "SHOPSTREAM_EMAIL_URL"),
			[]string{"brokers", "SHOPSTREAM_BROKERS"}},
		{"group without its sink", []string{"--groups", "order-fraud"}, only("SHOPSTREAM_BROKERS", "SHOPSTREAM_REDIS_URL"),
			[]string{"fraud-url", "SHOPSTREAM_FRAUD_URL", "order-fraud"}},
		{"all groups by default need every sink", nil, only("SHOPSTREAM_BROKERS", "SHOPSTREAM_REDIS_URL", "SHOPSTREAM_CRM_URL"),
			[]string{"magento-url", "magento-token", "fraud-url", "email-url"}},
		{"unknown group", []string{"--groups", "inventory,shipping"}, fullEnv, []string{"groups", "shipping", "order-email"}},
		{"bad redis url", []string{"--redis-url", "http://x"}, fullEnv, []string{"redis-url", "redis://"}},
		{"broker without port", []string{"--brokers", "kafka1"}, fullEnv, []string{"brokers", "kafka1", "host:port"}},
		{"unknown flag", []string{"--brokerz", "x"}, fullEnv, []string{"brokerz", "usage"}},
		{"stray argument", []string{"inventory"}, fullEnv, []string{"unexpected argument"}},
		{"bad log level", []string{"--log-level", "loud"}, fullEnv, []string{"log-level", "loud"}},
		{"missing config file", []string{"--config", "/nonexistent/shopstream.yaml"}, fullEnv, []string{"config", "/nonexistent/shopstream.yaml"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseRunConfig(c.args, envOf(c.env))
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
