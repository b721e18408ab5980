package processor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a record (label "outcome" of shopstream_records_total).
const (
	OutcomeApplied          = "applied"
	OutcomeSkippedStale     = "skipped_stale"
	OutcomeSkippedDuplicate = "skipped_duplicate"
	OutcomeDeadLettered     = "dead_lettered"
	OutcomeFiltered         = "filtered"
)

// metrics are the processor's Prometheus collectors (contract names).
type metrics struct {
	records        *prometheus.CounterVec
	retries        *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	lag            *prometheus.GaugeVec
	lagSeconds     *prometheus.GaugeVec
	members        *prometheus.GaugeVec
	inflight       *prometheus.GaugeVec
	paused         *prometheus.GaugeVec
	dlqFailures    *prometheus.CounterVec
	storeFailures  *prometheus.CounterVec
	commitFailures *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopstream_records_total",
			Help: "Records finished, by outcome: applied, skipped_stale, skipped_duplicate, dead_lettered, filtered.",
		}, []string{"group", "topic", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopstream_retries_total",
			Help: "Handler attempts that failed with a retryable error and were retried.",
		}, []string{"group", "topic"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shopstream_handler_duration_seconds",
			Help:    "Duration of one handler call (one attempt).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"group", "topic"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shopstream_consumer_lag",
			Help: "Records between the group's finished watermark and the partition's high watermark.",
		}, []string{"group", "topic", "partition"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shopstream_consumer_lag_seconds",
			Help: "Age of the oldest fetched and unfinished record of the group (0 when caught up).",
		}, []string{"group", "topic"}),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shopstream_group_members",
			Help: "Members of the consumer group, as the group coordinator describes it.",
		}, []string{"group"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shopstream_inflight",
			Help: "Records being handled right now.",
		}, []string{"group"}),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shopstream_paused",
			Help: "1 while the group has paused fetching because Redis is unreachable.",
		}, []string{"group"}),
		dlqFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopstream_dlq_write_failures_total",
			Help: "Failed dead-letter writes; the partition does not advance past the record until one succeeds.",
		}, []string{"group", "topic"}),
		storeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopstream_store_failures_total",
			Help: "Failed Redis fence or dedupe calls; the group pauses and retries them.",
		}, []string{"group"}),
		commitFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopstream_commit_failures_total",
			Help: "Failed offset commits (retried on the next commit).",
		}, []string{"group"}),
	}
	for _, c := range []prometheus.Collector{m.records, m.retries, m.duration, m.lag, m.lagSeconds,
		m.members, m.inflight, m.paused, m.dlqFailures, m.storeFailures, m.commitFailures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
