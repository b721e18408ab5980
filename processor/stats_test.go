package processor

import (
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// bareProcessor returns a processor with metrics and client-less groups, for
// tests of what does not talk to Kafka.
func bareProcessor(t *testing.T, groups ...GroupConfig) *Processor {
	t.Helper()
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("newMetrics: %v", err)
	}
	p := &Processor{metrics: m}
	for _, cfg := range groups {
		g := &group{p: p, cfg: cfg, id: cfg.GroupID()}
		g.bindMetrics()
		p.groups = append(p.groups, g)
	}
	return p
}

func TestStatsCountsPerOutcome(t *testing.T) {
	p := bareProcessor(t, GroupConfig{Name: "inventory", Topic: "inv"}, GroupConfig{Name: "order-crm", Topic: "ord"})
	inv, ord := p.groups[0], p.groups[1]
	counts := map[string]int{
		OutcomeApplied:          5,
		OutcomeSkippedStale:     4,
		OutcomeSkippedDuplicate: 3,
		OutcomeFiltered:         2,
		OutcomeDeadLettered:     1,
	}
	for outcome, n := range counts {
		for range n {
			inv.count(outcome)
		}
	}
	inv.stats.retried.Add(7)
	inv.stats.add("no-such-outcome", 1)
	ord.count(OutcomeApplied)

	stats := p.Stats()
	if len(stats) != 2 {
		t.Fatalf("Stats() returned %d entries, want 2", len(stats))
	}
	want := GroupStats{
		Group: "shopstream.inventory", Topic: "inv",
		Consumed: 15, Applied: 5, SkippedStale: 4, SkippedDuplicate: 3, Filtered: 2, Retried: 7, DeadLettered: 1,
	}
	if stats[0] != want {
		t.Errorf("Stats()[0] = %+v, want %+v", stats[0], want)
	}
	wantOrd := GroupStats{Group: "shopstream.order-crm", Topic: "ord", Consumed: 1, Applied: 1}
	if stats[1] != wantOrd {
		t.Errorf("Stats()[1] = %+v, want %+v", stats[1], wantOrd)
	}
	for _, s := range stats {
		if sum := s.Applied + s.SkippedStale + s.SkippedDuplicate + s.Filtered + s.DeadLettered; s.Consumed != sum {
			t.Errorf("%s: Consumed = %d, want the sum of outcomes %d", s.Group, s.Consumed, sum)
		}
	}

	// count also feeds shopstream_records_total, one series per outcome.
	for outcome, n := range counts {
		got := counterValue(t, p.metrics.records.WithLabelValues("shopstream.inventory", "inv", outcome))
		if got != float64(n) {
			t.Errorf("shopstream_records_total{outcome=%q} = %v, want %d", outcome, got, n)
		}
	}
	if got := counterValue(t, p.metrics.records.WithLabelValues("shopstream.order-crm", "ord", OutcomeApplied)); got != 1 {
		t.Errorf("shopstream_records_total of order-crm applied = %v, want 1", got)
	}
}

func TestStatsConcurrentCounts(t *testing.T) {
	p := bareProcessor(t, GroupConfig{Name: "inventory", Topic: "inv"})
	g := p.groups[0]
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			outcome := OutcomeApplied
			if i%2 == 1 {
				outcome = OutcomeDeadLettered
			}
			for range each {
				g.count(outcome)
			}
		})
	}
	wg.Wait()
	s := p.Stats()[0]
	if s.Applied != workers/2*each || s.DeadLettered != workers/2*each || s.Consumed != workers*each {
		t.Errorf("Stats() after concurrent counts = %+v, want applied %d, dead_lettered %d, consumed %d",
			s, workers/2*each, workers/2*each, workers*each)
	}
}

func TestStatsNoGroups(t *testing.T) {
	p := bareProcessor(t)
	if s := p.Stats(); s == nil || len(s) != 0 {
		t.Errorf("Stats() with no groups = %#v, want an empty non-nil slice", s)
	}
}

// counterValue reads a counter (prometheus/testutil needs a module this
// repository does not require).
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatalf("read counter: %v", err)
	}
	return m.GetCounter().GetValue()
}
