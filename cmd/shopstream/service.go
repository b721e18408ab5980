package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"golang.org/x/sync/errgroup"

	"github.com/shopstream/shopstream/handlers"
	"github.com/shopstream/shopstream/internal/gctune"
	"github.com/shopstream/shopstream/ordering"
	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

func newLogger(w io.Writer, level string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(redactWriter{w}).Level(lvl).With().Timestamp().Str("service", "shopstream").Logger()
}

func runService(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	cfg, err := parseRunConfig(args, getenv)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	log := newLogger(stderr, cfg.LogLevel)
	tuneGC(log)
	ropts, err := cfg.Redis.options(getenv)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if cfg.kafkaOpts, err = cfg.Kafka.opts(); err != nil {
		return &exitError{code: 2, err: err}
	}
	rdb := redis.NewUniversalClient(ropts)
	defer rdb.Close()
	if err := checkConnections(ctx, cfg, rdb); err != nil {
		return &exitError{code: 2, err: err}
	}
	return serve(ctx, cfg, rdb, log)
}

// tuneGC sets the garbage collector (see gctune) and logs its settings.
func tuneGC(log zerolog.Logger) {
	s := gctune.Apply()
	ev := log.Info().Int("gc_percent", s.Percent).Str("gc_percent_from", s.PercentFrom).Str("memory_limit_from", s.LimitFrom)
	if s.LimitFrom != "none" {
		ev = ev.Int64("memory_limit_bytes", s.Limit)
	}
	ev.Msg("garbage collector")
	if s.CgroupErr != nil {
		log.Warn().Err(s.CgroupErr).Msg("running without a soft memory limit; set GOMEMLIMIT to give one")
	}
}

// checkConnections checks Kafka (a metadata request) and Redis (PING) at
// start-up, bounded by --connect-timeout, and reports every failure at once:
// a wrong password or an untrusted certificate is a configuration error,
// not something to retry.
func checkConnections(ctx context.Context, cfg *config, rdb redis.UniversalClient) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.kafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	var kerr, rerr error
	done := make(chan struct{})
	go func() { // owned here: joined below
		defer close(done)
		kerr = checkKafka(ctx, cl, cfg.Brokers, cfg.Kafka, cfg.ConnectTimeout)
	}()
	rerr = checkRedis(ctx, rdb, cfg.ConnectTimeout)
	<-done
	return errors.Join(kerr, rerr)
}

// serve runs the processor and the HTTP endpoints until ctx ends.
func serve(ctx context.Context, cfg *config, rdb redis.UniversalClient, log zerolog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Listen first: the group clients join their groups as soon as they
	// exist, so nothing may fail between creating them and running them.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("http-addr: %w", err)}
	}
	proc, err := newProcessor(cfg, rdb, reg, log)
	if err != nil {
		ln.Close()
		return &exitError{code: 2, err: err}
	}

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := proc.Ready(ctx); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info().Str("http_addr", ln.Addr().String()).Strs("groups", cfg.Groups).Strs("brokers", cfg.Brokers).Msg("shopstream starting")

	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	eg.Go(func() error {
		// The processor outlives the HTTP server's context only by its own
		// graceful drain: Run returns after committing and leaving.
		err := proc.Run(ctx)
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return errors.Join(err, srv.Shutdown(shutdownCtx))
	})
	err = eg.Wait()
	log.Info().Err(err).Msg("shopstream stopped")
	return err
}

// newProcessor wires the built-in groups named in cfg to their sinks.
func newProcessor(cfg *config, rdb redis.UniversalClient, reg prometheus.Registerer, log zerolog.Logger) (*processor.Processor, error) {
	t := cfg.Topology
	topicOf := func(d topics.Domain) string {
		if name := t.Topics[string(d)]; name != "" {
			return name
		}
		return topics.DefaultTopic(d)
	}
	var (
		groups []processor.GroupConfig
		errs   []error
	)
	for _, name := range cfg.Groups {
		gs := t.Groups[name]
		gc := processor.GroupConfig{
			Name:        name,
			Concurrency: gs.Concurrency,
			MaxBuffered: gs.MaxBuffered,
			Retry:       gs.Retry,
		}
		webhook := func(setting, u string, types []string) processor.Handler {
			h, err := handlers.NewWebhook(handlers.WebhookConfig{
				Name: name, Setting: setting, URL: u, Types: types,
				Timeout: gs.Timeout, RateLimit: gs.RateLimit, Burst: gs.Burst,
			})
			if err != nil {
				errs = append(errs, err)
				return nil
			}
			return h
		}
		switch name {
		case "catalog", "inventory":
			// Each group has its own client, so its own rate limit.
			magento, err := handlers.NewMagento(handlers.MagentoConfig{
				BaseURL: cfg.MagentoURL, Token: cfg.MagentoToken,
				Timeout: gs.Timeout, RateLimit: gs.RateLimit, Burst: gs.Burst,
			})
			if err != nil {
				errs = append(errs, err)
				continue
			}
			gc.Idempotency = processor.IdempotencyFence
			if gs.Coalesce {
				gc.Coalesce = handlers.CoalesceKey
			}
			if name == "catalog" {
				gc.Domain, gc.Handler = topics.DomainCatalog, magento.Catalog()
			} else {
				gc.Domain, gc.Handler = topics.DomainInventory, magento.Inventory()
			}
		case "order-crm":
			gc.Domain, gc.Idempotency, gc.Handler = topics.DomainOrder, processor.IdempotencyDedupe, webhook("crm-url", cfg.CRMURL, handlers.CRMOrderTypes)
		case "order-fraud":
			gc.Domain, gc.Idempotency, gc.Handler = topics.DomainOrder, processor.IdempotencyDedupe, webhook("fraud-url", cfg.FraudURL, handlers.FraudOrderTypes)
		case "order-email":
			gc.Domain, gc.Idempotency, gc.Handler = topics.DomainOrder, processor.IdempotencyDedupe, webhook("email-url", cfg.EmailURL, handlers.EmailOrderTypes)
		case "customer-crm":
			gc.Domain, gc.Idempotency, gc.Handler = topics.DomainCustomer, processor.IdempotencyDedupe, webhook("crm-url", cfg.CRMURL, nil)
		}
		gc.Topic = topicOf(gc.Domain)
		if gc.Handler != nil {
			gc.Handler = redactErrors(gc.Handler)
		}
		groups = append(groups, gc)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return processor.New(processor.Options{
		Brokers:    cfg.Brokers,
		ClientOpts: cfg.kafkaOpts,
		// kprom keeps one client's metrics per Metrics; the client_id label
		// (shopstream-<group>) tells the groups apart.
		GroupClientOpts: func(string) []kgo.Opt {
			return []kgo.Opt{kgo.WithHooks(kprom.NewMetrics("shopstream_kafka", kprom.Registerer(reg), kprom.WithClientLabel()))}
		},
		Versions:      ordering.NewVersionFence(rdb),
		IDs:           ordering.NewDedupe(rdb, t.DedupeTTL),
		Ping:          func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		Logger:        log,
		Registerer:    reg,
		DrainTimeout:  t.DrainTimeout,
		RevokeTimeout: t.RevokeTimeout,
	}, groups...)
}
