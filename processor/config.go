package processor

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/shopstream/shopstream/topics"
)

// Idempotency says how a group avoids applying an event twice or out of date.
type Idempotency string

// The idempotency modes.
const (
	// IdempotencyFence skips a record whose version is not above the last
	// applied version of its subject (catalog, inventory).
	IdempotencyFence Idempotency = "fence"
	// IdempotencyDedupe skips a record whose event id was already applied
	// by the group (order, customer).
	IdempotencyDedupe Idempotency = "dedupe"
	// IdempotencyNone applies every record.
	IdempotencyNone Idempotency = "none"
)

// GroupIDPrefix starts every default group id: shopstream.<name>.
const GroupIDPrefix = "shopstream."

// RetryPolicy bounds the retries of a retryable failure: exponential backoff
// from Initial up to Max with equal jitter (a random wait in [ceil/2, ceil]), at most MaxAttempts handler
// calls, and no new attempt that would start after MaxElapsed.
type RetryPolicy struct {
	MaxAttempts int           `yaml:"max_attempts"`
	Initial     time.Duration `yaml:"initial_backoff"`
	Max         time.Duration `yaml:"max_backoff"`
	MaxElapsed  time.Duration `yaml:"max_elapsed"`
}

// DefaultRetryPolicy is used for every zero field of a group's RetryPolicy.
var DefaultRetryPolicy = RetryPolicy{
	MaxAttempts: 8,
	Initial:     200 * time.Millisecond,
	Max:         30 * time.Second,
	MaxElapsed:  5 * time.Minute,
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultRetryPolicy.MaxAttempts
	}
	if p.Initial == 0 {
		p.Initial = DefaultRetryPolicy.Initial
	}
	if p.Max == 0 {
		p.Max = DefaultRetryPolicy.Max
	}
	if p.MaxElapsed == 0 {
		p.MaxElapsed = DefaultRetryPolicy.MaxElapsed
	}
	return p
}

// backoff returns the wait before attempt+1 (attempt counts from 1): a
// uniformly random duration in [ceil/2, ceil] ("equal jitter"), where ceil
// is min(Max, Initial·2^(attempt-1)).
func (p RetryPolicy) backoff(attempt int) time.Duration {
	ceil := p.Initial
	for i := 1; i < attempt && ceil < p.Max; i++ {
		if ceil > p.Max/2 {
			ceil = p.Max // doubling would pass Max (or overflow)
			break
		}
		ceil *= 2
	}
	ceil = min(ceil, p.Max)
	if ceil <= 0 {
		return 0
	}
	return ceil/2 + rand.N(ceil/2+1)
}

// GroupConfig is one consumer group: what it reads, what it does, and how.
type GroupConfig struct {
	// Name is the short name (inventory, order-crm); the group id defaults
	// to "shopstream."+Name.
	Name string
	// ID overrides the Kafka group id.
	ID string
	// Topic is the source topic; its dead-letter topic is Topic+".dlq".
	Topic string
	// Domain names the event contract the topic carries.
	Domain topics.Domain
	// Handler applies an event to the sink.
	Handler Handler
	// Idempotency is fence, dedupe or none.
	Idempotency Idempotency
	// Concurrency is the most records handled at once (default 64).
	Concurrency int
	// MaxBuffered bounds the records scheduled and not yet finished
	// (default 32 × Concurrency); scheduling waits above it. Beyond them
	// the group holds the rest of the fetch they came from, and kgo
	// buffers the next fetch from each broker (at most 256 KiB of
	// compressed batches each by default), so that Kafka fetches overlap
	// processing.
	MaxBuffered int
	// Retry bounds retries of retryable failures.
	Retry RetryPolicy
	// Coalesce, if set (fenced groups only), names what an event overwrites
	// at the sink: two events with the same key from Coalesce are absolute
	// updates of the same thing (a stock level per source, a price per
	// store). When several of them wait behind a running record of their
	// subject, only the highest version is applied; the others are counted
	// skipped_stale. handlers.CoalesceKey serves the Magento groups.
	Coalesce func(ev *topics.Event) (key string, ok bool)
}

// GroupID returns the Kafka group id.
func (g GroupConfig) GroupID() string {
	if g.ID != "" {
		return g.ID
	}
	return GroupIDPrefix + g.Name
}

func (g GroupConfig) withDefaults() GroupConfig {
	if g.Concurrency == 0 {
		g.Concurrency = 64
	}
	if g.MaxBuffered == 0 {
		g.MaxBuffered = 32 * g.Concurrency
	}
	if g.Idempotency == "" {
		g.Idempotency = IdempotencyNone
	}
	g.Retry = g.Retry.withDefaults()
	return g
}

func (g GroupConfig) validate() error {
	var errs []error
	bad := func(setting, format string, args ...any) {
		errs = append(errs, fmt.Errorf("group %q: %s: %s", g.Name, setting, fmt.Sprintf(format, args...)))
	}
	if g.Name == "" && g.ID == "" {
		errs = append(errs, errors.New("group: name: empty; give every group a name"))
	}
	if g.Topic == "" {
		bad("topic", "empty; set the source topic")
	}
	if _, err := topics.ParseDomain(string(g.Domain)); err != nil {
		bad("domain", "%v", err)
	}
	if g.Handler == nil {
		bad("handler", "missing")
	}
	switch g.Idempotency {
	case IdempotencyFence, IdempotencyDedupe, IdempotencyNone:
	default:
		bad("idempotency", "%q is not fence, dedupe or none", g.Idempotency)
	}
	if g.Concurrency < 1 || g.Concurrency > 100000 {
		bad("concurrency", "%d is out of range 1..100000", g.Concurrency)
	}
	if g.MaxBuffered < g.Concurrency {
		bad("max_buffered", "%d is below concurrency %d", g.MaxBuffered, g.Concurrency)
	}
	r := g.Retry
	if r.MaxAttempts < 1 {
		bad("retry.max_attempts", "%d; must be at least 1", r.MaxAttempts)
	}
	if r.Initial < 0 || r.Max < r.Initial {
		bad("retry.initial_backoff/max_backoff", "%s/%s; need 0 <= initial <= max", r.Initial, r.Max)
	}
	if r.MaxElapsed < 0 {
		bad("retry.max_elapsed", "%s is negative", r.MaxElapsed)
	}
	return errors.Join(errs...)
}
