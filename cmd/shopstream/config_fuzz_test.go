package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseRunConfig feeds the run configuration loader an arbitrary YAML
// topology file and an arbitrary flag: it must never panic, and every
// rejection must name a setting (a flag, an environment variable or the
// config file), so an operator knows what to fix. The seeds below (and any
// corpus under testdata/fuzz) run in `go test`.
func FuzzParseRunConfig(f *testing.F) {
	f.Add([]byte("topics:\n  inventory: my.inventory\ngroups:\n  inventory:\n    concurrency: 8\n    coalesce: true\n    retry:\n      max_attempts: 5\n"), "--groups=inventory")
	f.Add([]byte("drain_timeout: 30s\nrevoke_timeout: 10s\ndedupe_ttl: 24h\n"), "--log-level=debug")
	f.Add([]byte("groups:\n  order-crm:\n    coalesce: true\n"), "--groups=nope")
	f.Add([]byte("topics:\n  shoes: x\n"), "--brokers=nohost")
	f.Add([]byte("drain_timeout: -1s\nunknown: 1\n"), "--redis-url=http://x")
	f.Add([]byte("groups: [1, 2"), "--http-addr")
	f.Add([]byte("\xff\xfe\x00"), "extra")
	f.Add([]byte("groups:\n  catalog:\n    rate_limit: -1\n    timeout: 1e400s\n"), "--config=/nonexistent")
	f.Add([]byte("*a\n"), "-groups=,,,")

	env := map[string]string{
		"SHOPSTREAM_BROKERS":       "127.0.0.1:9092",
		"SHOPSTREAM_REDIS_URL":     "redis://127.0.0.1:6379/0",
		"SHOPSTREAM_MAGENTO_URL":   "http://magento.local",
		"SHOPSTREAM_MAGENTO_TOKEN": "t",
		"SHOPSTREAM_CRM_URL":       "http://crm.local",
		"SHOPSTREAM_FRAUD_URL":     "http://fraud.local",
		"SHOPSTREAM_EMAIL_URL":     "http://email.local",
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, yaml []byte, arg string) {
		path := filepath.Join(dir, "topology.yaml")
		if err := os.WriteFile(path, yaml, 0o600); err != nil {
			t.Fatal(err)
		}
		e := map[string]string{"SHOPSTREAM_CONFIG": path}
		for k, v := range env {
			e[k] = v
		}
		cfg, err := parseRunConfig([]string{arg}, func(k string) string { return e[k] })
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without an error")
			}
			return
		}
		msg := err.Error()
		if !strings.Contains(msg, "config") && !strings.Contains(msg, "flag") &&
			!strings.Contains(msg, "argument") && !hasSettingName(msg) {
			t.Errorf("rejection names no setting: %q", msg)
		}
	})
}

// hasSettingName reports whether msg names one of the run settings.
func hasSettingName(msg string) bool {
	var c config
	for _, s := range c.settings() {
		if strings.Contains(msg, s.flag) || strings.Contains(msg, s.env) {
			return true
		}
	}
	return false
}
