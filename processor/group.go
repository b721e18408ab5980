package processor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shopstream/shopstream/ordering"
	"github.com/shopstream/shopstream/topics"
)

// How a group's records move (the commit logic, in one place):
//
//   - The poll loop fetches records while fewer than MaxBuffered are
//     outstanding and the group is not paused, and hands each record to its
//     partition's scheduler (ordering.Partition). With BlockRebalanceOnPoll,
//     no rebalance callback can run between a poll and the hand-off, so a
//     record of a partition we no longer own is never scheduled.
//   - A record whose key has no earlier outstanding record is ready; a pool
//     of Concurrency workers takes ready records. When a record finishes
//     (applied, skipped, filtered or acknowledged on its DLQ), the next
//     record of the same key becomes ready.
//   - A partition's commit offset is its scheduler's watermark: the lowest
//     offset not yet finished. Commits happen every CommitInterval, on
//     revocation and on shutdown, all under commitMu, and only for
//     partitions we still own: no offset is ever committed across a revoke.
//   - Revoke: the partition stops starting records, waits (RevokeTimeout)
//     for its in-flight ones, commits its watermark, and is discarded; its
//     queued records are re-read by the next owner from that watermark.
//     Lost (the member was fenced out): nothing new starts, no commit,
//     in-flight work is cancelled, the state is discarded.
//   - A record abandoned because its context ended (shutdown deadline,
//     revoke deadline, partition lost) is never marked finished, so its
//     offset is never committed: it will be read again.
//   - A partition's window (its records from the oldest unfinished one to
//     the newest scheduled, finished ones included) spans at most
//     windowPerBuffered × MaxBuffered offsets. A partition whose window is
//     full — one record retried for minutes while the rest of the
//     partition went on — is held: kgo stops fetching it and its backlog
//     waits, while the other partitions go on, until the window is down to
//     half.
type group struct {
	p   *Processor
	cfg GroupConfig
	id  string
	cl  *kgo.Client
	log zerolog.Logger

	// workCtx is what handlers run under; it ends at the drain deadline.
	workCtx    context.Context
	cancelWork context.CancelFunc

	joined atomic.Bool
	stats  groupCounters
	store  *groupStore

	// commitMu serialises commits with revocations.
	commitMu sync.Mutex

	mu        sync.Mutex
	parts     map[int32]*partState
	ready     taskQueue
	readyCond *sync.Cond    // signalled when ready grows or workers must stop
	idle      int           // workers waiting on readyCond
	stopping  bool          // shutdown: start nothing new
	halting   atomic.Bool   // stopping, readable without mu
	quit      bool          // workers exit
	pending   int           // records fetched and not finished
	running   int           // records being handled
	pausers   int           // workers waiting for the store; > 0 pauses fetching
	changed   chan struct{} // closed on the next state change; nil while nobody waits

	// recordCost is the moving average of a record's handling time in
	// nanoseconds, which sizes the chunks workers take (chunk.go).
	recordCost atomic.Int64
	fence      fenceCache

	// backlogged are the partitions with records in their backlog, in
	// the order they were fetched (see pollLoop).
	backlogged []*partState
	// holdsChanged reports that a partition was held or released (or
	// discarded while held) since the poll loop last told kgo which
	// partitions not to fetch (applyHolds).
	holdsChanged bool
	// pollCancel interrupts the poll loop's wait for a fetch; set while
	// it waits. A change of holds calls it, so that a released backlog
	// does not wait for other partitions' data.
	pollCancel context.CancelFunc
	// loadBuf is the poll goroutine's scratch list of records.
	loadBuf []ordering.Item[*work]

	// Metric handles resolved once, off the per-record path.
	outcomes    map[string]prometheus.Counter
	retried     prometheus.Counter
	duration    prometheus.Observer
	inflight    prometheus.Gauge
	dlqFailures prometheus.Counter
	storeFails  prometheus.Counter
}

type partState struct {
	num       int32
	sched     *ordering.Partition[*work]
	ctx       context.Context
	cancel    context.CancelFunc
	draining  bool        // revoked: start nothing new
	discarded bool        // gone: finishing records change nothing
	halted    atomic.Bool // draining or discarded, readable without mu
	running   int         // records of this partition being handled
	committed int64       // last committed offset, -1 if none
	hw        int64       // high watermark from the last fetch, -1 if unknown
	// backlog holds the records fetched and not yet scheduled, from
	// backlogNext on (see pollLoop).
	backlog     []ordering.Item[*work]
	backlogNext int
	// held: the window is full (windowPerBuffered); the backlog waits and
	// kgo does not fetch the partition until the window is down to half.
	held bool
}

// windowPerBuffered bounds a partition's window at this many times
// MaxBuffered offsets (48 bytes each in the scheduler's ring): 3 MiB per
// partition at the default 2048. MaxBuffered bounds the records not yet
// finished; the window also holds the finished ones behind the oldest
// unfinished record, and would otherwise grow with everything the partition
// processes while one record is retried.
const windowPerBuffered = 32

type task struct {
	part *partState
	w    *work
}

// work is one record and, once decoded, its event. It is decoded once: by
// the coalescing check while it waits, or by the worker that runs it. The
// two never overlap: a record waits under g.mu, then passes to one worker.
type work struct {
	rec     *kgo.Record
	ev      *topics.Event
	err     error
	decoded bool
}

func (w *work) event(d topics.Domain) (*topics.Event, error) {
	if !w.decoded {
		w.ev, w.err = topics.Decode(d, w.rec.Key, w.rec.Value)
		w.decoded = true
	}
	return w.ev, w.err
}

// recycle hands the finished record back to kgo, which returns its
// batch's Records and decompressed bytes to the group's recordPool once
// every record of the batch is recycled. Neither the record nor its event's
// Raw and Data may be read afterwards: the pool lends them to a later batch.
// Workers run it once per finished record, after settling it and with g.mu
// released (recycleAll): the batch's last record zeroes the batch's bytes.
func (w *work) recycle() {
	w.rec.Recycle()
	w.rec, w.ev = nil, nil
}

func newGroup(p *Processor, cfg GroupConfig) (*group, error) {
	g := &group{
		p:     p,
		cfg:   cfg,
		id:    cfg.GroupID(),
		log:   p.opts.Logger.With().Str("group", cfg.GroupID()).Str("topic", cfg.Topic).Logger(),
		parts: make(map[int32]*partState),
	}
	g.readyCond = sync.NewCond(&g.mu)
	g.recordCost.Store(initialRecordCost)
	g.bindMetrics()
	g.store = newGroupStore(g.id, cfg.Idempotency, p.opts.Versions, p.opts.IDs)
	g.workCtx, g.cancelWork = context.WithCancel(context.Background())
	// Defaults a deployment may override come first, then the caller's
	// options, then the ones the commit logic depends on, which kgo's
	// last-wins rule keeps from being overridden.
	opts := []kgo.Opt{
		kgo.SeedBrokers(p.opts.Brokers...),
		kgo.ClientID("shopstream-" + cfg.Name),
		// A group with no committed offset starts at the earliest record:
		// events produced before the first deployment are not skipped.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordDeliveryTimeout(p.opts.DLQTimeout),
		// kgo's fetch limits count compressed bytes, and JSON events
		// compress ~5×: the 50 MiB default buffers ~100k records per fetch.
		// Small fetches keep memory bounded by MaxBuffered, not by lag
		// (make bench S6), at no measured cost in throughput: the group
		// reads one fetch ahead (pollLoop), so a fetch's round trip
		// overlaps the processing of the one before. 256 KiB: peak RSS
		// draining 1M records ~38 MiB at GOGC=100, 1.08-1.18× the 100k
		// drain's (512 KiB: 49-61 MiB, 1.16-1.37×; 1 MiB: 70 MiB); ~85
		// MiB at shopstream's GOGC=400, ~1.0× (1 MiB: 150 MiB, 1.6×).
		kgo.FetchMaxBytes(256 << 10),
		kgo.FetchMaxPartitionBytes(64 << 10),
	}
	opts = append(opts, p.opts.ClientOpts...)
	if p.opts.GroupClientOpts != nil {
		opts = append(opts, p.opts.GroupClientOpts(cfg.Name)...)
	}
	opts = append(opts,
		kgo.ConsumerGroup(g.id),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// Records of aborted transactions (a bridge request Kafka failed
		// part-way) are never applied, and open ones are not read ahead of
		// their commit.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers come through, so the commit watermark moves
		// past them (dispatch): otherwise a partition whose last entry is a
		// marker would show a lag of 1 forever.
		kgo.KeepControlRecords(),
		kgo.OnPartitionsAssigned(g.onAssigned),
		kgo.OnPartitionsRevoked(g.onRevoked),
		kgo.OnPartitionsLost(g.onLost),
		kgo.WithPools(new(recordPool)),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("group %s: kafka client: %w", g.id, err)
	}
	if pools, _ := cl.OptValue(kgo.WithPools).([]kgo.Pool); len(pools) > 1 {
		// kgo takes each kind of buffer from the first pool that
		// offers it: the caller's would replace the group's own, and
		// its other kinds (decompressed bytes, which events share)
		// would be reused under the events' feet.
		cl.Close()
		return nil, fmt.Errorf("group %s: client options: kgo.WithPools is not supported (the group pools kgo's record slices itself, and events share the decompressed bytes); remove it", g.id)
	}
	g.cl = cl
	return g, nil
}

// run owns the group's goroutines: the workers, the commit loop and the
// poll loop (this goroutine). It returns after the graceful shutdown.
func (g *group) run(ctx context.Context) error {
	// The store batchers outlive the workers, which wait on them.
	storeCtx, stopStore := context.WithCancel(context.Background())
	var store sync.WaitGroup
	for _, loop := range g.store.loops() {
		store.Add(1)
		go func() {
			defer store.Done()
			loop(storeCtx)
		}()
	}
	defer func() {
		stopStore()
		store.Wait()
	}()
	var workers sync.WaitGroup
	for range g.cfg.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			g.worker()
		}()
	}
	loopCtx, stopLoop := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		g.commitLoop(loopCtx)
	}()

	g.log.Info().Int("concurrency", g.cfg.Concurrency).Str("idempotency", string(g.cfg.Idempotency)).Msg("group started")
	g.pollLoop(ctx)
	g.drain()

	stopLoop()
	<-loopDone
	g.mu.Lock()
	g.quit = true
	g.readyCond.Broadcast()
	g.mu.Unlock()
	g.cancelWork()
	stopped := make(chan struct{})
	go func() {
		workers.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(cancelGrace):
		// A handler that ignores its cancelled context: its record is
		// uncommitted and will be read again; do not hold the exit for it.
		g.log.Error().Msg("a handler ignored cancellation; leaving without it")
	}
	// Leaving the group revokes every partition; onRevoked finds nothing
	// in flight and nothing new to commit.
	g.cl.CloseAllowingRebalance()
	g.log.Info().Msg("group left")
	return nil
}

// pollLoop feeds the partitions' schedules, MaxBuffered records at most,
// from a read-ahead backlog of one fetch: a poll takes everything kgo has
// buffered, so that kgo fetches the next response while this one is being
// processed (kgo buffers one fetch per broker and fetches again only once
// it is taken whole). Taking fetches piecemeal, as room freed up, left the
// workers idle while each next fetch was requested, read and parsed (make
// bench S1: a third of the time). The backlog lives in the partitions'
// state, so a revoked or lost partition drops it with the rest.
func (g *group) pollLoop(ctx context.Context) {
	for {
		room, ok := g.waitForRoom(ctx)
		if !ok {
			return
		}
		g.mu.Lock()
		scheduled := g.scheduleBacklogLocked(room)
		held, changed := g.holdsLocked()
		g.mu.Unlock()
		if changed {
			g.applyHolds(held)
		}
		if scheduled {
			continue
		}
		// Nothing left to schedule but held partitions' backlogs: poll.
		pollCtx, cancel := context.WithCancel(ctx)
		g.mu.Lock()
		if g.holdsChanged {
			cancel() // apply them first
		}
		g.pollCancel = cancel
		g.mu.Unlock()
		fetches := g.cl.PollFetches(pollCtx)
		g.mu.Lock()
		g.pollCancel = nil
		g.mu.Unlock()
		interrupted := pollCtx.Err() != nil
		cancel()
		if fetches.IsClientClosed() || ctx.Err() != nil {
			g.cl.AllowRebalance()
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if interrupted && errors.Is(err, context.Canceled) {
				return // a hold changed (see pollCancel)
			}
			g.log.Warn().Err(err).Int32("partition", partition).Msg("fetch error")
		})
		g.load(fetches)
		g.cl.AllowRebalance()
	}
}

// waitForRoom blocks until the group may schedule more records, and
// returns how many.
func (g *group) waitForRoom(ctx context.Context) (int, bool) {
	for {
		g.mu.Lock()
		room := g.cfg.MaxBuffered - g.pending
		paused := g.pausers > 0
		// Wait for a quarter of the buffer to free up (or all of it), so
		// a saturated group polls in batches, not one record at a time.
		if !paused && (room >= max(1, g.cfg.MaxBuffered/4) || g.pending == 0) {
			g.mu.Unlock()
			return room, true
		}
		changed := g.waitChanLocked()
		g.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, false
		case <-changed:
		}
	}
}

// waitChanLocked returns a channel closed on the next state change.
func (g *group) waitChanLocked() chan struct{} {
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	return g.changed
}

// notifyLocked wakes everyone waiting on a change of group state.
func (g *group) notifyLocked() {
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}

// load moves the polled records into their partitions' backlogs. It runs
// on the poll goroutine only. The records are prepared (work allocated,
// ordering key read) before the group mutex is taken.
func (g *group) load(fetches kgo.Fetches) {
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if fp.Topic != g.cfg.Topic {
			return
		}
		items := g.loadBuf[:0]
		for _, r := range fp.Records {
			it := ordering.Item[*work]{Offset: r.Offset, Epoch: r.LeaderEpoch}
			if !r.Attrs.IsControl() {
				// One allocation per record, not a slab per fetch: a
				// record that waits long (behind a hot key) must not
				// keep its whole fetch's records and events alive
				// (make bench S6).
				it.Key, it.Value = orderingKey(r), &work{rec: r}
			} else {
				r.Recycle() // a transaction marker: no work, nothing reads it again
			}
			items = append(items, it)
		}
		g.mu.Lock()
		ps := g.parts[fp.Partition]
		if ps == nil {
			ps = g.newPartLocked(fp.Partition)
		}
		if next, ok := ps.sched.Next(); ok && len(items) > 0 && items[0].Offset < next {
			// kgo rewound the cursor without a revoke (data-loss
			// detection, offset reset): start a fresh schedule; what
			// still runs of the old one finishes but changes nothing.
			// (A poll finds every backlog taken: nothing is dropped.)
			g.log.Warn().Int32("partition", ps.num).Int64("offset", items[0].Offset).Int64("expected", next).
				Msg("fetch position moved back; rescheduling the partition")
			g.discardLocked(ps)
			ps = g.newPartLocked(fp.Partition)
		}
		if fp.HighWatermark >= 0 {
			ps.hw = fp.HighWatermark
		}
		if len(items) > 0 {
			if len(ps.backlog) == 0 {
				g.backlogged = append(g.backlogged, ps)
			}
			ps.backlog = append(ps.backlog, items...)
		}
		g.mu.Unlock()
		clear(items) // keep no record alive through the buffer
		g.loadBuf = items[:0]
	})
}

// scheduleBacklogLocked moves up to room records from the backlogs into
// their partitions' schedules, partition by partition in fetch order, each
// as far as its window allows (a partition whose window is full is held and
// skipped), and reports whether it scheduled any.
func (g *group) scheduleBacklogLocked(room int) bool {
	took := false
	limit := g.windowLimit()
	kept := g.backlogged[:0]
	for _, ps := range g.backlogged {
		live := !ps.draining && !ps.discarded
		if n := min(room, len(ps.backlog)-ps.backlogNext, limit-ps.sched.Span()); n > 0 && live {
			items := ps.backlog[ps.backlogNext : ps.backlogNext+n]
			g.scheduleLocked(ps, items)
			clear(items)
			ps.backlogNext += n
			room -= n
			took = true
		}
		if ps.backlogNext < len(ps.backlog) && live {
			if !ps.held && ps.sched.Span() >= limit {
				g.holdLocked(ps)
			}
			kept = append(kept, ps)
			continue
		}
		// Taken, or dropped with its revoked partition (read again by
		// the next owner: never scheduled, never committed).
		clear(ps.backlog[ps.backlogNext:])
		ps.backlog, ps.backlogNext = ps.backlog[:0], 0
	}
	clear(g.backlogged[len(kept):])
	g.backlogged = kept
	if len(g.backlogged) == 0 {
		g.backlogged = g.backlogged[:0:0]
	}
	return took
}

// windowLimit is the most offsets a partition's window may span.
func (g *group) windowLimit() int { return windowPerBuffered * g.cfg.MaxBuffered }

// holdLocked holds ps, whose window is full: its backlog waits and, once
// the poll loop has told kgo (applyHolds), it is not fetched.
func (g *group) holdLocked(ps *partState) {
	ps.held = true
	g.holdsChanged = true
	ev := g.log.Warn().Int32("partition", ps.num).Int("window", ps.sched.Span())
	if oldest, ok := ps.sched.Oldest(); ok {
		ev = ev.Int64("oldest_unfinished_offset", oldest.Offset)
	}
	ev.Msg("partition window full: fetching it waits until its oldest unfinished record finishes; the other partitions go on")
}

// releaseLocked releases ps from its hold once its window is down to half,
// and wakes the poll loop to schedule its backlog and resume fetching it.
func (g *group) releaseLocked(ps *partState) {
	if !ps.held || ps.sched.Span() > g.windowLimit()/2 {
		return
	}
	ps.held = false
	g.holdsChangedLocked()
	g.log.Info().Int32("partition", ps.num).Msg("partition window released: fetching it again")
}

// holdsChangedLocked records a change of holds and interrupts the poll
// loop's wait for a fetch, so that it applies the change.
func (g *group) holdsChangedLocked() {
	g.holdsChanged = true
	if g.pollCancel != nil {
		g.pollCancel()
	}
}

// holdsLocked returns the held partitions, and whether the holds changed
// since the last call (which the poll loop then applies).
func (g *group) holdsLocked() (held []int32, changed bool) {
	if !g.holdsChanged {
		return nil, false
	}
	g.holdsChanged = false
	for _, ps := range g.parts {
		if ps.held {
			held = append(held, ps.num)
		}
	}
	return held, true
}

// applyHolds tells kgo not to fetch the held partitions, and to fetch again
// any other it was told not to. kgo keeps a partition paused across
// rebalances, so one revoked or lost while held is resumed here too. It runs
// on the poll goroutine, outside g.mu.
func (g *group) applyHolds(held []int32) {
	var resume []int32
	for _, n := range g.cl.PauseFetchPartitions(nil)[g.cfg.Topic] {
		if !slices.Contains(held, n) {
			resume = append(resume, n)
		}
	}
	if len(resume) > 0 {
		g.cl.ResumeFetchPartitions(map[string][]int32{g.cfg.Topic: resume})
	}
	if len(held) > 0 {
		g.cl.PauseFetchPartitions(map[string][]int32{g.cfg.Topic: held})
	}
}

// scheduleLocked adds records of ps (items, in offset order; a nil Value
// is a transaction marker) to its schedule and wakes workers for those that
// may start.
func (g *group) scheduleLocked(ps *partState, items []ordering.Item[*work]) {
	released := 0
	for _, it := range items {
		if it.Value == nil {
			ps.sched.AddDone(it.Offset, it.Epoch)
			continue
		}
		g.pending++
		if ps.sched.Add(it) {
			g.ready.push(task{part: ps, w: it.Value})
			released++
		}
	}
	g.wakeLocked(released + max(g.chunkSizeLocked(), 1))
}

// bindMetrics resolves the group's metric handles once, off the
// per-record path, and exports the gauges from the start, so dashboards and
// alerts see 0 rather than no series.
func (g *group) bindMetrics() {
	g.p.metrics.paused.WithLabelValues(g.id).Set(0)
	g.p.metrics.lagSeconds.WithLabelValues(g.id, g.cfg.Topic).Set(0)
	g.inflight = g.p.metrics.inflight.WithLabelValues(g.id)
	g.inflight.Set(0)
	g.outcomes = make(map[string]prometheus.Counter)
	for _, o := range []string{OutcomeApplied, OutcomeSkippedStale, OutcomeSkippedDuplicate, OutcomeDeadLettered, OutcomeFiltered} {
		g.outcomes[o] = g.p.metrics.records.WithLabelValues(g.id, g.cfg.Topic, o)
	}
	g.retried = g.p.metrics.retries.WithLabelValues(g.id, g.cfg.Topic)
	g.duration = g.p.metrics.duration.WithLabelValues(g.id, g.cfg.Topic)
	g.dlqFailures = g.p.metrics.dlqFailures.WithLabelValues(g.id, g.cfg.Topic)
	g.storeFails = g.p.metrics.storeFailures.WithLabelValues(g.id)
}

func (g *group) newPartLocked(num int32) *partState {
	ps := &partState{num: num, sched: ordering.NewPartition[*work](), committed: -1, hw: -1}
	ps.ctx, ps.cancel = context.WithCancel(g.workCtx)
	g.parts[num] = ps
	return ps
}

// orderingKey is the key records are serialised by: the record key, which
// the contract makes equal to the event's subject. A producer that broke the
// contract and sent no key still gets per-subject order inside the
// partition: the subject is read from the value instead.
//
// The scheduler sees the key's hash (ordering.HashKey), taken here on the
// poll goroutine, outside the group mutex.
func orderingKey(r *kgo.Record) uint64 {
	if len(r.Key) > 0 {
		return ordering.HashKey(unsafe.String(unsafe.SliceData(r.Key), len(r.Key)))
	}
	var env struct {
		Subject string `json:"subject"`
	}
	if json.Unmarshal(r.Value, &env) != nil {
		return ordering.HashKey("") // poison: it goes to the DLQ, in order with other keyless records
	}
	return ordering.HashKey(env.Subject)
}

// supersededLocked reports whether next, about to run, can be skipped
// because a later waiting record of its key is an absolute update of the
// same thing (GroupConfig.Coalesce) with a higher version, which this group
// will apply: a version above every record of the subject waiting before it
// too, whatever their class, or the fence would skip it after them. Only
// fenced groups coalesce: there a lower version would be skipped as stale
// once the higher one is applied anyway.
func (g *group) supersededLocked(ps *partState, next ordering.Item[*work]) bool {
	if g.cfg.Coalesce == nil || g.cfg.Idempotency != IdempotencyFence || !g.mine(next.Value.rec) {
		return false
	}
	var (
		class string
		ev    *topics.Event
		// between is the highest version of the subject waiting
		// between next and the record looked at: a later update of the
		// class is applied only if it is above it (else the fence skips
		// it, and skipping next would lose next's update).
		between int64
	)
	for it := range ps.sched.Behind(next.Offset) {
		if ev == nil {
			// Decoded only once something waits behind it.
			var err error
			if ev, err = next.Value.event(g.cfg.Domain); err != nil {
				return false
			}
			var ok bool
			if class, ok = g.cfg.Coalesce(ev); !ok {
				return false
			}
		}
		if !g.mine(it.Value.rec) {
			continue // filtered by this group, so it applies nothing
		}
		later, err := it.Value.event(g.cfg.Domain)
		if err != nil || later.Subject != ev.Subject {
			continue // (another subject only if the key hashes collide)
		}
		if later.Version > ev.Version && later.Version > between {
			if c, ok := g.cfg.Coalesce(later); ok && c == class {
				return true
			}
		}
		between = max(between, later.Version)
	}
	return false
}

// waitIdle waits until no record of parts is running (of the whole group
// when all is set), or timeout passes; it reports whether they became idle.
func (g *group) waitIdle(all bool, parts []*partState, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		g.mu.Lock()
		busy := 0
		if all {
			busy = g.running
		}
		for _, ps := range parts {
			busy += ps.running
		}
		if busy == 0 {
			g.mu.Unlock()
			return true
		}
		changed := g.waitChanLocked()
		g.mu.Unlock()
		select {
		case <-changed:
		case <-timer.C:
			return false
		}
	}
}

// cancelGrace bounds the wait for cancelled records to return.
const cancelGrace = 5 * time.Second

// drain stops fetching and starting records, waits for in-flight ones up to
// DrainTimeout (then cancels them: they stay uncommitted) and commits what
// finished.
func (g *group) drain() {
	g.cl.PauseFetchTopics(g.cfg.Topic)
	g.mu.Lock()
	g.stopping = true
	g.halting.Store(true)
	inflight := g.running
	g.mu.Unlock()
	g.log.Info().Int("inflight", inflight).Dur("deadline", g.p.opts.DrainTimeout).Msg("draining")
	if !g.waitIdle(true, nil, g.p.opts.DrainTimeout) {
		g.log.Warn().Msg("drain deadline passed; cancelling in-flight records, they stay uncommitted")
		g.cancelWork()
		g.waitIdle(true, nil, cancelGrace)
	}
	g.commitMu.Lock()
	defer g.commitMu.Unlock()
	g.commit(g.ownedParts())
}

func (g *group) ownedParts() []*partState {
	g.mu.Lock()
	defer g.mu.Unlock()
	parts := make([]*partState, 0, len(g.parts))
	for _, ps := range g.parts {
		if !ps.draining && !ps.discarded {
			parts = append(parts, ps)
		}
	}
	return parts
}

func (g *group) partsOf(assignment map[string][]int32) []*partState {
	g.mu.Lock()
	defer g.mu.Unlock()
	var parts []*partState
	for _, n := range assignment[g.cfg.Topic] {
		if ps := g.parts[n]; ps != nil {
			parts = append(parts, ps)
		}
	}
	return parts
}

func (g *group) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	g.joined.Store(true)
	g.log.Info().Ints32("partitions", assigned[g.cfg.Topic]).Msg("partitions assigned")
}

func (g *group) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	parts := g.partsOf(revoked)
	if len(parts) == 0 {
		return // nothing fetched from them: nothing runs, nothing to commit
	}
	g.halt(parts)
	if !g.waitIdle(false, parts, g.p.opts.RevokeTimeout) {
		g.log.Warn().Msg("revoke deadline passed; cancelling in-flight records of revoked partitions")
		g.cancelAndWait(parts)
	}
	g.commitMu.Lock()
	defer g.commitMu.Unlock()
	g.commit(parts)
	g.discard(parts)
	g.log.Info().Ints32("partitions", revoked[g.cfg.Topic]).Msg("partitions revoked")
}

func (g *group) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	g.joined.Store(false)
	parts := g.partsOf(lost)
	// Start nothing more of them (and commit nothing: another member may
	// own them already) while their running records are cancelled.
	g.halt(parts)
	g.cancelAndWait(parts)
	g.commitMu.Lock()
	defer g.commitMu.Unlock()
	g.discard(parts)
	g.log.Warn().Ints32("partitions", lost[g.cfg.Topic]).Msg("partitions lost; uncommitted work will be redelivered")
}

// halt marks parts draining: workers start none of their records, and the
// commit loop skips them.
func (g *group) halt(parts []*partState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, ps := range parts {
		ps.draining = true
		ps.halted.Store(true)
	}
}

// cancelAndWait cancels the running records of parts and waits, briefly,
// for their handlers to return, so that a later owner of a key does not
// overlap with a call still on the wire.
func (g *group) cancelAndWait(parts []*partState) {
	for _, ps := range parts {
		ps.cancel()
	}
	if !g.waitIdle(false, parts, cancelGrace) {
		g.log.Error().Msg("a handler ignored cancellation; its partition is released anyway")
	}
}

func (g *group) discard(parts []*partState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, ps := range parts {
		g.discardLocked(ps)
	}
	g.notifyLocked()
	// Entries learnt under these assignments never match again; drop them
	// all (a rebalance is rare) rather than keep the discarded state alive.
	g.fence.mu.Lock()
	g.fence.m = nil
	g.fence.mu.Unlock()
}

func (g *group) discardLocked(ps *partState) {
	if ps.held {
		ps.held = false
		g.holdsChangedLocked() // resume fetching it (applyHolds)
	}
	ps.discarded = true
	ps.halted.Store(true)
	ps.cancel()
	g.pending -= ps.sched.Outstanding()
	clear(ps.backlog) // never scheduled: read again by the next owner
	ps.backlog, ps.backlogNext = nil, 0
	if g.parts[ps.num] == ps {
		delete(g.parts, ps.num)
	}
	g.p.metrics.lag.DeleteLabelValues(g.id, g.cfg.Topic, strconv.Itoa(int(ps.num)))
}

// commit synchronously commits the watermarks of parts that moved since
// their last commit. The caller holds commitMu.
func (g *group) commit(parts []*partState) {
	offsets := make(map[int32]kgo.EpochOffset)
	g.mu.Lock()
	for _, ps := range parts {
		if off, epoch, ok := ps.sched.Watermark(); ok && off > ps.committed {
			offsets[ps.num] = kgo.EpochOffset{Epoch: epoch, Offset: off}
		}
	}
	g.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cerr error
	g.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{g.cfg.Topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				clear(offsets)
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
						cerr = fmt.Errorf("partition %d: %w", p.Partition, err)
						delete(offsets, p.Partition)
					}
				}
			}
		})
	if cerr != nil {
		g.p.metrics.commitFailures.WithLabelValues(g.id).Inc()
		g.log.Warn().Err(cerr).Msg("commit failed; will retry")
	}
	g.mu.Lock()
	for _, ps := range parts {
		if eo, ok := offsets[ps.num]; ok {
			ps.committed = eo.Offset
		}
	}
	g.mu.Unlock()
}

// commitLoop commits finished offsets every CommitInterval and refreshes
// the lag and membership gauges.
func (g *group) commitLoop(ctx context.Context) {
	tick := time.NewTicker(g.p.opts.CommitInterval)
	defer tick.Stop()
	var lastDescribe time.Time
	watch := newStoreWatch(g) // storereset.go
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		watch.check(ctx)
		g.commitMu.Lock()
		g.commit(g.ownedParts())
		g.commitMu.Unlock()
		g.updateLag()
		if time.Since(lastDescribe) >= 15*time.Second {
			lastDescribe = time.Now()
			g.updateMembers(ctx)
		}
	}
}

func (g *group) updateLag() {
	g.mu.Lock()
	defer g.mu.Unlock()
	var oldest time.Time
	for _, ps := range g.parts {
		pos := int64(-1)
		if it, ok := ps.sched.Oldest(); ok {
			pos = it.Offset
			if oldest.IsZero() || it.Value.rec.Timestamp.Before(oldest) {
				oldest = it.Value.rec.Timestamp
			}
		} else if off, _, ok := ps.sched.Watermark(); ok {
			pos = off
		}
		if pos >= 0 && ps.hw >= 0 {
			g.p.metrics.lag.WithLabelValues(g.id, g.cfg.Topic, strconv.Itoa(int(ps.num))).Set(float64(max(ps.hw-pos, 0)))
		}
	}
	age := 0.0
	if !oldest.IsZero() {
		age = max(time.Since(oldest).Seconds(), 0)
	}
	g.p.metrics.lagSeconds.WithLabelValues(g.id, g.cfg.Topic).Set(age)
}

func (g *group) updateMembers(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	described, err := kadm.NewClient(g.cl).DescribeGroups(ctx, g.id)
	if err != nil {
		return
	}
	if d, ok := described[g.id]; ok && d.Err == nil {
		g.p.metrics.members.WithLabelValues(g.id).Set(float64(len(d.Members)))
	}
}
