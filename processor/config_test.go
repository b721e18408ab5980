package processor

import (
	"context"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/topics"
)

func TestRetryPolicyWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   RetryPolicy
		want RetryPolicy
	}{
		{"zero takes every default", RetryPolicy{}, DefaultRetryPolicy},
		{
			"set fields are kept",
			RetryPolicy{MaxAttempts: 3, Initial: time.Millisecond, Max: time.Second, MaxElapsed: time.Minute},
			RetryPolicy{MaxAttempts: 3, Initial: time.Millisecond, Max: time.Second, MaxElapsed: time.Minute},
		},
		{
			"only zero fields are filled",
			RetryPolicy{MaxAttempts: 2, Max: 5 * time.Second},
			RetryPolicy{MaxAttempts: 2, Initial: DefaultRetryPolicy.Initial, Max: 5 * time.Second, MaxElapsed: DefaultRetryPolicy.MaxElapsed},
		},
		{
			"negative values are left for validate",
			RetryPolicy{MaxAttempts: -1, Initial: -time.Second, Max: -time.Second, MaxElapsed: -time.Second},
			RetryPolicy{MaxAttempts: -1, Initial: -time.Second, Max: -time.Second, MaxElapsed: -time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.withDefaults(); got != tt.want {
				t.Errorf("withDefaults() = %+v, want %+v", got, tt.want)
			}
		})
	}
	if DefaultRetryPolicy != (RetryPolicy{MaxAttempts: 8, Initial: 200 * time.Millisecond, Max: 30 * time.Second, MaxElapsed: 5 * time.Minute}) {
		t.Errorf("DefaultRetryPolicy = %+v, changed from the documented 8 / 200ms / 30s / 5m", DefaultRetryPolicy)
	}
}

// wantCeil is min(max, initial·2^(attempt-1)) computed without overflow.
func wantCeil(initial, max time.Duration, attempt int) time.Duration {
	c := new(big.Int).Lsh(big.NewInt(int64(initial)), uint(attempt-1))
	if c.Cmp(big.NewInt(int64(max))) > 0 {
		return max
	}
	return time.Duration(c.Int64())
}

func TestBackoffWithinHalfCeilAndCeil(t *testing.T) {
	const samples = 2000
	policies := []RetryPolicy{
		DefaultRetryPolicy,
		{Initial: time.Millisecond, Max: 50 * time.Millisecond}, // Max is no power-of-two multiple of Initial
		{Initial: 3 * time.Nanosecond, Max: time.Second},        // odd ceilings
		{Initial: time.Nanosecond, Max: 2 * time.Nanosecond},    // tiny
		{Initial: time.Second, Max: time.Second},                // Initial == Max
	}
	for _, p := range policies {
		for attempt := 1; attempt <= 40; attempt++ {
			ceil := wantCeil(p.Initial, p.Max, attempt)
			lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
			for range samples {
				d := p.backoff(attempt)
				if d < ceil/2 || d > ceil {
					t.Fatalf("policy %+v: backoff(%d) = %v, want within [%v, %v]", p, attempt, d, ceil/2, ceil)
				}
				if d > p.Max {
					t.Fatalf("policy %+v: backoff(%d) = %v exceeds Max", p, attempt, d)
				}
				lo, hi = min(lo, d), max(hi, d)
			}
			// Jitter: with a range of more than a few values, the samples
			// must spread over both halves of [ceil/2, ceil].
			if ceil >= 1000 {
				mid := ceil/2 + ceil/4
				if lo >= mid || hi <= mid {
					t.Errorf("policy %+v: backoff(%d) samples span only [%v, %v] of [%v, %v]; not jittered", p, attempt, lo, hi, ceil/2, ceil)
				}
			}
		}
	}
}

func TestBackoffGrowsThenCaps(t *testing.T) {
	p := RetryPolicy{Initial: 100 * time.Millisecond, Max: 1 * time.Second}
	// Lower bounds ceil/2 of successive attempts: 50ms, 100ms, 200ms, 400ms, then 500ms for ever.
	for attempt, wantLo := range map[int]time.Duration{1: 50 * time.Millisecond, 2: 100 * time.Millisecond, 3: 200 * time.Millisecond, 4: 400 * time.Millisecond, 5: 500 * time.Millisecond, 100: 500 * time.Millisecond} {
		for range 200 {
			if d := p.backoff(attempt); d < wantLo || d > 2*wantLo {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", attempt, d, wantLo, 2*wantLo)
			}
		}
	}
}

func TestBackoffInitialZero(t *testing.T) {
	for _, p := range []RetryPolicy{
		{Initial: 0, Max: time.Second},
		{Initial: 0, Max: 0},
	} {
		for attempt := 1; attempt <= 70; attempt++ {
			if d := p.backoff(attempt); d != 0 {
				t.Errorf("policy %+v: backoff(%d) = %v, want 0", p, attempt, d)
			}
		}
	}
}

// With a Max above MaxInt64/2 (which validate accepts), doubling must stop
// at Max instead of overflowing to a negative ceiling and a zero wait.
func TestBackoffHugeMaxDoesNotOverflow(t *testing.T) {
	p := RetryPolicy{Initial: time.Second, Max: math.MaxInt64}
	g := GroupConfig{Name: "inventory", Topic: "t", Domain: topics.DomainInventory,
		Handler: HandlerFunc(func(context.Context, *topics.Event) error { return nil }), Retry: p}.withDefaults()
	if err := g.validate(); err != nil {
		t.Fatalf("validate rejects Max=MaxInt64 (then this is no bug): %v", err)
	}
	for _, attempt := range []int{35, 40, 64} {
		ceil := wantCeil(p.Initial, p.Max, attempt)
		if d := p.backoff(attempt); d < ceil/2 || d > ceil {
			t.Errorf("backoff(%d) with Max=MaxInt64 = %v, want within [%v, %v]", attempt, d, ceil/2, ceil)
		}
	}
}

func TestGroupID(t *testing.T) {
	tests := []struct {
		cfg  GroupConfig
		want string
	}{
		{GroupConfig{Name: "inventory"}, "shopstream.inventory"},
		{GroupConfig{Name: "order-crm"}, "shopstream.order-crm"},
		{GroupConfig{Name: "inventory", ID: "legacy-inventory"}, "legacy-inventory"},
		{GroupConfig{ID: "only-id"}, "only-id"},
	}
	for _, tt := range tests {
		if got := tt.cfg.GroupID(); got != tt.want {
			t.Errorf("%+v.GroupID() = %q, want %q", tt.cfg, got, tt.want)
		}
	}
	if GroupIDPrefix != "shopstream." {
		t.Errorf("GroupIDPrefix = %q, want %q", GroupIDPrefix, "shopstream.")
	}
}

func TestGroupConfigWithDefaults(t *testing.T) {
	g := GroupConfig{Name: "a"}.withDefaults()
	if g.Concurrency != 64 || g.MaxBuffered != 32*64 || g.Idempotency != IdempotencyNone || g.Retry != DefaultRetryPolicy {
		t.Errorf("withDefaults() = concurrency %d, max_buffered %d, idempotency %q, retry %+v; want 64, 2048, none, defaults",
			g.Concurrency, g.MaxBuffered, g.Idempotency, g.Retry)
	}
	g = GroupConfig{Name: "a", Concurrency: 4, Idempotency: IdempotencyFence}.withDefaults()
	if g.Concurrency != 4 || g.MaxBuffered != 128 || g.Idempotency != IdempotencyFence {
		t.Errorf("withDefaults() with concurrency 4, fence = %d, %d, %q; want 4, 128, fence", g.Concurrency, g.MaxBuffered, g.Idempotency)
	}
}

func validGroup() GroupConfig {
	return GroupConfig{
		Name:    "inventory",
		Topic:   topics.TopicInventory,
		Domain:  topics.DomainInventory,
		Handler: HandlerFunc(func(context.Context, *topics.Event) error { return nil }),
	}.withDefaults()
}

func TestValidateValid(t *testing.T) {
	if err := validGroup().validate(); err != nil {
		t.Errorf("validate() of a valid group = %v", err)
	}
	g := validGroup()
	g.Name, g.ID = "", "custom-id"
	if err := g.validate(); err != nil {
		t.Errorf("validate() with an ID and no name = %v", err)
	}
	g = validGroup()
	g.Domain = " Order "
	if err := g.validate(); err != nil {
		t.Errorf("validate() with domain %q = %v; ParseDomain accepts it", g.Domain, err)
	}
	g = validGroup()
	g.Retry.Initial, g.Retry.Max = 0, 0
	if err := g.validate(); err != nil {
		t.Errorf("validate() with retry initial = max = 0 = %v", err)
	}
}

func TestValidateNamesEachSetting(t *testing.T) {
	tests := []struct {
		setting string
		mutate  func(*GroupConfig)
	}{
		{"name", func(g *GroupConfig) { g.Name = "" }},
		{"topic", func(g *GroupConfig) { g.Topic = "" }},
		{"domain", func(g *GroupConfig) { g.Domain = "shipping" }},
		{"domain", func(g *GroupConfig) { g.Domain = "" }},
		{"handler", func(g *GroupConfig) { g.Handler = nil }},
		{"idempotency", func(g *GroupConfig) { g.Idempotency = "exactly-once" }},
		{"idempotency", func(g *GroupConfig) { g.Idempotency = "" }},
		{"concurrency", func(g *GroupConfig) { g.Concurrency = 0 }},
		{"concurrency", func(g *GroupConfig) { g.Concurrency, g.MaxBuffered = 100001, 200000 }},
		{"max_buffered", func(g *GroupConfig) { g.Concurrency, g.MaxBuffered = 8, 7 }},
		{"retry.max_attempts", func(g *GroupConfig) { g.Retry.MaxAttempts = 0 }},
		{"retry.initial_backoff/max_backoff", func(g *GroupConfig) { g.Retry.Initial = -time.Second }},
		{"retry.initial_backoff/max_backoff", func(g *GroupConfig) { g.Retry.Initial, g.Retry.Max = time.Minute, time.Second }},
		{"retry.max_elapsed", func(g *GroupConfig) { g.Retry.MaxElapsed = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.setting, func(t *testing.T) {
			g := validGroup()
			tt.mutate(&g)
			err := g.validate()
			if err == nil {
				t.Fatalf("validate() = nil, want an error naming %s", tt.setting)
			}
			if !strings.Contains(err.Error(), tt.setting+":") {
				t.Errorf("validate() = %q, want it to name %q", err, tt.setting)
			}
			if g.Name != "" && !strings.Contains(err.Error(), `group "`+g.Name+`"`) {
				t.Errorf("validate() = %q, want it to name the group %q", err, g.Name)
			}
		})
	}
}

func TestValidateReturnsEveryProblem(t *testing.T) {
	g := GroupConfig{
		Name:        "broken",
		Domain:      "shipping",
		Idempotency: "maybe",
		Concurrency: -1,
		MaxBuffered: -2,
		Retry:       RetryPolicy{MaxAttempts: 0, Initial: 2 * time.Second, Max: time.Second, MaxElapsed: -1},
	}
	err := g.validate()
	if err == nil {
		t.Fatal("validate() = nil for a group with every setting wrong")
	}
	settings := []string{"topic:", "domain:", "handler:", "idempotency:", "concurrency:", "max_buffered:",
		"retry.max_attempts:", "retry.initial_backoff/max_backoff:", "retry.max_elapsed:"}
	for _, s := range settings {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("validate() does not name %q:\n%v", s, err)
		}
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("validate() = %T, want an errors.Join of the problems", err)
	}
	if n := len(joined.Unwrap()); n != len(settings) {
		t.Errorf("validate() joined %d errors, want one per problem (%d):\n%v", n, len(settings), err)
	}
	for _, e := range joined.Unwrap() {
		if strings.Contains(e.Error(), "\n") {
			t.Errorf("problem %q spans lines; want one line per problem", e)
		}
	}
	if err := (GroupConfig{}).validate(); err == nil || !strings.Contains(err.Error(), "name:") {
		t.Errorf("validate() of the zero GroupConfig = %v, want it to name the missing name", err)
	}
}
