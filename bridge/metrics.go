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
			Name: "shopstream_bridge_events_total", Help: "Events produced and acknowledged by Kafka, by type.",
		}, []string{"type"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shopstream_bridge_auth_failures_total", Help: "Requests refused with 401, by reason (missing, malformed, stale, mismatch).",
		}, []string{"reason"}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shopstream_bridge_invalid_events_total", Help: "Events refused as invalid (their requests answered 400).",
		}),
		produceSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shopstream_bridge_produce_duration_seconds", Help: "Time from producing a request's events to Kafka's last acknowledgement.",
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
