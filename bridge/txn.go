package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrFenced is returned, for good, once another producer has taken over this
// producer's transactional id (a newer incarnation of the same replica, or a
// second replica misconfigured with the same id).
var ErrFenced = errors.New("fenced: another producer took over this transactional id")

// ErrClosed is returned by ProduceAll after Close.
var ErrClosed = errors.New("the producer is closed")

// TxnConfig configures a TxnProducer.
type TxnConfig struct {
	// TransactionalID is the Kafka transactional.id: unique per bridge
	// replica and stable across its restarts. Required.
	//
	// Kafka lets one producer at a time use a transactional id: when a
	// producer starts with an id, the transaction an earlier producer of
	// the same id left open is aborted and that producer is fenced (its
	// writes are refused from then on). So a restarted replica cleans up
	// after its previous incarnation at once (read_committed consumers do
	// not wait for the transaction timeout), and a zombie — an old process
	// still running — cannot commit anything. Two live replicas sharing an
	// id fence each other: ids must be unique.
	TransactionalID string
	// Opts are the client's other options: seed brokers, TLS/SASL, client
	// id — hooks excepted. ProducerOpts, the transactional id and the
	// transaction timeout are added.
	Opts []kgo.Opt
	// Hooks, if set, returns the hooks of each client the producer
	// creates: a new set each time, since a client that replaces a failed
	// one must not share hook state with it (kprom.NewMetrics, say: it
	// registers the client's metrics, and unregisters them when the client
	// closes).
	Hooks func() []kgo.Hook
	// ProduceTimeout bounds a transaction's writes, and separately its
	// commit or abort (default 10s). The transaction timeout Kafka
	// enforces is six times it, at most 15 minutes (the brokers' default
	// transaction.max.timeout.ms): Kafka aborts a transaction left open
	// that long, e.g. by a bridge that died mid-transaction and did not
	// restart with the same id (60s by default).
	ProduceTimeout time.Duration
	// Registerer receives the metrics (default: a new private registry).
	Registerer prometheus.Registerer
	// Logger receives JSON logs.
	Logger zerolog.Logger
}

// TxnProducer is the bridge's Producer: it writes every request's records
// in a Kafka transaction, so that a request is all or nothing even when
// Kafka fails part-way — one partition's leader refuses a write, a topic is
// not writable, the produce timeout passes while some records are already
// acknowledged: the transaction is aborted, and read_committed consumers
// never see an aborted record.
//
// # Group commit
//
// One kgo client, one transactional id, one open transaction at a time (a
// Kafka producer has at most one). A request that arrives while a
// transaction is in flight waits, and every request waiting when that
// transaction ends joins the next one, in arrival order. A transaction's
// fixed cost — registering its partitions with the transaction
// coordinator, then the two-phase commit that writes a marker to every
// partition — is thus paid once per batch of requests instead of once per
// request: under load a transaction carries more requests, and throughput
// grows with the load rather than being capped at one request per
// commit round trip, which is what one transaction per request would do.
// A pool of transactional clients was the alternative; it needs one
// transactional id per client, still pays the full cost per request and
// multiplies connections and producer ids; group commit also keeps a
// replica's records in one producer stream, in order.
//
// The price: the requests of a transaction share its fate. One failed write
// aborts the transaction and every request in it is answered 503 (with
// Retry-After). Events are validated before they are queued, so only Kafka
// failures abort — and those usually hit every request of the moment.
//
// # Timeouts and recovery
//
// A transaction's writes must be acknowledged by the earliest deadline of
// its requests (their context's, at most ProduceTimeout after the
// transaction begins); past it the transaction is aborted. A request whose
// deadline passes while it still waits for a transaction is withdrawn:
// none of its records were produced. The commit and the abort are each
// bounded by ProduceTimeout.
//
// When an abort fails, or a transaction cannot begin, the client may be in
// a state kgo cannot heal: it is closed and a new one is created with the
// same transactional id, whose initialisation aborts whatever the old one
// left open. If Kafka reports that another producer took over the id, the
// TxnProducer stops for good: every request and Ping return ErrFenced, so a
// zombie never fights the replica that replaced it.
//
// A commit whose outcome is unknown (the connection broke while Kafka
// committed) is answered with the error although it may have committed:
// the only case where a failed request's events can be on Kafka. Resending
// is safe: consumers dedupe by event id.
type TxnProducer struct {
	id      string
	opts    []kgo.Opt
	hooks   func() []kgo.Hook
	timeout time.Duration
	log     zerolog.Logger
	m       *txnMetrics

	wake chan struct{} // capacity 1: there are pending requests
	quit chan struct{}
	done chan struct{} // closed when the loop has returned

	mu      sync.Mutex
	pending []*pendingRequest
	closed  bool
	cl      *kgo.Client // replaced by recover; used by the loop and Ping
	fenced  error
}

type pendingRequest struct {
	ctx    context.Context
	recs   []*kgo.Record
	result chan error // capacity 1
}

// NewTxnProducer creates the client and starts the transaction loop.
// Close it after the last ProduceAll.
func NewTxnProducer(cfg TxnConfig) (*TxnProducer, error) {
	if cfg.TransactionalID == "" {
		return nil, errors.New("bridge: a transactional id is required")
	}
	if cfg.ProduceTimeout < 0 {
		return nil, errors.New("bridge: the produce timeout must not be negative")
	}
	if cfg.ProduceTimeout == 0 {
		cfg.ProduceTimeout = 10 * time.Second
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	opts := append(append(append([]kgo.Opt(nil), cfg.Opts...), ProducerOpts(cfg.ProduceTimeout)...),
		kgo.TransactionalID(cfg.TransactionalID), kgo.TransactionTimeout(min(6*cfg.ProduceTimeout, 15*time.Minute)))
	m, err := newTxnMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("bridge: register metrics: %w", err)
	}
	p := &TxnProducer{id: cfg.TransactionalID, opts: opts, hooks: cfg.Hooks, timeout: cfg.ProduceTimeout, log: cfg.Logger, m: m,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	if p.cl, err = p.newClient(); err != nil {
		return nil, fmt.Errorf("bridge: kafka client: %w", err)
	}
	go p.loop()
	return p, nil
}

func (p *TxnProducer) newClient() (*kgo.Client, error) {
	opts := p.opts
	if p.hooks != nil {
		opts = append(opts[:len(opts):len(opts)], kgo.WithHooks(p.hooks()...))
	}
	return kgo.NewClient(opts...)
}

// ProduceAll writes recs in the next transaction and returns once it is
// committed (nil) or aborted (the error). ctx bounds the wait: if it ends
// before the transaction begins, the request is withdrawn and ctx's error
// returned; once the transaction has begun, its outcome is awaited (it is
// bounded by ctx's deadline, see TxnProducer).
func (p *TxnProducer) ProduceAll(ctx context.Context, recs []*kgo.Record) error {
	r := &pendingRequest{ctx: ctx, recs: recs, result: make(chan error, 1)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.pending = append(p.pending, r)
	p.m.queued.Set(float64(len(p.pending)))
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-r.result:
		return err
	case <-ctx.Done():
		if p.withdraw(r) {
			return ctx.Err()
		}
		return <-r.result
	}
}

// withdraw removes r from the queue, reporting whether it was still there.
func (p *TxnProducer) withdraw(r *pendingRequest) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, q := range p.pending {
		if q == r {
			p.pending = append(p.pending[:i], p.pending[i+1:]...)
			p.m.queued.Set(float64(len(p.pending)))
			return true
		}
	}
	return false
}

// Ping checks that Kafka answers a metadata request, and that the producer
// is not fenced: the bridge's /readyz.
func (p *TxnProducer) Ping(ctx context.Context) error {
	p.mu.Lock()
	cl, fenced := p.cl, p.fenced
	p.mu.Unlock()
	if fenced != nil {
		return fenced
	}
	_, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	return err
}

// Close closes the client, stops the loop and fails the requests still
// waiting with ErrClosed. Call it once no request is in flight (after the
// HTTP server's shutdown): a transaction still running is cut short.
// Closing the client first also cuts short a Kafka call the loop may be
// blocked in while Kafka is unreachable.
func (p *TxnProducer) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	cl := p.cl
	p.mu.Unlock()
	close(p.quit)
	cl.Close()
	<-p.done
	for _, r := range p.take() {
		r.result <- ErrClosed
	}
}

func (p *TxnProducer) client() *kgo.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cl
}

func (p *TxnProducer) loop() {
	defer close(p.done)
	if err := p.resetID(p.client()); err != nil {
		p.log.Warn().Err(err).Str("transactional_id", p.id).Msg("bridge: cannot initialise the transactional producer yet")
	}
	for {
		select {
		case <-p.quit:
			return
		case <-p.wake:
		}
		var batch []*pendingRequest
		for _, r := range p.take() {
			if err := r.ctx.Err(); err != nil {
				r.result <- err // withdrawn as it was taken: nothing produced
				continue
			}
			batch = append(batch, r)
		}
		if len(batch) == 0 {
			continue
		}
		err := p.transact(batch)
		outcome := "committed"
		if err != nil {
			outcome = "aborted"
			p.log.Error().Err(err).Int("requests", len(batch)).Str("transactional_id", p.id).Msg("bridge: transaction aborted")
		}
		p.m.transactions.WithLabelValues(outcome).Inc()
		p.m.requestsPerTxn.Observe(float64(len(batch)))
		for _, r := range batch {
			r.result <- err
		}
	}
}

// take empties the queue.
func (p *TxnProducer) take() []*pendingRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	batch := p.pending
	p.pending = nil
	p.m.queued.Set(0)
	return batch
}

// resetID makes cl's producer id usable now. Beginning and ending a
// transaction with nothing produced sends nothing when the id is healthy;
// when there is none yet, or kgo flagged it for reloading after a failure,
// it is initialised — which aborts whatever an earlier client of the
// transactional id, or this one, left open, so that read_committed
// consumers of its partitions do not wait for the transaction timeout. It
// fails when the id is broken beyond kgo's own recovery.
func (p *TxnProducer) resetID(cl *kgo.Client) error {
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	return cl.EndTransaction(ctx, kgo.TryAbort)
}

// transact runs one transaction with every record of batch; nil means it
// committed.
func (p *TxnProducer) transact(batch []*pendingRequest) error {
	p.mu.Lock()
	cl, fenced := p.cl, p.fenced
	p.mu.Unlock()
	if fenced != nil {
		return fenced
	}
	if err := cl.BeginTransaction(); err != nil {
		if fenced := p.recover(fmt.Errorf("begin transaction: %w", err)); fenced != nil {
			return fenced
		}
		cl = p.client()
		if err := cl.BeginTransaction(); err != nil {
			return fmt.Errorf("begin transaction: %w", err)
		}
	}

	deadline := time.Now().Add(p.timeout)
	for _, r := range batch {
		if d, ok := r.ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for _, r := range batch {
		for _, rec := range r.recs {
			wg.Add(1)
			cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
				wg.Done()
			})
		}
	}
	err := cl.Flush(ctx)
	if err == nil {
		// A record refused before it was buffered (e.g. too large) has
		// its promise called asynchronously, possibly after Flush.
		wg.Wait()
		mu.Lock()
		err = firstErr
		mu.Unlock()
	} else {
		err = fmt.Errorf("kafka did not acknowledge every record in time: %w", err)
	}
	if err == nil {
		cctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		err = cl.EndTransaction(cctx, kgo.TryCommit)
		cancel()
		if err == nil {
			return nil
		}
		err = fmt.Errorf("commit: %w", err)
	}
	actx, cancel := context.WithTimeout(context.Background(), p.timeout)
	aerr := cl.AbortBufferedRecords(actx)
	if aerr == nil {
		aerr = cl.EndTransaction(actx, kgo.TryAbort)
	}
	cancel()
	if aerr == nil {
		// kgo may have ended the abort without Kafka (after a commit that
		// failed, it leaves the producer id to reload or broken): settle
		// it now rather than at the next request.
		aerr = p.resetID(cl)
	}
	if aerr != nil {
		if fenced := p.recover(fmt.Errorf("abort: %w", aerr)); fenced != nil {
			err = fmt.Errorf("%w (%w)", fenced, err)
		}
	}
	wg.Wait() // every promise has been called: the client flushed, aborted or was closed
	return err
}

// recover handles a client that failed to begin or abort a transaction: if
// Kafka says another producer took the transactional id over, the producer
// is fenced for good and recover returns the error it answers from then on;
// otherwise the client is replaced by a new one, whose initialisation
// aborts what the old one left open, and recover returns nil.
func (p *TxnProducer) recover(cause error) (fenced error) {
	if errors.Is(cause, kerr.ProducerFenced) {
		fenced = fmt.Errorf("%w: %q (%w)", ErrFenced, p.id, cause)
		p.mu.Lock()
		p.fenced = fenced
		p.mu.Unlock()
		p.m.fenced.Set(1)
		p.log.Error().Err(cause).Str("transactional_id", p.id).
			Msg("bridge: fenced: another bridge uses this transactional id; answering 503 from now on — give every replica its own id, then restart this one")
		return fenced
	}
	p.mu.Lock()
	if p.closed { // Close closed the client
		p.mu.Unlock()
		return nil
	}
	p.log.Warn().Err(cause).Str("transactional_id", p.id).Msg("bridge: replacing the Kafka client")
	p.m.restarts.Inc()
	p.cl.Close() // before the new client: its hooks may register the same metrics
	cl, err := p.newClient()
	if err != nil {
		panic(fmt.Sprintf("bridge: kgo refused the options it accepted in NewTxnProducer: %v", err))
	}
	p.cl = cl
	p.mu.Unlock()
	if err := p.resetID(cl); err != nil {
		p.log.Warn().Err(err).Str("transactional_id", p.id).Msg("bridge: cannot initialise the new Kafka client yet")
	}
	return nil
}
