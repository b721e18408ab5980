package processor_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// unreachableBroker refuses connections at once; kgo clients dial lazily,
// so New succeeds and nothing ever reaches a broker.
const unreachableBroker = "127.0.0.1:1"

func noop(context.Context, *topics.Event) error { return nil }

func group(name string, d topics.Domain, idem processor.Idempotency) processor.GroupConfig {
	return processor.GroupConfig{
		Name:        name,
		Topic:       topics.DefaultTopic(d),
		Domain:      d,
		Handler:     processor.HandlerFunc(noop),
		Idempotency: idem,
		Concurrency: 2,
	}
}

type fakeVersions struct{}

// The stores are never called by these tests: New only checks they are set.
func (fakeVersions) Versions(context.Context, string, []string) ([]int64, error) { return nil, nil }
func (fakeVersions) Advance(context.Context, string, []string, []int64) ([]bool, error) {
	return nil, nil
}

type fakeIDs struct{}

func (fakeIDs) Seen(context.Context, string, []string) ([]bool, error) { return nil, nil }
func (fakeIDs) Mark(context.Context, string, []string) error           { return nil }

func stores() processor.Options {
	return processor.Options{
		Brokers:  []string{unreachableBroker},
		Versions: fakeVersions{},
		IDs:      fakeIDs{},
		Logger:   zerolog.Nop(),
	}
}

func TestNewConfigErrors(t *testing.T) {
	noStores := processor.Options{Brokers: []string{unreachableBroker}, Logger: zerolog.Nop()}
	tests := []struct {
		name   string
		opts   processor.Options
		groups []processor.GroupConfig
		want   []string
	}{
		{
			"no brokers",
			processor.Options{Logger: zerolog.Nop()},
			[]processor.GroupConfig{group("inventory", topics.DomainInventory, processor.IdempotencyNone)},
			[]string{"brokers:"},
		},
		{
			"no groups",
			stores(),
			nil,
			[]string{"groups:"},
		},
		{
			"duplicate names",
			stores(),
			[]processor.GroupConfig{
				group("inventory", topics.DomainInventory, processor.IdempotencyNone),
				group("inventory", topics.DomainInventory, processor.IdempotencyNone),
			},
			[]string{`id "shopstream.inventory" is used twice`},
		},
		{
			"id override collides with a default id",
			stores(),
			[]processor.GroupConfig{
				group("inventory", topics.DomainInventory, processor.IdempotencyNone),
				func() processor.GroupConfig {
					g := group("inventory-v2", topics.DomainInventory, processor.IdempotencyNone)
					g.ID = "shopstream.inventory"
					return g
				}(),
			},
			[]string{`group "inventory-v2": id "shopstream.inventory" is used twice`},
		},
		{
			"fence without a version store",
			noStores,
			[]processor.GroupConfig{group("catalog", topics.DomainCatalog, processor.IdempotencyFence)},
			[]string{`group "catalog": idempotency fence needs a version store`},
		},
		{
			"dedupe without an id store",
			noStores,
			[]processor.GroupConfig{group("order-crm", topics.DomainOrder, processor.IdempotencyDedupe)},
			[]string{`group "order-crm": idempotency dedupe needs an id store`},
		},
		{
			"invalid group",
			stores(),
			[]processor.GroupConfig{{Name: "broken", Domain: topics.DomainOrder, Handler: processor.HandlerFunc(noop)}},
			[]string{`group "broken": topic:`},
		},
		{
			"kgo pools",
			func() processor.Options {
				o := stores()
				o.ClientOpts = []kgo.Opt{kgo.WithPools(recordPool{})}
				return o
			}(),
			[]processor.GroupConfig{group("inventory", topics.DomainInventory, processor.IdempotencyNone)},
			[]string{"kgo.WithPools is not supported (the group pools"},
		},
		{
			"every problem at once",
			processor.Options{Logger: zerolog.Nop()},
			[]processor.GroupConfig{
				group("catalog", topics.DomainCatalog, processor.IdempotencyFence),
				group("order-crm", topics.DomainOrder, processor.IdempotencyDedupe),
				group("order-crm", topics.DomainOrder, processor.IdempotencyNone),
				{Name: "broken", Topic: "t", Domain: "shipping", Handler: processor.HandlerFunc(noop)},
			},
			[]string{
				"brokers:",
				`group "catalog": idempotency fence needs a version store`,
				`group "order-crm": idempotency dedupe needs an id store`,
				`group "order-crm": id "shopstream.order-crm" is used twice`,
				`group "broken": domain:`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := processor.New(tt.opts, tt.groups...)
			if err == nil {
				t.Fatalf("New() = %v, nil; want an error", p)
			}
			if p != nil {
				t.Errorf("New() returned a processor with its error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New() error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// recordPool is a kgo pool of record slices, which a group must refuse.
type recordPool struct{}

func (recordPool) GetRecords(n int) []kgo.Record { return make([]kgo.Record, 0, n) }
func (recordPool) PutRecords([]kgo.Record)       {}

// TestNewRunShutdown is the one success path: New creates the clients
// without reaching a broker, and Run with an ended context shuts down
// cleanly and promptly, closing them (TestMain checks for leaks).
func TestNewRunShutdown(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := stores()
	opts.Registerer = reg
	pingErr := errors.New("connection refused")
	opts.Ping = func(context.Context) error { return pingErr }
	var mu sync.Mutex
	var clientOptsFor []string
	opts.GroupClientOpts = func(name string) []kgo.Opt {
		mu.Lock()
		defer mu.Unlock()
		clientOptsFor = append(clientOptsFor, name)
		return nil
	}
	groups := []processor.GroupConfig{
		group("inventory", topics.DomainInventory, processor.IdempotencyFence),
		group("order-crm", topics.DomainOrder, processor.IdempotencyDedupe),
	}
	groups[1].ID = "custom.order-crm"

	p, err := processor.New(opts, groups...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}

	mu.Lock()
	if !slices.Equal(clientOptsFor, []string{"inventory", "order-crm"}) {
		t.Errorf("GroupClientOpts called for %v, want [inventory order-crm]", clientOptsFor)
	}
	mu.Unlock()

	// Before Run no group has joined and the store is down: Ready names all three.
	rerr := p.Ready(context.Background())
	for _, w := range []string{"group shopstream.inventory has not joined", "group custom.order-crm has not joined", "redis:"} {
		if rerr == nil || !strings.Contains(rerr.Error(), w) {
			t.Errorf("Ready() = %v, want it to contain %q", rerr, w)
		}
	}
	if !errors.Is(rerr, pingErr) {
		t.Errorf("Ready() does not wrap the Ping error")
	}

	stats := p.Stats()
	if len(stats) != 2 || stats[0].Group != "shopstream.inventory" || stats[0].Topic != topics.TopicInventory ||
		stats[1].Group != "custom.order-crm" || stats[1].Topic != topics.TopicOrder {
		t.Errorf("Stats() = %+v, want one zero entry per group in order", stats)
	}
	for _, s := range stats {
		if s.Consumed != 0 || s.Applied != 0 || s.Retried != 0 || s.DeadLettered != 0 {
			t.Errorf("Stats() of a new processor = %+v, want zero counters", s)
		}
	}

	// The gauges exist from the start, at 0, for every group.
	for _, name := range []string{"shopstream_paused", "shopstream_inflight", "shopstream_consumer_lag_seconds"} {
		got := groupsWithSeries(t, reg, name)
		if !slices.Equal(got, []string{"custom.order-crm", "shopstream.inventory"}) {
			t.Errorf("%s has series for groups %v, want both groups", name, got)
		}
	}

	// The registry is taken: a second processor on it fails.
	if _, err := processor.New(opts, group("catalog", topics.DomainCatalog, processor.IdempotencyNone)); err == nil ||
		!strings.Contains(err.Error(), "register metrics") {
		t.Errorf("New() on a registry already in use = %v, want a register metrics error", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run(cancelled ctx) = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run(cancelled ctx) did not return within 15s")
	}
}

func TestNewDefaultRegistryIsPrivate(t *testing.T) {
	opts := stores()
	g := group("inventory", topics.DomainInventory, processor.IdempotencyNone)
	// Two processors without a Registerer do not collide: each gets its own registry.
	var ps []*processor.Processor
	for range 2 {
		p, err := processor.New(opts, g)
		if err != nil {
			t.Fatalf("New without Registerer: %v", err)
		}
		ps = append(ps, p)
	}
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "shopstream_") {
			t.Errorf("%s registered on the global default registry", mf.GetName())
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, p := range ps {
		if err := p.Run(ctx); err != nil {
			t.Errorf("Run(cancelled ctx) = %v", err)
		}
	}
}

func TestNewFillsGroupDefaults(t *testing.T) {
	// New fills the defaults of each group; a group valid only after
	// defaults (zero concurrency) is accepted.
	g := processor.GroupConfig{Name: "inventory", Topic: "t", Domain: topics.DomainInventory, Handler: processor.HandlerFunc(noop)}
	p, err := processor.New(stores(), g)
	if err != nil {
		t.Fatalf("New with defaults to fill: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Run(ctx); err != nil {
		t.Errorf("Run(cancelled ctx) = %v", err)
	}
}

// groupsWithSeries returns the sorted "group" label values of metric name.
func groupsWithSeries(t *testing.T, g prometheus.Gatherer, name string) []string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	var groups []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := gaugeValue(m); v != 0 {
				t.Errorf("%s = %v at start, want 0", name, v)
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == "group" {
					groups = append(groups, l.GetValue())
				}
			}
		}
	}
	slices.Sort(groups)
	return groups
}

func gaugeValue(m *dto.Metric) float64 { return m.GetGauge().GetValue() }
