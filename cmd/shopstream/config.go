package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"reflect"
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

	// notWhole describes each integer setting the file gave a number with
	// a fraction or out of range (the YAML decoder truncates 2.5 to 2);
	// validate reports them. Filled by UnmarshalYAML.
	notWhole map[string]string
}

// UnmarshalYAML decodes a group's settings as the decoder would, then notes
// every integer setting written as a non-integral number: go-yaml stores
// concurrency: 2.5 as 2 without a word. A whole number written as a float
// (8.0, 1e3) is accepted, as before. It is the callback form of the
// interface on purpose: the callback decodes with the caller's decoder, so
// KnownFields (unknown keys are errors), aliases and merge keys still apply.
func (g *groupSettings) UnmarshalYAML(unmarshal func(any) error) error {
	type group groupSettings // without this method; errors name "main.group"
	if err := unmarshal((*group)(g)); err != nil {
		return err
	}
	var fields map[string]yaml.Node
	if err := unmarshal(&fields); err != nil {
		return err
	}
	g.notWhole = map[string]string{}
	nonIntegers(g.notWhole, "", reflect.TypeFor[groupSettings](), fields)
	return nil
}

// nonIntegers records in out, for each integer field of struct type t
// (nested structs such as retry included; durations are not integers here)
// that fields holds as a YAML float other than a whole number, what is
// wrong with it, by its key path (prefix + key).
func nonIntegers(out map[string]string, prefix string, t reflect.Type, fields map[string]yaml.Node) {
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		n, ok := fields[key]
		if key == "" || key == "-" || !ok {
			continue
		}
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = *n.Alias
		}
		switch {
		case f.Type.Kind() == reflect.Struct:
			var sub map[string]yaml.Node
			if n.Kind == yaml.MappingNode && n.Decode(&sub) == nil {
				nonIntegers(out, prefix+key+".", f.Type, sub)
			}
		case isInteger(f.Type) && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float":
			var v float64
			if n.Decode(&v) != nil {
				continue // not a number the decoder could read: it has said so
			}
			switch {
			case math.IsNaN(v) || math.IsInf(v, 0):
				out[prefix+key] = fmt.Sprintf("%s (line %d) is not a whole number; write an integer", n.Value, n.Line)
			case v < math.MinInt64 || v >= math.MaxInt64: // float64(MaxInt64) is 2^63
				out[prefix+key] = fmt.Sprintf("%s (line %d) is out of range; write an integer", n.Value, n.Line)
			case v != math.Trunc(v):
				fix := "write an integer"
				switch {
				case v > 1:
					fix = fmt.Sprintf("write an integer, such as %.0f or %.0f", math.Floor(v), math.Ceil(v))
				case v > 0:
					fix = "write an integer, such as 1"
				}
				out[prefix+key] = fmt.Sprintf("%s (line %d) is not a whole number and would be cut to %d; %s", n.Value, n.Line, int64(v), fix)
			}
		}
	}
}

// isInteger reports whether t is an integer type other than time.Duration.
func isInteger(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return t != reflect.TypeFor[time.Duration]()
	}
	return false
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
	var errs []error
	if err := dec.Decode(&c.Topology); err != nil && !errors.Is(err, io.EOF) {
		if _, ok := errors.AsType[*yaml.TypeError](err); !ok {
			return fmt.Errorf("config %s: %w", path, err)
		}
		// A value of the wrong type or an unknown key: the decoder went on
		// with the rest, so check that too and report every problem at once.
		errs = append(errs, fmt.Errorf("config %s: %w", path, err))
	}
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
	errs = append(errs, c.Topology.validate()...)
	return errors.Join(errs...)
}

// The defaults and bounds processor.GroupConfig applies (processor/config.go),
// mirrored here so that the loader rejects what processor.New would;
// TestRunConfigAgreesWithProcessor keeps the two in step.
const (
	defaultConcurrency = 64
	maxConcurrency     = 100000
	bufferedPerSlot    = 32 // max_buffered 0 means 32 × concurrency
)

// validate checks every setting of the topology file that the processor
// (processor.New) or the sinks (handlers) would reject when the service
// starts, so that `run` reports all of them at once when it parses its
// configuration, each naming its key and the fix.
func (t topology) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"drain_timeout", t.DrainTimeout}, {"revoke_timeout", t.RevokeTimeout}, {"dedupe_ttl", t.DedupeTTL}} {
		if d.v < 0 {
			bad(d.key, "%s is negative; write a duration such as 30s, or 0 for the default", d.v)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(t.Groups)) {
		gs := t.Groups[name]
		key := func(k string) string { return "groups." + name + "." + k }
		for _, k := range slices.Sorted(maps.Keys(gs.notWhole)) {
			bad(key(k), "%s", gs.notWhole[k])
		}
		whole := func(k string) bool { _, ok := gs.notWhole[k]; return !ok }

		concurrency := gs.Concurrency
		if concurrency == 0 {
			concurrency = defaultConcurrency
		}
		if whole("concurrency") && (gs.Concurrency < 0 || gs.Concurrency > maxConcurrency) {
			bad(key("concurrency"), "%d is out of range; write 1 to %d records at once, or 0 for the default %d", gs.Concurrency, maxConcurrency, defaultConcurrency)
		}
		switch {
		case !whole("max_buffered"):
		case gs.MaxBuffered < 0:
			bad(key("max_buffered"), "%d is negative; write at least concurrency, or 0 for %d × concurrency", gs.MaxBuffered, bufferedPerSlot)
		case gs.MaxBuffered > 0 && gs.MaxBuffered < concurrency && whole("concurrency") && gs.Concurrency >= 0 && gs.Concurrency <= maxConcurrency:
			bad(key("max_buffered"), "%d is below concurrency %d; write at least %d, or 0 for %d × concurrency", gs.MaxBuffered, concurrency, concurrency, bufferedPerSlot)
		}
		if r := gs.RateLimit; math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
			bad(key("rate_limit"), "%v is not a rate; write requests per second, a finite number of at least 0 (0: unlimited)", r)
		}
		if whole("burst") && gs.Burst < 0 {
			bad(key("burst"), "%d is negative; write how many requests may go at once under rate_limit (0: 1)", gs.Burst)
		}
		if gs.Timeout < 0 {
			bad(key("timeout"), "%s is negative; write a duration such as 10s, or 0 for the default", gs.Timeout)
		}
		if gs.Coalesce && name != "catalog" && name != "inventory" {
			bad(key("coalesce"), "only the catalog and inventory groups (version-fenced) can coalesce")
		}

		r, def := gs.Retry, processor.DefaultRetryPolicy
		if whole("retry.max_attempts") && r.MaxAttempts < 0 {
			bad(key("retry.max_attempts"), "%d is below 1; write how many handler calls at most (at least 1), or 0 for the default %d", r.MaxAttempts, def.MaxAttempts)
		}
		for _, d := range []struct {
			key    string
			v, def time.Duration
		}{{"retry.initial_backoff", r.Initial, def.Initial}, {"retry.max_backoff", r.Max, def.Max}, {"retry.max_elapsed", r.MaxElapsed, def.MaxElapsed}} {
			if d.v < 0 {
				bad(key(d.key), "%s is negative; write a duration, or 0 for the default %s", d.v, d.def)
			}
		}
		if r.Initial >= 0 && r.Max >= 0 {
			initial, initialSet := r.Initial, "initial_backoff"
			if initial == 0 {
				initial, initialSet = def.Initial, "the default initial_backoff"
			}
			ceiling, ceilingSet := r.Max, ""
			if ceiling == 0 {
				ceiling, ceilingSet = def.Max, " (the default)"
			}
			if ceiling < initial {
				bad(key("retry.max_backoff"), "%s%s is below %s %s; write a max_backoff of at least %s, or lower initial_backoff", ceiling, ceilingSet, initialSet, initial, initial)
			}
		}
	}
	return errs
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
