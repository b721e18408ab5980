package processor

import (
	"errors"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestNewMetricsContract(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatalf("newMetrics: %v", err)
	}

	type labels = prometheus.Labels
	gt := labels{"group": "g", "topic": "t"}
	// Create one series per collector by label *name*: a wrong label name
	// fails here rather than panicking.
	series := []struct {
		name string
		err  error
	}{
		{"shopstream_records_total", with(m.records, labels{"group": "g", "topic": "t", "outcome": OutcomeApplied})},
		{"shopstream_retries_total", with(m.retries, gt)},
		{"shopstream_handler_duration_seconds", withObserver(m.duration, gt)},
		{"shopstream_consumer_lag", withGauge(m.lag, labels{"group": "g", "topic": "t", "partition": "0"})},
		{"shopstream_consumer_lag_seconds", withGauge(m.lagSeconds, gt)},
		{"shopstream_group_members", withGauge(m.members, labels{"group": "g"})},
		{"shopstream_inflight", withGauge(m.inflight, labels{"group": "g"})},
		{"shopstream_paused", withGauge(m.paused, labels{"group": "g"})},
		{"shopstream_dlq_write_failures_total", with(m.dlqFailures, gt)},
		{"shopstream_store_failures_total", with(m.storeFailures, labels{"group": "g"})},
		{"shopstream_commit_failures_total", with(m.commitFailures, labels{"group": "g"})},
	}
	for _, s := range series {
		if s.err != nil {
			t.Errorf("%s: %v", s.name, s.err)
		}
	}

	want := map[string]struct {
		typ    dto.MetricType
		labels []string
	}{
		"shopstream_records_total":            {dto.MetricType_COUNTER, []string{"group", "outcome", "topic"}},
		"shopstream_retries_total":            {dto.MetricType_COUNTER, []string{"group", "topic"}},
		"shopstream_handler_duration_seconds": {dto.MetricType_HISTOGRAM, []string{"group", "topic"}},
		"shopstream_consumer_lag":             {dto.MetricType_GAUGE, []string{"group", "partition", "topic"}},
		"shopstream_consumer_lag_seconds":     {dto.MetricType_GAUGE, []string{"group", "topic"}},
		"shopstream_group_members":            {dto.MetricType_GAUGE, []string{"group"}},
		"shopstream_inflight":                 {dto.MetricType_GAUGE, []string{"group"}},
		"shopstream_paused":                   {dto.MetricType_GAUGE, []string{"group"}},
		"shopstream_dlq_write_failures_total": {dto.MetricType_COUNTER, []string{"group", "topic"}},
		"shopstream_store_failures_total":     {dto.MetricType_COUNTER, []string{"group"}},
		"shopstream_commit_failures_total":    {dto.MetricType_COUNTER, []string{"group"}},
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		w, ok := want[mf.GetName()]
		if !ok {
			t.Errorf("unexpected metric %s", mf.GetName())
			continue
		}
		seen[mf.GetName()] = true
		if mf.GetType() != w.typ {
			t.Errorf("%s is a %v, want %v", mf.GetName(), mf.GetType(), w.typ)
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help text", mf.GetName())
		}
		for _, metric := range mf.GetMetric() {
			var names []string
			for _, l := range metric.GetLabel() {
				names = append(names, l.GetName())
			}
			slices.Sort(names)
			if !slices.Equal(names, w.labels) {
				t.Errorf("%s has labels %v, want %v", mf.GetName(), names, w.labels)
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("metric %s not registered", name)
		}
	}
}

func TestNewMetricsTwiceOnOneRegistryFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg); err != nil {
		t.Fatalf("first newMetrics: %v", err)
	}
	_, err := newMetrics(reg)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("second newMetrics on one registry = %v, want an AlreadyRegisteredError", err)
	}
	// A different registry is fine: no global state.
	if _, err := newMetrics(prometheus.NewRegistry()); err != nil {
		t.Errorf("newMetrics on a fresh registry after another = %v", err)
	}
}

func with(v *prometheus.CounterVec, l prometheus.Labels) error {
	c, err := v.GetMetricWith(l)
	if err == nil {
		c.Inc()
	}
	return err
}

func withGauge(v *prometheus.GaugeVec, l prometheus.Labels) error {
	g, err := v.GetMetricWith(l)
	if err == nil {
		g.Set(1)
	}
	return err
}

func withObserver(v *prometheus.HistogramVec, l prometheus.Labels) error {
	o, err := v.GetMetricWith(l)
	if err == nil {
		o.Observe(0.01)
	}
	return err
}
