package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// config is everything `shopstream run` needs. Precedence, lowest first:
// built-in defaults < the YAML topology file < environment < flags.
type config struct {
	Brokers      []string
	RedisURL     string
	MagentoURL   string
	MagentoToken string
	CRMURL       string
	FraudURL     string
	EmailURL     string
	Groups       []string // short names, validated
	HTTPAddr     string
	ConfigFile   string
	LogLevel     string
	// Kafka is TLS and SASL; Redis the TLS CA and password file.
	Kafka kafkaSecurity
	Redis redisConfig
	// kafkaOpts are Kafka's TLS and SASL client options, built from Kafka
	// when the service starts (nil: plaintext, no SASL).
	kafkaOpts []kgo.Opt
	// ConnectTimeout bounds the start-up check of Kafka and Redis.
	ConnectTimeout time.Duration

	Topology topology
}

// topology is the YAML file's shape (--config). Unknown keys are errors.
type topology struct {
	// Topics overrides the topic name per domain (catalog, inventory, order, customer).
	Topics map[string]string `yaml:"topics"`
	// DrainTimeout bounds the graceful shutdown's wait for in-flight records.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// RevokeTimeout bounds a revocation's wait for in-flight records.
	RevokeTimeout time.Duration `yaml:"revoke_timeout"`
	// DedupeTTL is how long applied event ids are remembered.
	DedupeTTL time.Duration `yaml:"dedupe_ttl"`
	// Groups holds per-group settings, by short name.
	Groups map[string]groupSettings `yaml:"groups"`
}

type groupSettings struct {
	Concurrency int                   `yaml:"concurrency"`
	MaxBuffered int                   `yaml:"max_buffered"`
	RateLimit   float64               `yaml:"rate_limit"`
	Burst       int                   `yaml:"burst"`
	Timeout     time.Duration         `yaml:"timeout"`
	Retry       processor.RetryPolicy `yaml:"retry"`
	// Coalesce applies only the newest of several waiting absolute updates
	// of the same thing (catalog and inventory only); see README.
	Coalesce bool `yaml:"coalesce"`
}

// setting is one contract flag with its environment variable.
type setting struct {
	flag, env, usage string
	dst              *string
}

func (c *config) settings() []setting {
	return []setting{
		{"brokers", "SHOPSTREAM_BROKERS", "comma-separated seed brokers (host:port)", nil},
		{"redis-url", "SHOPSTREAM_REDIS_URL", "redis:// or rediss:// URL of the fence and dedupe store", &c.RedisURL},
		{"magento-url", "SHOPSTREAM_MAGENTO_URL", "Magento base URL; calls go to <base>/rest/V1/...", &c.MagentoURL},
		{"magento-token", "SHOPSTREAM_MAGENTO_TOKEN", "Magento integration bearer token", &c.MagentoToken},
		{"crm-url", "SHOPSTREAM_CRM_URL", "CRM webhook URL", &c.CRMURL},
		{"fraud-url", "SHOPSTREAM_FRAUD_URL", "fraud-scoring webhook URL", &c.FraudURL},
		{"email-url", "SHOPSTREAM_EMAIL_URL", "email-marketing webhook URL", &c.EmailURL},
		{"groups", "SHOPSTREAM_GROUPS", "comma-separated groups to run (inventory,order-crm or full ids); default all", nil},
		{"http-addr", "SHOPSTREAM_HTTP_ADDR", "address of /metrics, /healthz, /readyz", &c.HTTPAddr},
		{"config", "SHOPSTREAM_CONFIG", "YAML topology file: topics, groups, concurrency, retries, rate limits", &c.ConfigFile},
		{"log-level", "SHOPSTREAM_LOG_LEVEL", "debug, info, warn or error", &c.LogLevel},
		{"connect-timeout", "SHOPSTREAM_CONNECT_TIMEOUT", "bound of the start-up check of Kafka and Redis (default 15s)", nil},
	}
}

// parseRunConfig reads flags (args), the environment (getenv) and the YAML
// file. It returns every problem at once, each naming its setting.
func parseRunConfig(args []string, getenv func(string) string) (*config, error) {
	c := &config{HTTPAddr: ":9090", LogLevel: "info"}
	var brokers, groups, connectTimeout string
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	settings := c.settings()
	for i, s := range settings {
		switch s.flag {
		case "brokers":
			settings[i].dst = &brokers
		case "groups":
			settings[i].dst = &groups
		case "connect-timeout":
			settings[i].dst = &connectTimeout
		}
		// The default shown in usage is the built-in one, never the
		// environment's value: that may hold a token or a password.
		fs.StringVar(settings[i].dst, s.flag, *settings[i].dst, s.usage+" (env "+s.env+")")
	}
	var sec securityFlags
	sec.register(fs)
	settings = append(settings, c.Redis.register(fs)...)
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w\n\nusage: shopstream run [flags]\n%s", err, flagUsage(fs))
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("run: unexpected argument %q; every setting is a --flag", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, s := range settings {
		if v := getenv(s.env); v != "" && !given[s.flag] {
			*s.dst = v
		}
	}
	c.Brokers = splitList(brokers)
	c.Redis.URL = c.RedisURL

	var errs []error
	k, err := sec.resolve(fs, getenv)
	if err != nil {
		errs = append(errs, err)
	}
	c.Kafka = k
	c.ConnectTimeout = 15 * time.Second
	if connectTimeout != "" {
		d, err := time.ParseDuration(connectTimeout)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("connect-timeout: %q is not a positive duration (15s)", connectTimeout))
		} else {
			c.ConnectTimeout = d
		}
	}
	if c.RedisURL != "" {
		if _, err := c.Redis.options(getenv); err != nil {
			errs = append(errs, err)
		}
	}
	if c.ConfigFile != "" {
		if err := c.loadTopology(c.ConfigFile); err != nil {
			errs = append(errs, err)
		}
	}
	names, err := parseGroups(groups)
	if err != nil {
		errs = append(errs, err)
	}
	c.Groups = names
	errs = append(errs, c.validate())
	return c, errors.Join(errs...)
}

func flagUsage(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	return b.String()
}

func (c *config) loadTopology(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config (--config / SHOPSTREAM_CONFIG): %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c.Topology); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	var errs []error
	for d := range c.Topology.Topics {
		if _, err := topics.ParseDomain(d); err != nil {
			errs = append(errs, fmt.Errorf("config %s: topics.%s: %w", path, d, err))
		}
	}
	for name := range c.Topology.Groups {
		if !slices.Contains(allGroups, name) {
			errs = append(errs, fmt.Errorf("config %s: groups.%s: unknown group; known: %s", path, name, strings.Join(allGroups, ", ")))
		}
	}
	return errors.Join(errs...)
}

func (c *config) validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: missing; set --brokers or SHOPSTREAM_BROKERS (host:port,...)"))
	}
	for _, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			errs = append(errs, fmt.Errorf("brokers: %q has no port; write host:port", b))
		}
	}
	if c.RedisURL == "" {
		errs = append(errs, errors.New("redis-url: missing; set --redis-url or SHOPSTREAM_REDIS_URL (redis://host:6379/0)"))
	}
	need := func(setting, env, value string, group string) {
		if value == "" {
			errs = append(errs, fmt.Errorf("%s: missing; group %s needs it: set --%s or %s, or leave %s out of --groups", setting, group, setting, env, group))
		}
	}
	for _, g := range c.Groups {
		switch g {
		case "catalog", "inventory":
			need("magento-url", "SHOPSTREAM_MAGENTO_URL", c.MagentoURL, g)
			need("magento-token", "SHOPSTREAM_MAGENTO_TOKEN", c.MagentoToken, g)
		case "order-crm", "customer-crm":
			need("crm-url", "SHOPSTREAM_CRM_URL", c.CRMURL, g)
		case "order-fraud":
			need("fraud-url", "SHOPSTREAM_FRAUD_URL", c.FraudURL, g)
		case "order-email":
			need("email-url", "SHOPSTREAM_EMAIL_URL", c.EmailURL, g)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level: %q is not debug, info, warn or error", c.LogLevel))
	}
	t := c.Topology
	if t.DrainTimeout < 0 || t.RevokeTimeout < 0 || t.DedupeTTL < 0 {
		errs = append(errs, errors.New("config: drain_timeout, revoke_timeout and dedupe_ttl must not be negative"))
	}
	for name, gs := range t.Groups {
		if gs.Concurrency < 0 || gs.MaxBuffered < 0 || gs.RateLimit < 0 || gs.Burst < 0 || gs.Timeout < 0 {
			errs = append(errs, fmt.Errorf("config: groups.%s: concurrency, max_buffered, rate_limit, burst and timeout must not be negative", name))
		}
		if gs.Coalesce && name != "catalog" && name != "inventory" {
			errs = append(errs, fmt.Errorf("config: groups.%s.coalesce: only the catalog and inventory groups (version-fenced) can coalesce", name))
		}
	}
	return errors.Join(errs...)
}

// allGroups are the short names of the built-in groups, in start order.
var allGroups = []string{"catalog", "inventory", "order-crm", "order-fraud", "order-email", "customer-crm"}

// parseGroups accepts short names or full ids; empty means all.
func parseGroups(s string) ([]string, error) {
	items := splitList(s)
	if len(items) == 0 {
		return slices.Clone(allGroups), nil
	}
	var out []string
	var errs []error
	for _, it := range items {
		name := strings.TrimPrefix(it, processor.GroupIDPrefix)
		if !slices.Contains(allGroups, name) {
			errs = append(errs, fmt.Errorf("groups: unknown group %q; known: %s", it, strings.Join(allGroups, ", ")))
			continue
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
