// Package processor is shopstream's consumer-group engine: one kgo client per
// group, fetch → schedule by key → handle → retry → dead-letter → commit.
package processor

import (
	"context"
	"errors"
	"time"

	"github.com/shopstream/shopstream/topics"
)

// Handler applies one event to a downstream system. A nil error means the
// event was applied; Handle must be safe for concurrent use by events of
// different keys. Events of the same key are never handled concurrently.
//
// ev.Raw and ev.Data share the fetched batch's memory, which is reused
// once the batch's records have finished: a handler may read them until
// Handle returns, and must copy what it keeps beyond that (the string
// attributes are its own to keep). The same holds for a body handed to
// net/http, which may read it after the call that sent it returned.
type Handler interface {
	Handle(ctx context.Context, ev *topics.Event) error
}

// HandlerFunc adapts an ordinary function to a Handler.
type HandlerFunc func(ctx context.Context, ev *topics.Event) error

// Handle calls f(ctx, ev).
func (f HandlerFunc) Handle(ctx context.Context, ev *topics.Event) error { return f(ctx, ev) }

// Middleware wraps a Handler with one concern (metrics, rate limit, ...).
type Middleware func(Handler) Handler

// Chain wraps h with mw, the first middleware outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not retryable: the record goes to its dead-letter
// topic at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err as retryable no sooner than d from now, as a sink's
// 429 or 503 Retry-After header asks. RetryAfter(nil, d) is nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, after: d}
}

// RetryAfterOf returns the delay asked for by a RetryAfter error in err's
// chain, and whether there was one.
func RetryAfterOf(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.after, true
	}
	return 0, false
}

// ErrFiltered is returned by a handler for an event type it deliberately does
// not apply (outcome "filtered"): not an error, never retried, the offset is
// committed and the version fence does not move.
var ErrFiltered = errors.New("event type not handled by this group")
