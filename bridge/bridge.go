// Package bridge is shopstream's ingestion endpoint: Magento (or any
// system) POSTs CloudEvents over HTTP, the bridge validates them with the
// same contract code as the processor (topics.Decode), and produces them to
// Kafka — routed by type to the domain's topic, keyed by subject with
// Kafka's default murmur2 partitioner (the partition a Java producer would
// choose), idempotent, acks=all — answering 202 only once Kafka has
// committed every event of the request.
//
// A request is all or nothing: an invalid event refuses the whole request
// before anything is produced (400), and the events of a valid request are
// written in a Kafka transaction (TxnProducer), so a Kafka failure part-way
// — one partition or topic refusing the write, the produce timeout — aborts
// them all (503): consumers reading with read_committed, as shopstream's
// do, never see any of them.
//
// Requests are authenticated with an HMAC-SHA256 signature over
// timestamp + "." + body (see Verify).
package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topics"
)

// Content types of the CloudEvents HTTP binding (structured and batched mode).
const (
	ContentTypeStructured = "application/cloudevents+json"
	ContentTypeBatch      = "application/cloudevents-batch+json"
	contentTypeProblem    = "application/problem+json"
)

// Producer writes the records of one request, all or nothing: nil means
// every record is committed; an error means none of them is visible to
// read_committed consumers (TxnProducer documents its one exception, a
// commit whose outcome Kafka did not confirm). *TxnProducer is the
// implementation.
type Producer interface {
	ProduceAll(ctx context.Context, recs []*kgo.Record) error
}

// Config configures a Server; zero values mean the defaults.
type Config struct {
	// Producer writes the records: a *TxnProducer.
	Producer Producer
	// Ready checks Kafka for /readyz (nil: always ready).
	Ready func(context.Context) error
	// Topics overrides the topic per domain (default topics.DefaultTopic).
	Topics map[topics.Domain]string
	// Secrets are the accepted HMAC secrets; several during a rotation.
	// At least one is required.
	Secrets [][]byte
	// Window is how far X-Shopstream-Timestamp may be from now (default 5m).
	Window time.Duration
	// MaxBody bounds a request body in bytes (default 1 MiB).
	MaxBody int64
	// MaxBatch bounds the events of a batch (default 100).
	MaxBatch int
	// MaxEventBytes bounds one event as a Kafka record (value, key and
	// headers; default DefaultMaxEventBytes). A larger event is refused as
	// invalid (400): Kafka would refuse it every time, and its transaction
	// would take every request sharing it down with a 503.
	MaxEventBytes int
	// ProduceTimeout bounds the wait for Kafka's acknowledgements; past it
	// the request's transaction is aborted and the answer is 503 (default
	// 10s). Give the TxnProducer the same.
	ProduceTimeout time.Duration
	// RetryAfter is the Retry-After of a 503 (default 5s).
	RetryAfter time.Duration
	// Registerer receives the metrics (default: a new private registry).
	Registerer prometheus.Registerer
	// Logger receives JSON logs. Payloads are never logged.
	Logger zerolog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// DefaultMaxEventBytes is the default Config.MaxEventBytes: franz-go's
// default largest record batch (ProducerBatchMaxBytes, 1,000,012 bytes),
// less 1 KiB for the batch's and the record's own framing. (A topic whose
// max.message.bytes is lower needs a lower MaxEventBytes.)
const DefaultMaxEventBytes = 1_000_012 - 1<<10

// ProducerOpts are the kgo options the bridge's client needs: acks=all,
// the idempotent producer (kgo's default; transactions need it), and the
// Java default partitioner for keyed records (murmur2, positive, modulo the
// partition count). timeout bounds one record's delivery. NewTxnProducer
// adds them to its client, with the transactional id.
func ProducerOpts(timeout time.Duration) []kgo.Opt {
	return []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.RecordDeliveryTimeout(timeout),
		kgo.ProducerLinger(0),
	}
}

// Server is the bridge's HTTP handler.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	metrics *metrics
}

// New validates cfg and returns the handler. Every problem is returned at once.
func New(cfg Config) (*Server, error) {
	var errs []error
	if cfg.Producer == nil {
		errs = append(errs, errors.New("bridge: Producer is required"))
	}
	if len(cfg.Secrets) == 0 {
		errs = append(errs, errors.New("bridge: at least one HMAC secret is required"))
	}
	for i, s := range cfg.Secrets {
		if len(s) < 16 {
			errs = append(errs, fmt.Errorf("bridge: secret %d is shorter than 16 bytes", i+1))
		}
	}
	if cfg.Window < 0 || cfg.MaxBody < 0 || cfg.MaxBatch < 0 || cfg.MaxEventBytes < 0 || cfg.ProduceTimeout < 0 {
		errs = append(errs, errors.New("bridge: window, max body, max batch, max event bytes and produce timeout must not be negative"))
	}
	for d := range cfg.Topics {
		if topics.DefaultTopic(d) == "" {
			errs = append(errs, fmt.Errorf("bridge: topics: unknown domain %q", d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Window == 0 {
		cfg.Window = 5 * time.Minute
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 100
	}
	if cfg.MaxEventBytes == 0 {
		cfg.MaxEventBytes = DefaultMaxEventBytes
	}
	if cfg.ProduceTimeout == 0 {
		cfg.ProduceTimeout = 10 * time.Second
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("bridge: register metrics: %w", err)
	}
	s := &Server{cfg: cfg, metrics: m, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /v1/events", s.events)
	s.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	s.mux.HandleFunc("/readyz", s.ready)
	return s, nil
}

// ServeHTTP serves POST /v1/events, /healthz and /readyz.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	s.mux.ServeHTTP(rec, r)
	if r.URL.Path == "/v1/events" {
		s.metrics.requests.WithLabelValues(strconv.Itoa(rec.status)).Inc()
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			http.Error(w, "kafka: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "ready")
}

// InvalidEvent is one entry of a 400 answer's "errors" member.
type InvalidEvent struct {
	// Index is the event's position in the batch (0 for a single event).
	Index int `json:"index"`
	// ID and Type are the event's, when they could be read.
	ID   string `json:"id,omitempty"`
	Type string `json:"type,omitempty"`
	// Reason says why the event was refused.
	Reason string `json:"reason"`
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type     string         `json:"type"`
	Title    string         `json:"title"`
	Status   int            `json:"status"`
	Detail   string         `json:"detail,omitempty"`
	Instance string         `json:"instance,omitempty"`
	Errors   []InvalidEvent `json:"errors,omitempty"`
}

func (s *Server) problem(w http.ResponseWriter, p Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	w.Header().Set("Content-Type", contentTypeProblem)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.problem(w, Problem{Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("the body exceeds %d bytes", s.cfg.MaxBody)})
			return
		}
		s.problem(w, Problem{Status: http.StatusBadRequest, Detail: "cannot read the body"})
		return
	}
	if reason := Verify(s.cfg.Secrets, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, s.cfg.Now(), s.cfg.Window); reason != "" {
		s.metrics.authFailures.WithLabelValues(reason).Inc()
		s.cfg.Logger.Warn().Str("reason", reason).Str("remote", r.RemoteAddr).Msg("bridge: request refused: bad signature")
		s.problem(w, Problem{Status: http.StatusUnauthorized, Detail: "missing, invalid or stale signature (" + reason + ")"})
		return
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		ct = ""
	}
	var raws []json.RawMessage
	switch ct {
	case ContentTypeStructured:
		raws = []json.RawMessage{body}
	case ContentTypeBatch:
		if err := json.Unmarshal(body, &raws); err != nil {
			s.problem(w, Problem{Status: http.StatusBadRequest, Detail: "a batch must be a JSON array of CloudEvents"})
			return
		}
		if len(raws) == 0 {
			s.problem(w, Problem{Status: http.StatusBadRequest, Detail: "the batch is empty"})
			return
		}
		if len(raws) > s.cfg.MaxBatch {
			s.problem(w, Problem{Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("the batch has %d events; at most %d are accepted", len(raws), s.cfg.MaxBatch)})
			return
		}
	default:
		s.problem(w, Problem{Status: http.StatusUnsupportedMediaType,
			Detail: "Content-Type must be " + ContentTypeStructured + " or " + ContentTypeBatch + " (binary mode is not supported)"})
		return
	}

	recs, invalid := s.records(raws)
	if len(invalid) > 0 {
		s.metrics.invalid.Add(float64(len(invalid)))
		s.problem(w, Problem{
			Type:   "https://github.com/shopstream/shopstream#invalid-events",
			Title:  "Invalid events",
			Status: http.StatusBadRequest,
			Detail: fmt.Sprintf("%d of %d events are invalid; none was produced", len(invalid), len(raws)),
			Errors: invalid,
		})
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ProduceTimeout)
	defer cancel()
	start := time.Now()
	err = s.cfg.Producer.ProduceAll(ctx, recs)
	s.metrics.produceSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		s.cfg.Logger.Error().Err(err).Int("events", len(recs)).Msg("bridge: Kafka did not commit the events; answering 503")
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter.Round(time.Second)/time.Second)))
		s.problem(w, Problem{Status: http.StatusServiceUnavailable, Detail: "Kafka did not commit the events; retry the request"})
		return
	}
	for _, rec := range recs {
		s.metrics.events.WithLabelValues(headerOf(rec, "ce_type")).Inc()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"accepted":%d}`+"\n", len(recs))
}

// records validates every event and builds its record; it returns the
// invalid ones instead when there are any.
func (s *Server) records(raws []json.RawMessage) ([]*kgo.Record, []InvalidEvent) {
	var (
		recs    []*kgo.Record
		invalid []InvalidEvent
	)
	for i, raw := range raws {
		var head struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		}
		_ = json.Unmarshal(raw, &head) // Decode reports what is wrong
		d, ok := topics.DomainOf(head.Type)
		if !ok {
			reason := "missing type"
			if head.Type != "" {
				reason = fmt.Sprintf("unknown type %q", clip(head.Type))
			}
			invalid = append(invalid, InvalidEvent{Index: i, ID: clip(head.ID), Reason: reason})
			continue
		}
		ev, err := topics.Decode(d, nil, raw)
		if err != nil {
			invalid = append(invalid, InvalidEvent{Index: i, ID: clip(head.ID), Type: head.Type, Reason: err.Error()})
			continue
		}
		topic := s.cfg.Topics[d]
		if topic == "" {
			topic = topics.DefaultTopic(d)
		}
		rec := &kgo.Record{
			Topic:   topic,
			Key:     []byte(ev.Subject),
			Value:   []byte(raw),
			Headers: []kgo.RecordHeader{{Key: "ce_type", Value: []byte(ev.Type)}, {Key: "ce_id", Value: []byte(ev.ID)}},
		}
		if n := recordBytes(rec); n > s.cfg.MaxEventBytes {
			invalid = append(invalid, InvalidEvent{Index: i, ID: clip(head.ID), Type: head.Type,
				Reason: fmt.Sprintf("%d bytes as a Kafka record; at most %d are accepted", n, s.cfg.MaxEventBytes)})
			continue
		}
		recs = append(recs, rec)
	}
	return recs, invalid
}

// recordBytes is r's key, value and headers, in bytes.
func recordBytes(r *kgo.Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

func headerOf(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func clip(s string) string {
	if len(s) > 128 {
		return strings.ToValidUTF8(s[:128], "") + "…"
	}
	return s
}
