package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topics"
)

// retryRecord takes a record whose first attempt failed with a retryable
// error (runChunk) to a final state — applied, skipped, filtered or
// acknowledged on its dead-letter topic — or abandons it when its context
// ends first (it then stays uncommitted). Backoff waits follow the group's
// retry policy; the budget counts handler calls and backoff waits, not time
// spent waiting for Redis: an outage must not dead-letter records.
func (g *group) retryRecord(r *retry) result {
	if r.dl != nil {
		if g.retryDeadLetter(r.t.part.ctx, r.t.part.num, r.dl) {
			return finished
		}
		return abandoned
	}
	ctx, partition, rec, ev := r.t.part.ctx, r.t.part.num, r.t.w.rec, r.ev
	err, spent := r.err, r.spent
	for attempt := 1; ; attempt++ {
		wait := g.cfg.Retry.backoff(attempt)
		if ra, ok := RetryAfterOf(err); ok && ra > wait {
			wait = ra
		}
		// wait against what is left of the budget, not spent+wait: a
		// Retry-After of centuries would overflow the sum and pass.
		if attempt >= g.cfg.Retry.MaxAttempts || wait > g.cfg.Retry.MaxElapsed-spent {
			if g.deadLetter(ctx, partition, rec, err, topics.ErrorClassRetriesExhausted, attempt) {
				return finished
			}
			return abandoned
		}
		g.retried.Inc()
		g.stats.retried.Add(1)
		g.log.Debug().Err(err).Str("key", ev.Subject).Int("attempt", attempt).Dur("backoff", wait).Msg("retrying")
		if !sleep(ctx, wait) {
			return abandoned
		}
		spent += wait
		skip, serr := g.admit(ctx, ev)
		if serr != nil {
			return abandoned
		}
		if skip != "" {
			g.count(skip)
			return finished
		}
		start := clock()
		var end time.Duration
		end, err = g.call(ctx, ev, start)
		spent += end - start
		switch {
		case err == nil:
			// Under the group's work context, as a chunk's (appliedChunk):
			// the sink has the event now, and a mark or advance given up
			// with the partition would let its next owner apply it again.
			if err := g.applied(g.workCtx, ev); err != nil {
				return abandoned
			}
			g.count(OutcomeApplied)
			return finished
		case errors.Is(err, ErrFiltered):
			g.count(OutcomeFiltered)
			return finished
		case ctx.Err() != nil:
			return abandoned
		case IsPermanent(err) || topics.IsPoison(err):
			if g.deadLetter(ctx, partition, rec, err, topics.ErrorClassPermanent, attempt+1) {
				return finished
			}
			return abandoned
		}
	}
}

// call runs the handler once, turning a panic into a permanent error, and
// times it: start is the clock reading the call counts from (a chunk passes
// the previous call's end, so each call costs one reading), end the reading
// after it.
func (g *group) call(ctx context.Context, ev *topics.Event, start time.Duration) (end time.Duration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Permanent(fmt.Errorf("handler panic: %v", r))
		}
		end = clock()
		g.duration.Observe((end - start).Seconds())
	}()
	return 0, g.cfg.Handler.Handle(ctx, ev)
}

// clockBase is what clock counts from.
var clockBase = time.Now()

// clock reads the monotonic clock, at about half the cost of time.Now (the
// handler of a fast sink is timed once per record).
func clock() time.Duration { return time.Since(clockBase) }

// admit checks the fence or dedupe store and returns the skip outcome, or ""
// to handle the event. It waits out store outages; its error is ctx's.
func (g *group) admit(ctx context.Context, ev *topics.Event) (string, error) {
	switch g.cfg.Idempotency {
	case IdempotencyFence:
		var applied int64
		err := g.withStore(ctx, func(ctx context.Context) (err error) {
			applied, err = g.store.versions.do(ctx, ev.Subject)
			return err
		})
		if err != nil {
			return "", err
		}
		if ev.Version <= applied {
			return OutcomeSkippedStale, nil
		}
	case IdempotencyDedupe:
		var seen bool
		err := g.withStore(ctx, func(ctx context.Context) (err error) {
			seen, err = g.store.seen.do(ctx, ev.ID)
			return err
		})
		if err != nil {
			return "", err
		}
		if seen {
			return OutcomeSkippedDuplicate, nil
		}
	}
	return "", nil
}

// applied advances the fence or marks the id after the sink succeeded.
func (g *group) applied(ctx context.Context, ev *topics.Event) error {
	switch g.cfg.Idempotency {
	case IdempotencyFence:
		return g.withStore(ctx, func(ctx context.Context) error {
			_, err := g.store.advance.do(ctx, advanceReq{subject: ev.Subject, version: ev.Version})
			return err
		})
	case IdempotencyDedupe:
		return g.withStore(ctx, func(ctx context.Context) error {
			_, err := g.store.mark.do(ctx, ev.ID)
			return err
		})
	}
	return nil
}

// withStore runs op until it succeeds. While it fails (Redis unreachable),
// the group pauses fetching; it resumes by itself when op succeeds. The
// check is never skipped and the record never dead-lettered for it. The
// only error returned is ctx's.
func (g *group) withStore(ctx context.Context, op func(context.Context) error) error {
	err := op(ctx)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err() // cancelled, not a Redis failure
	}
	g.pause(err)
	defer g.resume()
	wait := 50 * time.Millisecond
	lastLog := time.Now()
	for {
		g.storeFails.Inc()
		if time.Since(lastLog) >= 30*time.Second {
			lastLog = time.Now()
			g.log.Error().Err(err).Msg("redis still failing; the group stays paused")
		}
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
		wait = min(2*wait, g.p.opts.StoreBackoffMax)
		if err = op(ctx); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (g *group) pause(cause error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pausers++
	if g.pausers == 1 {
		g.cl.PauseFetchTopics(g.cfg.Topic)
		g.p.metrics.paused.WithLabelValues(g.id).Set(1)
		g.log.Error().Err(cause).Msg("redis unreachable; pausing fetches until it answers")
	}
	g.notifyLocked()
}

func (g *group) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pausers--
	if g.pausers == 0 {
		g.cl.ResumeFetchTopics(g.cfg.Topic)
		g.p.metrics.paused.WithLabelValues(g.id).Set(0)
		g.log.Info().Msg("redis answers again; fetches resumed")
	}
	g.notifyLocked()
}

// deadLetter writes rec to the group's dead-letter topic with the contract
// headers and waits for the acknowledgement (acks=all), retrying until it
// succeeds: the partition never advances past an unacknowledged record.
func (g *group) deadLetter(ctx context.Context, partition int32, rec *kgo.Record, cause error, class string, attempts int) bool {
	return g.retryDeadLetter(ctx, partition, newDeadLetter(rec, g.id, cause, class, attempts))
}

// retryDeadLetter writes d until it is acknowledged, backing off between
// attempts; it reports false if ctx ended first.
func (g *group) retryDeadLetter(ctx context.Context, partition int32, d *deadLetter) bool {
	wait := 100 * time.Millisecond
	for {
		err := g.writeDeadLetter(ctx, d)
		if err == nil {
			g.deadLettered(partition, d)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		g.dlqWriteFailed(partition, d, err)
		if !sleep(ctx, wait) {
			return false
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// deadLetter is a record on its way to the dead-letter topic.
type deadLetter struct {
	rec      *kgo.Record
	group    string
	cause    error
	class    string
	attempts int
	failedAt time.Time
	// slim: Kafka refused the full copy as too large, so it is written
	// without the original's value and headers but its redrive history
	// (HeaderValueOmitted).
	slim bool
}

func newDeadLetter(rec *kgo.Record, group string, cause error, class string, attempts int) *deadLetter {
	return &deadLetter{rec: rec, group: group, cause: cause, class: class, attempts: attempts, failedAt: time.Now().UTC()}
}

// record returns a new record for one produce attempt (kgo owns a record
// once it is produced).
func (d *deadLetter) record(topic string) *kgo.Record {
	r := &kgo.Record{Topic: topic, Key: d.rec.Key}
	if !d.slim {
		r.Value = d.rec.Value
		r.Headers = dlqHeaders(d.rec, d.group, d.cause, d.class, d.attempts, d.failedAt)
		return r
	}
	r.Headers = deadLetterHeaders(d.rec, d.group, d.cause, d.class, d.attempts, d.failedAt)
	for _, h := range d.rec.Headers {
		// The redrive history is small and `dlq list` shows it.
		if h.Key == topics.HeaderRedriveGroup || h.Key == topics.HeaderRedriveCount {
			r.Headers = append(r.Headers, h)
		}
	}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: topics.HeaderValueOmitted, Value: []byte(strconv.Itoa(len(d.rec.Value)))})
	return r
}

// writeDeadLetter makes one attempt at writing d and waits for the
// acknowledgement. A copy Kafka refuses as too large (the original plus the
// contract headers can exceed max.message.bytes, or the producer's batch
// limit) would be refused forever and hold its partition: it is written
// slim instead, right away — the original stays in the source topic, at
// the partition and offset the headers name, and redrive reads it there.
func (g *group) writeDeadLetter(ctx context.Context, d *deadLetter) error {
	topic := topics.DLQTopic(g.cfg.Topic)
	err := g.cl.ProduceSync(ctx, d.record(topic)).FirstErr()
	if !d.slim && (errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)) {
		g.log.Warn().Err(err).Int32("partition", d.rec.Partition).Int64("offset", d.rec.Offset).Int("value_bytes", len(d.rec.Value)).
			Msg("dead letter too large for Kafka; writing it without the original value and headers (" + topics.HeaderValueOmitted + ")")
		d.slim = true
		err = g.cl.ProduceSync(ctx, d.record(topic)).FirstErr()
	}
	return err
}

func (g *group) dlqWriteFailed(partition int32, d *deadLetter, err error) {
	g.dlqFailures.Inc()
	g.log.Error().Err(err).Str("dlq", topics.DLQTopic(g.cfg.Topic)).Int32("partition", partition).Int64("offset", d.rec.Offset).
		Msg("dead-letter write failed; the partition waits for it")
}

// deadLettered counts and logs an acknowledged dead letter.
func (g *group) deadLettered(partition int32, d *deadLetter) {
	g.count(OutcomeDeadLettered)
	g.log.Error().
		Int32("partition", partition).
		Int64("offset", d.rec.Offset).
		Str("key", string(d.rec.Key)).
		Str("error_class", d.class).
		Int("attempts", d.attempts).
		Str("dlq", topics.DLQTopic(g.cfg.Topic)).
		Bool("value_omitted", d.slim).
		Str("error", d.cause.Error()).
		Msg("record dead-lettered")
}

// dlqHeaders keeps rec's headers, replacing any earlier dead-letter headers,
// and adds the contract ones.
func dlqHeaders(rec *kgo.Record, group string, cause error, class string, attempts int, failedAt time.Time) []kgo.RecordHeader {
	add := deadLetterHeaders(rec, group, cause, class, attempts, failedAt)
	replaced := make(map[string]bool, len(add))
	for _, h := range add {
		replaced[h.Key] = true
	}
	out := make([]kgo.RecordHeader, 0, len(rec.Headers)+len(add))
	for _, h := range rec.Headers {
		if !replaced[h.Key] {
			out = append(out, h)
		}
	}
	return append(out, add...)
}

// deadLetterHeaders are the dead-letter headers of the contract for rec.
func deadLetterHeaders(rec *kgo.Record, group string, cause error, class string, attempts int, failedAt time.Time) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: topics.HeaderOriginalTopic, Value: []byte(rec.Topic)},
		{Key: topics.HeaderOriginalPartition, Value: []byte(strconv.Itoa(int(rec.Partition)))},
		{Key: topics.HeaderOriginalOffset, Value: []byte(strconv.FormatInt(rec.Offset, 10))},
		{Key: topics.HeaderOriginalTimestamp, Value: []byte(strconv.FormatInt(rec.Timestamp.UnixMilli(), 10))},
		{Key: topics.HeaderGroup, Value: []byte(group)},
		{Key: topics.HeaderError, Value: []byte(cause.Error())},
		{Key: topics.HeaderErrorClass, Value: []byte(class)},
		{Key: topics.HeaderAttempts, Value: []byte(strconv.Itoa(attempts))},
		{Key: topics.HeaderFailedAt, Value: []byte(failedAt.Format(time.RFC3339Nano))},
	}
}

func (g *group) count(outcome string) { g.countN(outcome, 1) }

// countN counts n records with outcome at once.
func (g *group) countN(outcome string, n int) {
	if n > 0 {
		g.outcomes[outcome].Add(float64(n))
		g.stats.add(outcome, int64(n))
	}
}

// mine reports whether the group processes rec: every record but one
// redriven for another group.
func (g *group) mine(rec *kgo.Record) bool {
	rg, ok := header(rec, topics.HeaderRedriveGroup)
	return !ok || rg == g.id
}

func header(rec *kgo.Record, key string) (string, bool) {
	for _, h := range rec.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// sleep waits d or until ctx ends; it reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
