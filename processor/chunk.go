package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shopstream/shopstream/topics"
)

// Workers take ready records in chunks: one lock round trip settles the
// previous chunk (marks its records finished, releases the next record of
// each key) and takes the next one, and one store call checks, and one
// advances, the fence or dedupe state of a whole chunk. A chunk holds only
// records that may run now — at most one per key — so chunking never
// changes the per-key order; it changes how often workers meet on the group
// mutex and on Redis.
//
// The chunk size adapts to the time the handler takes per record: chunks
// aim at chunkTarget of handler time, so a fast sink gets chunks of up to
// maxChunk records (the lock and the store round trips are shared by all of
// them) and a slow one chunks of one (a record never waits behind another's
// sink call). Store round trips do not count: chunking is what amortises
// them. A record whose handler fails with a retryable error ends its chunk:
// the records after it go back to the ready queue for other workers, and
// the worker retries it alone, so backoff never holds up other keys.
const (
	maxChunk          = 128
	chunkTarget       = 200 * time.Microsecond
	initialRecordCost = int64(time.Millisecond)
)

// result is what became of one record of a chunk.
type result uint8

const (
	// abandoned: not finished (its partition was revoked or lost, or the
	// group is shutting down); it stays uncommitted and is read again.
	abandoned result = iota
	finished         // applied, skipped, filtered or dead-lettered
	returned         // not started: back to the ready queue
	retrying         // failed once; the worker retries it alone
)

// retry is a record a worker goes on with alone: one whose first attempt
// failed with a retryable error, or (dl set) one whose dead letter Kafka
// did not acknowledge at the first attempt.
type retry struct {
	t     task
	ev    *topics.Event
	err   error
	spent time.Duration
	dl    *deadLetter
}

// worker runs chunks until the group quits.
func (g *group) worker() {
	var (
		chunk []task
		res   []result
		held  *retry
		buf   chunkBuf
		spent []*work // finished records, recycled once g.mu is released
	)
	for {
		g.mu.Lock()
		var released int
		released, spent = g.settleLocked(chunk, res, spent)
		clear(chunk) // keep no finished record alive through the buffer
		chunk, res = chunk[:0], res[:0]
		if held != nil {
			// This worker retries alone: others take what was released.
			g.wakeLocked(released + max(g.chunkSizeLocked(), 1))
		} else {
			// This worker takes a chunk itself.
			g.wakeLocked(released)
		}
		if held != nil {
			// Still counted as running: drain and revoke wait for it.
			g.mu.Unlock()
			spent = recycleAll(spent)
			r := held
			held = nil
			chunk = append(chunk, r.t)
			res = append(res, g.retryRecord(r))
			continue
		}
		if len(spent) > 0 && (g.ready.len() == 0 || g.quit) {
			// About to wait: recycle first, off the mutex.
			g.mu.Unlock()
			spent = recycleAll(spent)
			g.mu.Lock()
		}
		for g.ready.len() == 0 && !g.quit {
			g.idle++
			g.readyCond.Wait()
			g.idle--
		}
		if g.quit {
			g.mu.Unlock()
			return
		}
		chunk = g.takeLocked(chunk)
		g.mu.Unlock()
		spent = recycleAll(spent)
		if len(chunk) == 0 {
			continue
		}
		res = append(res, make([]result, len(chunk))...)
		g.inflight.Add(float64(len(chunk)))
		held = g.runChunk(chunk, res, &buf)
		clear(buf.evs) // keep no event (or cache entry) alive through the buffers
		clear(buf.entries)
		g.inflight.Sub(float64(len(chunk)))
	}
}

// chunkSizeLocked is how many ready records a worker takes at once.
func (g *group) chunkSizeLocked() int {
	k := int(int64(chunkTarget) / max(g.recordCost.Load(), 1))
	return min(max(k, 1), maxChunk, g.ready.len())
}

// observeCost folds a chunk's handler time per call into the group's
// estimate (an exponential moving average; concurrent updates may drop one,
// which only slows the average down).
func (g *group) observeCost(n int, d time.Duration) {
	if n == 0 {
		return
	}
	per := int64(d) / int64(n)
	old := g.recordCost.Load()
	g.recordCost.Store(old + (per-old)/8)
}

// takeLocked moves up to one chunk of ready records into chunk, dropping
// those that must not start (their partition is being revoked or is gone,
// or the group is shutting down: they stay unfinished and are read again).
func (g *group) takeLocked(chunk []task) []task {
	k := g.chunkSizeLocked()
	for g.ready.len() > 0 && len(chunk) < k {
		t := g.ready.pop()
		if t.part.draining || t.part.discarded || g.stopping {
			continue
		}
		t.part.running++
		g.running++
		chunk = append(chunk, t)
	}
	return chunk
}

// settleLocked records what became of a chunk: finished records are marked
// done in their partition's schedule (releasing the next record of their
// key, or skipping it when a later version supersedes it), records not
// started go back to the front of the ready queue, and a retrying record
// stays running with its worker. It returns how many records it made ready.
func (g *group) settleLocked(chunk []task, res []result, spent []*work) (int, []*work) {
	if len(chunk) == 0 {
		return 0, spent
	}
	var back []task
	released := 0
	for i, t := range chunk {
		switch res[i] {
		case retrying:
			continue
		case returned:
			back = append(back, t)
		}
		t.part.running--
		g.running--
		if res[i] != finished || t.part.discarded {
			continue
		}
		g.pending--
		next, ok := t.part.sched.Done(t.w.rec.Offset)
		spent = append(spent, t.w)
		g.releaseLocked(t.part)
		for ok && g.supersededLocked(t.part, next) {
			// A later absolute update of the same thing waits behind
			// it: applying this one would only be overwritten.
			g.pending--
			g.count(OutcomeSkippedStale)
			spent = append(spent, next.Value)
			next, ok = t.part.sched.Done(next.Offset)
		}
		if ok {
			g.ready.push(task{part: t.part, w: next.Value})
			released++
		}
	}
	if len(back) > 0 {
		g.ready.pushFront(back)
		released += len(back)
	}
	g.notifyLocked()
	return released, spent
}

// recycleAll recycles the finished records of spent (work.recycle) and
// returns spent emptied. Workers call it with g.mu released: the last
// record of a batch hands the batch's buffers back to the pool, zeroing its
// decompressed bytes first.
func recycleAll(spent []*work) []*work {
	for i, w := range spent {
		w.recycle()
		spent[i] = nil
	}
	return spent[:0]
}

// wakeLocked wakes enough idle workers for n newly ready records, counting
// on the caller to take one chunk itself; a caller that takes none (dispatch,
// a worker about to retry) passes n plus a chunk size.
func (g *group) wakeLocked(n int) {
	k := max(g.chunkSizeLocked(), 1)
	for w := min((n-1)/k, g.idle); w > 0; w-- {
		g.readyCond.Signal()
	}
}

// chunkBuf holds a worker's scratch slices, reused from chunk to chunk.
type chunkBuf struct {
	evs      []*topics.Event
	subjects []string
	versions []int64
	idx      []int
	// entries are the fence cache entries of the chunk's records (by
	// chunk position), so that advancing one needs no second lookup.
	entries []*fenceEntry
}

// halted reports whether t must not start: its partition is being revoked
// or is gone, or the group is shutting down.
func (g *group) halted(t task) bool {
	return t.part.halted.Load() || g.halting.Load()
}

// runChunk takes each record of chunk as far as it goes and writes the
// outcome to res. It returns the record to retry, if one failed with a
// retryable error (the records after it are returned, not started).
func (g *group) runChunk(chunk []task, res []result, b *chunkBuf) *retry {
	b.evs = append(b.evs[:0], make([]*topics.Event, len(chunk))...)
	evs := b.evs
	// Decode and validate; the poison, the versionless and the records
	// redriven for another group finish here.
	var held *retry
	for i, t := range chunk {
		if g.halted(t) {
			continue // abandoned
		}
		if !g.mine(t.w.rec) {
			// A redriven record belongs to the group that failed it.
			g.count(OutcomeFiltered)
			res[i] = finished
			continue
		}
		ev, err := t.w.event(g.cfg.Domain)
		if err != nil {
			res[i] = g.deadLetterInChunk(t, err, topics.ErrorClassPoison, 0, &held)
			continue
		}
		if g.cfg.Idempotency == IdempotencyFence && ev.Version < 1 {
			err := fmt.Errorf("event %s has no version; the version fence needs one", ev.ID)
			res[i] = g.deadLetterInChunk(t, err, topics.ErrorClassPermanent, 0, &held)
			continue
		}
		evs[i] = ev
	}
	if !g.admitChunk(chunk, res, evs, b) {
		return held // the group's work context ended while Redis was down
	}
	// Handle, in chunk order; collect what succeeded for one store call.
	// A retryable failure stops the chunk: the sink is likely failing for
	// the records after it too, so they go back unstarted.
	applied := b.idx[:0]
	stopped := false
	var calls int
	var handling time.Duration
	now := clock()
	for i, t := range chunk {
		ev := evs[i]
		if ev == nil || res[i] != abandoned {
			continue // finished above, or abandoned before it started
		}
		if stopped {
			res[i] = returned
			continue
		}
		if g.halted(t) {
			continue
		}
		ctx := t.part.ctx
		start := now
		end, err := g.call(ctx, ev, start)
		calls++
		handling += end - start
		now = end
		switch {
		case err == nil:
			applied = append(applied, i)
			continue
		case errors.Is(err, ErrFiltered):
			g.count(OutcomeFiltered)
			res[i] = finished
		case ctx.Err() != nil:
			// abandoned
		case IsPermanent(err) || topics.IsPoison(err):
			res[i] = g.deadLetterInChunk(t, err, topics.ErrorClassPermanent, 1, &held)
		case held != nil:
			stopped = true
			res[i] = returned // its attempt is not counted: it starts over
		default:
			stopped = true
			held = &retry{t: t, ev: ev, err: err, spent: end - start}
			res[i] = retrying
			if g.cfg.Idempotency == IdempotencyFence {
				// The retry reads and advances Redis directly: the
				// cached version would fall behind and admit a stale
				// copy of this subject after the retry applied a newer
				// one. The next record of the subject reads Redis.
				g.fence.mu.Lock()
				g.fence.forgetLocked(ev.Subject)
				g.fence.mu.Unlock()
			}
		}
		now = clock() // the next call does not count the work above
	}
	g.observeCost(calls, handling)
	b.idx = applied
	g.appliedChunk(chunk, res, evs, applied, b)
	return held
}

// deadLetterInChunk makes one attempt at t's dead letter. If Kafka does not
// acknowledge it, the worker holds the record to retry it alone after the
// chunk (or, already holding one, returns it to the ready queue), so that a
// failing DLQ never holds up the chunk's other records.
func (g *group) deadLetterInChunk(t task, cause error, class string, attempts int, held **retry) result {
	d := newDeadLetter(t.w.rec, g.id, cause, class, attempts)
	err := g.writeDeadLetter(t.part.ctx, d)
	switch {
	case err == nil:
		g.deadLettered(t.part.num, d)
		return finished
	case t.part.ctx.Err() != nil:
		return abandoned
	}
	g.dlqWriteFailed(t.part.num, d, err)
	if *held != nil {
		return returned
	}
	*held = &retry{t: t, dl: d}
	return retrying
}

// admitChunk checks the fence or dedupe state of every decoded record of
// the chunk that is still undecided, with one store call, and finishes the
// stale and duplicate ones. A subject in the fence cache needs no round
// trip (see fenceCache); the others are read from Redis in one call. It
// reports false if the group's work context ended first (a Redis outage
// outlived the drain deadline): every undecided record is then abandoned.
func (g *group) admitChunk(chunk []task, res []result, evs []*topics.Event, b *chunkBuf) bool {
	if g.cfg.Idempotency == IdempotencyNone {
		return true
	}
	fence := g.cfg.Idempotency == IdempotencyFence
	idx, keys := b.idx[:0], b.subjects[:0]
	if fence {
		b.entries = append(b.entries[:0], make([]*fenceEntry, len(chunk))...)
		g.fence.mu.Lock()
	}
	for i, ev := range evs {
		if ev == nil || res[i] != abandoned {
			continue
		}
		if !fence {
			idx, keys = append(idx, i), append(keys, ev.ID)
			continue
		}
		if !cacheable(chunk[i]) {
			idx, keys = append(idx, i), append(keys, ev.Subject)
			continue
		}
		if e := g.fence.getLocked(ev.Subject, chunk[i].part); e != nil {
			if ev.Version <= e.version {
				g.count(OutcomeSkippedStale)
				res[i] = finished
			}
			b.entries[i] = e
			continue
		}
		idx, keys = append(idx, i), append(keys, ev.Subject)
	}
	if fence {
		g.fence.mu.Unlock()
	}
	b.idx, b.subjects = idx, keys
	if len(idx) == 0 {
		return true
	}
	if !fence {
		var seen []bool
		if g.withStore(g.workCtx, func(ctx context.Context) (err error) {
			seen, err = g.store.seen.doMany(ctx, keys)
			return err
		}) != nil {
			return false
		}
		for j, i := range idx {
			if seen[j] {
				g.count(OutcomeSkippedDuplicate)
				res[i] = finished
			}
		}
		return true
	}
	var stored []int64
	if g.withStore(g.workCtx, func(ctx context.Context) (err error) {
		stored, err = g.store.versions.doMany(ctx, keys)
		return err
	}) != nil {
		return false
	}
	g.fence.mu.Lock()
	for j, i := range idx {
		v := stored[j]
		if cacheable(chunk[i]) {
			b.entries[i] = g.fence.putLocked(keys[j], chunk[i].part, v)
		}
		if evs[i].Version <= v {
			g.count(OutcomeSkippedStale)
			res[i] = finished
		}
	}
	g.fence.mu.Unlock()
	return true
}

// appliedChunk advances the fence (or marks the ids) of the records whose
// handler succeeded, with one store call, and finishes them. If the group's
// work context ends first (Redis down past the drain deadline) they stay
// unfinished: they were applied, and will be applied again after a restart
// (at-least-once), never skipped.
func (g *group) appliedChunk(chunk []task, res []result, evs []*topics.Event, applied []int, b *chunkBuf) {
	if len(applied) == 0 {
		return
	}
	var err error
	switch g.cfg.Idempotency {
	case IdempotencyFence:
		subjects, versions := b.subjects[:0], b.versions[:0]
		for _, i := range applied {
			subjects = append(subjects, evs[i].Subject)
			versions = append(versions, evs[i].Version)
		}
		b.subjects, b.versions = subjects, versions
		reqs := make([]advanceReq, len(applied))
		for j := range applied {
			reqs[j] = advanceReq{subject: subjects[j], version: versions[j]}
		}
		var moved []bool
		err = g.withStore(g.workCtx, func(ctx context.Context) (err error) {
			moved, err = g.store.advance.doMany(ctx, reqs)
			return err
		})
		if err == nil {
			g.fence.mu.Lock()
			for j, i := range applied {
				switch e := b.entries[i]; {
				case !moved[j]:
					// Someone else (an earlier owner still finishing)
					// stored a higher version: ask Redis next time.
					g.fence.forgetLocked(subjects[j])
				case e != nil:
					// The entry admitChunk found or made. If the
					// cache was reset since, it is detached: the
					// next record of the subject reads Redis.
					e.version = versions[j]
				case cacheable(chunk[i]):
					b.entries[i] = g.fence.putLocked(subjects[j], chunk[i].part, versions[j])
				}
			}
			g.fence.mu.Unlock()
		}
	case IdempotencyDedupe:
		ids := b.subjects[:0]
		for _, i := range applied {
			ids = append(ids, evs[i].ID)
		}
		b.subjects = ids
		err = g.withStore(g.workCtx, func(ctx context.Context) error {
			_, err := g.store.mark.doMany(ctx, ids)
			return err
		})
	}
	if err != nil {
		return
	}
	for _, i := range applied {
		res[i] = finished
	}
	g.countN(OutcomeApplied, len(applied))
}

// fenceCacheMax bounds a group's fence cache; when full it starts over.
const fenceCacheMax = 100_000

// fenceCache holds, per subject, the version this process last read from or
// stored in the fence, tied to the partition assignment it was learnt under.
// While a partition stays assigned, this process is the only writer of its
// subjects' versions (an earlier owner still finishing a record is caught by
// Advance reporting no change), so the cached version is the stored one:
// a record of a cached subject is admitted or skipped without a round trip,
// and only Advance, after the sink succeeded, goes to Redis — one store
// call per applied record instead of two (make bench S2). It also keeps a
// Redis that restarted empty from letting a stale version of a cached
// subject through, and is what the group writes back when it detects that
// (storereset.go). An entry learnt under an earlier assignment of the
// partition (a partState since discarded) never matches: another member may
// have advanced the subject since.
//
// Only keyed records use it: a record's key is its subject (Decode checks
// it), so the producer's partitioner puts every record of the subject in the
// same partition, and one member writes it. A keyless record's subject may
// be in several partitions, written by several members: it is checked
// against Redis every time. (A topic given more partitions moves keys too —
// the README says why not to; the cache then trusts a partition's old
// owner until the rebalance that follows discards it.)
//
// One consequence: when Redis becomes unreachable, a record of a cached
// subject can still reach the sink; its Advance then fails and the group
// pauses (withStore), holding that subject's next record until Redis
// answers. A crash in between re-applies that record (at-least-once), as a
// crash between any sink call and its Advance does — never an older one.
type fenceCache struct {
	mu sync.Mutex
	m  map[string]*fenceEntry
}

type fenceEntry struct {
	part    *partState
	version int64
}

// cacheable reports whether t's subject may use the fence cache: whether
// its record has a key (see fenceCache).
func cacheable(t task) bool { return len(t.w.rec.Key) > 0 }

// getLocked returns subject's entry if it was learnt under part, or nil.
func (c *fenceCache) getLocked(subject string, part *partState) *fenceEntry {
	e := c.m[subject]
	if e == nil || e.part != part {
		return nil
	}
	return e
}

// putLocked stores subject's version learnt under part and returns its
// entry, which the caller may update in place while holding mu.
func (c *fenceCache) putLocked(subject string, part *partState, version int64) *fenceEntry {
	if c.m == nil || len(c.m) >= fenceCacheMax {
		c.m = make(map[string]*fenceEntry)
	}
	e := &fenceEntry{part: part, version: version}
	c.m[subject] = e
	return e
}

func (c *fenceCache) forgetLocked(subject string) { delete(c.m, subject) }
