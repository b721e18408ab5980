package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
)

// VersionStore keeps the last applied version per (group, subject). Calls
// take batches: the processor merges concurrent records into one call. The
// Redis implementation is ordering.VersionFence.
type VersionStore interface {
	// Versions returns each subject's last applied version, 0 if none.
	Versions(ctx context.Context, group string, subjects []string) ([]int64, error)
	// Advance raises each subject's version to the one at the same index,
	// never lowering it, atomically per subject.
	Advance(ctx context.Context, group string, subjects []string, versions []int64) ([]bool, error)
}

// IDStore remembers the event ids a group has applied. Calls take batches.
// The Redis implementation is ordering.Dedupe.
type IDStore interface {
	Seen(ctx context.Context, group string, ids []string) ([]bool, error)
	Mark(ctx context.Context, group string, ids []string) error
}

// Options configure a Processor; the zero value of each field means its default.
type Options struct {
	// Brokers are the seed brokers.
	Brokers []string
	// ClientOpts are added to every group's kgo client (TLS, SASL). The
	// options the processing depends on (the consumer group, manual
	// commits, read_committed, the rebalance callbacks, the group's pool
	// of record slices) are set after them and win; New refuses
	// kgo.WithPools.
	ClientOpts []kgo.Opt
	// GroupClientOpts, if set, returns options for one group's client only
	// (per-client hooks such as kprom, which holds one client's metrics).
	GroupClientOpts func(group string) []kgo.Opt
	// Versions backs the version fence; required when a group uses it.
	Versions VersionStore
	// IDs backs event-id dedupe; required when a group uses it.
	IDs IDStore
	// Ping checks the store for readiness (nil: no check).
	Ping func(context.Context) error
	// Logger receives JSON logs.
	Logger zerolog.Logger
	// Registerer receives the metrics (default: a new private registry).
	Registerer prometheus.Registerer
	// DrainTimeout bounds how long shutdown waits for in-flight records (default 30s).
	DrainTimeout time.Duration
	// RevokeTimeout bounds how long a revocation waits for in-flight records
	// of the revoked partitions before committing (default 20s; keep it
	// below the group's rebalance timeout, 60s).
	RevokeTimeout time.Duration
	// CommitInterval is how often finished offsets are committed (default 1s).
	CommitInterval time.Duration
	// DLQTimeout bounds one dead-letter write attempt; a failed write is
	// retried and the partition does not advance meanwhile (default 30s).
	DLQTimeout time.Duration
	// StoreBackoffMax caps the wait between Redis retries during an outage (default 5s).
	StoreBackoffMax time.Duration
}

func (o Options) withDefaults() Options {
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.RevokeTimeout == 0 {
		o.RevokeTimeout = 20 * time.Second
	}
	if o.CommitInterval == 0 {
		o.CommitInterval = time.Second
	}
	if o.DLQTimeout == 0 {
		o.DLQTimeout = 30 * time.Second
	}
	if o.StoreBackoffMax == 0 {
		o.StoreBackoffMax = 5 * time.Second
	}
	return o
}

// Processor runs several consumer groups in one process, each with its own
// kgo client, offsets, concurrency, retry policy and sink.
type Processor struct {
	opts    Options
	metrics *metrics
	groups  []*group
}

// New validates the options and groups and creates one kgo client per
// group. It returns every configuration problem at once.
func New(opts Options, groups ...GroupConfig) (*Processor, error) {
	opts = opts.withDefaults()
	var errs []error
	if len(opts.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: none given; set --brokers or SHOPSTREAM_BROKERS"))
	}
	if len(groups) == 0 {
		errs = append(errs, errors.New("groups: none enabled"))
	}
	groups = slices.Clone(groups) // defaults are filled in on our copy
	seen := map[string]bool{}
	for i := range groups {
		groups[i] = groups[i].withDefaults()
		g := groups[i]
		if err := g.validate(); err != nil {
			errs = append(errs, err)
		}
		if seen[g.GroupID()] {
			errs = append(errs, fmt.Errorf("group %q: id %q is used twice", g.Name, g.GroupID()))
		}
		seen[g.GroupID()] = true
		if g.Idempotency == IdempotencyFence && opts.Versions == nil {
			errs = append(errs, fmt.Errorf("group %q: idempotency fence needs a version store (redis-url)", g.Name))
		}
		if g.Idempotency == IdempotencyDedupe && opts.IDs == nil {
			errs = append(errs, fmt.Errorf("group %q: idempotency dedupe needs an id store (redis-url)", g.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	p := &Processor{opts: opts, metrics: m}
	for _, cfg := range groups {
		g, err := newGroup(p, cfg)
		if err != nil {
			p.close()
			return nil, err
		}
		p.groups = append(p.groups, g)
	}
	return p, nil
}

// Run consumes until ctx is done, then shuts down gracefully: it stops
// fetching, drains in-flight records within DrainTimeout, commits finished
// offsets and leaves every group. It returns nil after a clean shutdown.
func (p *Processor) Run(ctx context.Context) error {
	eg, ctx := errgroup.WithContext(ctx)
	for _, g := range p.groups {
		eg.Go(func() error { return g.run(ctx) })
	}
	return eg.Wait()
}

// Ready returns nil when every group has joined its consumer group and the
// store answers, or an error naming what is not ready.
func (p *Processor) Ready(ctx context.Context) error {
	var errs []error
	for _, g := range p.groups {
		if !g.joined.Load() {
			errs = append(errs, fmt.Errorf("group %s has not joined", g.id))
		}
	}
	if p.opts.Ping != nil {
		if err := p.opts.Ping(ctx); err != nil {
			errs = append(errs, fmt.Errorf("redis: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (p *Processor) close() {
	for _, g := range p.groups {
		g.cl.Close()
	}
}
