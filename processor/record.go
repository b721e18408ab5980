package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

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
	ctx, partition, rec, ev := r.t.part.ctx, r.t.part.num, r.t.w.rec, r.ev
	err, spent := r.err, r.spent
	for attempt := 1; ; attempt++ {
		wait := g.cfg.Retry.backoff(attempt)
		if ra, ok := RetryAfterOf(err); ok && ra > wait {
			wait = ra
		}
		if attempt >= g.cfg.Retry.MaxAttempts || spent+wait > g.cfg.Retry.MaxElapsed {
			return g.deadLetterResult(r.t, err, topics.ErrorClassRetriesExhausted, attempt)
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
		callStart := time.Now()
		err = g.call(ctx, ev)
		spent += time.Since(callStart)
		switch {
		case err == nil:
			if err := g.applied(ctx, ev); err != nil {
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

// call runs the handler once, timing it and turning a panic into a
// permanent error.
func (g *group) call(ctx context.Context, ev *topics.Event) (err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = Permanent(fmt.Errorf("handler panic: %v", r))
		}
		g.duration.Observe(time.Since(start).Seconds())
	}()
	return g.cfg.Handler.Handle(ctx, ev)
}

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
	failedAt := time.Now().UTC()
	dlqTopic := topics.DLQTopic(g.cfg.Topic)
	wait := 100 * time.Millisecond
	for {
		dl := &kgo.Record{
			Topic:   dlqTopic,
			Key:     rec.Key,
			Value:   rec.Value,
			Headers: dlqHeaders(rec, g.id, cause, class, attempts, failedAt),
		}
		err := g.cl.ProduceSync(ctx, dl).FirstErr()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false
		}
		g.dlqFailures.Inc()
		g.log.Error().Err(err).Str("dlq", dlqTopic).Int32("partition", partition).Int64("offset", rec.Offset).
			Msg("dead-letter write failed; the partition waits for it")
		if !sleep(ctx, wait) {
			return false
		}
		wait = min(2*wait, 10*time.Second)
	}
	g.count(OutcomeDeadLettered)
	g.log.Error().
		Int32("partition", partition).
		Int64("offset", rec.Offset).
		Str("key", string(rec.Key)).
		Str("error_class", class).
		Int("attempts", attempts).
		Str("dlq", dlqTopic).
		Str("error", cause.Error()).
		Msg("record dead-lettered")
	return true
}

// dlqHeaders keeps rec's headers, replacing any earlier dead-letter headers,
// and adds the contract ones.
func dlqHeaders(rec *kgo.Record, group string, cause error, class string, attempts int, failedAt time.Time) []kgo.RecordHeader {
	add := []kgo.RecordHeader{
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
