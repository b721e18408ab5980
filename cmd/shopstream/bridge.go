package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"golang.org/x/sync/errgroup"

	"github.com/shopstream/shopstream/bridge"
	"github.com/shopstream/shopstream/topics"
)

const (
	envBridgeSecrets     = "SHOPSTREAM_BRIDGE_SECRETS"
	envBridgeSecretsFile = "SHOPSTREAM_BRIDGE_SECRETS_FILE"
)

// bridgeConfig is what `shopstream bridge` needs.
type bridgeConfig struct {
	Brokers        []string
	Kafka          kafkaSecurity
	Listen         string
	Secrets        [][]byte
	MaxBody        int64
	MaxBatch       int
	Window         time.Duration
	ProduceTimeout time.Duration
	ConnectTimeout time.Duration
	// TransactionalID is the Kafka transactional.id of this replica
	// (see bridge.TxnConfig): unique per replica, stable across its
	// restarts. Default: shopstream-bridge-<host name>, the pod name in
	// Kubernetes.
	TransactionalID string
	Topics          map[topics.Domain]string
	LogLevel        string
}

func parseBridgeConfig(args []string, getenv func(string) string) (*bridgeConfig, error) {
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	var brokers, listen, secretsFile, maxBody, maxBatch, window, produceTimeout, connectTimeout, txnID, configFile, logLevel string
	settings := []setting{
		{"brokers", "SHOPSTREAM_BROKERS", "comma-separated seed brokers (host:port)", &brokers},
		{"listen", "SHOPSTREAM_BRIDGE_LISTEN", "address of POST /v1/events, /metrics, /healthz, /readyz (default :8080)", &listen},
		{"secrets-file", envBridgeSecretsFile, "file of HMAC secrets, one a line (or set " + envBridgeSecrets + ", comma-separated; never a flag)", &secretsFile},
		{"max-body", "SHOPSTREAM_BRIDGE_MAX_BODY", "largest request body in bytes (default 1048576)", &maxBody},
		{"max-batch", "SHOPSTREAM_BRIDGE_MAX_BATCH", "most events in one batched request (default 100)", &maxBatch},
		{"signature-window", "SHOPSTREAM_BRIDGE_SIGNATURE_WINDOW", "how far X-Shopstream-Timestamp may be from now (default 5m)", &window},
		{"produce-timeout", "SHOPSTREAM_BRIDGE_PRODUCE_TIMEOUT", "wait for Kafka's acknowledgements before answering 503 (default 10s)", &produceTimeout},
		{"connect-timeout", "SHOPSTREAM_CONNECT_TIMEOUT", "bound of the start-up check of Kafka (default 15s)", &connectTimeout},
		{"transactional-id", "SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID", "Kafka transactional.id of this replica: unique per replica, stable across its restarts (default shopstream-bridge-<host name>, the pod name in Kubernetes)", &txnID},
		{"config", "SHOPSTREAM_CONFIG", "YAML topology file; the bridge reads its topics", &configFile},
		{"log-level", "SHOPSTREAM_LOG_LEVEL", "debug, info, warn or error (default info)", &logLevel},
	}
	for _, s := range settings {
		fs.StringVar(s.dst, s.flag, "", s.usage+" (env "+s.env+")")
	}
	var sec securityFlags
	sec.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w\n\nusage: shopstream bridge [flags]\n%s", err, flagUsage(fs))
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("bridge: unexpected argument %q; every setting is a --flag", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, s := range settings {
		if v := getenv(s.env); v != "" && !given[s.flag] {
			*s.dst = v
		}
	}
	c := &bridgeConfig{Listen: ":8080", MaxBody: 1 << 20, MaxBatch: 100, Window: 5 * time.Minute,
		ProduceTimeout: 10 * time.Second, ConnectTimeout: 15 * time.Second, LogLevel: "info"}
	var errs []error
	k, err := sec.resolve(fs, getenv)
	errs = append(errs, err)
	c.Kafka = k
	c.Brokers = splitList(brokers)
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: missing; set --brokers or SHOPSTREAM_BROKERS (host:port,...)"))
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			errs = append(errs, fmt.Errorf("brokers: %q is not host:port", b))
		}
	}
	if listen != "" {
		c.Listen = listen
	}
	if logLevel != "" {
		c.LogLevel = logLevel
	}
	c.TransactionalID = txnID
	if c.TransactionalID == "" {
		host := getenv("HOSTNAME")
		if host == "" {
			host, _ = os.Hostname()
		}
		if host == "" {
			errs = append(errs, errors.New("transactional-id: cannot derive it from the host name; set --transactional-id or SHOPSTREAM_BRIDGE_TRANSACTIONAL_ID"))
		}
		c.TransactionalID = "shopstream-bridge-" + host
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level: %q is not debug, info, warn or error", c.LogLevel))
	}
	intSetting := func(name, v string, dst *int64) {
		if v == "" {
			return
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive integer", name, v))
			return
		}
		*dst = n
	}
	durSetting := func(name, v string, dst *time.Duration) {
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive duration", name, v))
			return
		}
		*dst = d
	}
	intSetting("max-body", maxBody, &c.MaxBody)
	batch := int64(c.MaxBatch)
	intSetting("max-batch", maxBatch, &batch)
	c.MaxBatch = int(batch)
	durSetting("signature-window", window, &c.Window)
	durSetting("produce-timeout", produceTimeout, &c.ProduceTimeout)
	durSetting("connect-timeout", connectTimeout, &c.ConnectTimeout)

	raw := getenv(envBridgeSecrets)
	sep := ","
	if secretsFile != "" {
		if raw != "" {
			errs = append(errs, fmt.Errorf("secrets-file: set either %s or the file, not both", envBridgeSecrets))
		}
		b, err := os.ReadFile(secretsFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("secrets-file: %w", err))
		}
		raw, sep = string(b), "\n"
	}
	for _, s := range strings.Split(raw, sep) {
		if s = strings.TrimSpace(s); s != "" {
			if len(s) < 16 {
				errs = append(errs, fmt.Errorf("bridge secrets: a secret is shorter than 16 characters; use 32 random bytes, hex (openssl rand -hex 32)"))
				continue
			}
			c.Secrets = append(c.Secrets, []byte(s))
		}
	}
	if len(c.Secrets) == 0 && raw == "" {
		errs = append(errs, fmt.Errorf("bridge secrets: missing; set %s (comma-separated, several during a rotation) or --secrets-file / %s", envBridgeSecrets, envBridgeSecretsFile))
	}
	if configFile != "" {
		rc := &config{}
		if err := rc.loadTopology(configFile); err != nil {
			errs = append(errs, err)
		}
		c.Topics = map[topics.Domain]string{}
		for d, name := range rc.Topology.Topics {
			c.Topics[topics.Domain(d)] = name
		}
	}
	return c, errors.Join(errs...)
}

// runBridge serves the HTTP → Kafka bridge until ctx ends, then stops
// accepting connections and finishes the requests it accepted.
func runBridge(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := parseBridgeConfig(args, getenv)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	log := newLogger(stderr, cfg.LogLevel)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	secOpts, err := cfg.Kafka.opts()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	prod, err := bridge.NewTxnProducer(bridge.TxnConfig{
		TransactionalID: cfg.TransactionalID,
		Opts:            append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID("shopstream-bridge")}, secOpts...),
		Hooks: func() []kgo.Hook {
			return []kgo.Hook{kprom.NewMetrics("shopstream_kafka", kprom.Registerer(reg))}
		},
		ProduceTimeout: cfg.ProduceTimeout,
		Registerer:     reg,
		Logger:         log,
	})
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	// Closed last: the server's shutdown below waits for the requests,
	// which wait for their transactions.
	defer prod.Close()
	cctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	err = prod.Ping(cctx)
	cancel()
	if err != nil {
		return &exitError{code: 2, err: classifyKafka(err, cfg.Brokers, cfg.Kafka)}
	}
	h, err := bridge.New(bridge.Config{
		Producer:       prod,
		Ready:          prod.Ping,
		Topics:         cfg.Topics,
		Secrets:        cfg.Secrets,
		Window:         cfg.Window,
		MaxBody:        cfg.MaxBody,
		MaxBatch:       cfg.MaxBatch,
		ProduceTimeout: cfg.ProduceTimeout,
		Registerer:     reg,
		Logger:         log,
	})
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("listen: %w", err)}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 3*cfg.ProduceTimeout + 30*time.Second}
	log.Info().Str("listen", ln.Addr().String()).Strs("brokers", cfg.Brokers).Str("transactional_id", cfg.TransactionalID).
		Int("secrets", len(cfg.Secrets)).Msg("shopstream bridge starting")

	eg, egCtx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	eg.Go(func() error {
		<-egCtx.Done()
		// Finish the accepted requests: each waits at most ProduceTimeout
		// for its transaction's writes, then for its commit, then for its
		// abort if the commit failed.
		sctx, cancel := context.WithTimeout(context.Background(), 3*cfg.ProduceTimeout+5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	err = eg.Wait()
	log.Info().Err(err).Msg("shopstream bridge stopped")
	return err
}
