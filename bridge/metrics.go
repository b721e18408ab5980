package bridge

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests       *prometheus.CounterVec
	events         *prometheus.CounterVec
	authFailures   *prometheus.CounterVec
	invalid        prometheus.Counter
	produceSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopstream_bridge_requests_total", Help: "POST /v1/events requests by answer status.",
		}, []string{"status"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopstream_bridge_events_total", Help: "Events committed to Kafka, by type.",
		}, []string{"type"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopstream_bridge_auth_failures_total", Help: "Requests refused with 401, by reason (missing, malformed, stale, mismatch).",
		}, []string{"reason"}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shopstream_bridge_invalid_events_total", Help: "Events refused as invalid (their requests answered 400).",
		}),
		produceSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shopstream_bridge_produce_duration_seconds", Help: "Time from queueing a request's events to the end of their transaction (commit or abort).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.events, m.authFailures, m.invalid, m.produceSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

type txnMetrics struct {
	transactions   *prometheus.CounterVec
	requestsPerTxn prometheus.Histogram
	queued         prometheus.Gauge
	restarts       prometheus.Counter
	fenced         prometheus.Gauge
}

func newTxnMetrics(reg prometheus.Registerer) (*txnMetrics, error) {
	m := &txnMetrics{
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopstream_bridge_transactions_total", Help: "Kafka transactions by outcome (committed, aborted).",
		}, []string{"outcome"}),
		requestsPerTxn: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shopstream_bridge_transaction_requests", Help: "Requests per transaction (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shopstream_bridge_queued_requests", Help: "Requests waiting for the next transaction.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shopstream_bridge_producer_restarts_total", Help: "Kafka clients replaced after a transaction could not be aborted or begun.",
		}),
		fenced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shopstream_bridge_fenced", Help: "1 once another producer took over the transactional id (the bridge then answers 503).",
		}),
	}
	for _, c := range []prometheus.Collector{m.transactions, m.requestsPerTxn, m.queued, m.restarts, m.fenced} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
