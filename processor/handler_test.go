package processor_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// recorder returns a middleware that appends name to *calls before and
// "/"+name after the handler it wraps.
func recorder(name string, calls *[]string) processor.Middleware {
	return func(next processor.Handler) processor.Handler {
		return processor.HandlerFunc(func(ctx context.Context, ev *topics.Event) error {
			*calls = append(*calls, name)
			err := next.Handle(ctx, ev)
			*calls = append(*calls, "/"+name)
			return err
		})
	}
}

func TestChainOutermostFirst(t *testing.T) {
	var calls []string
	h := processor.HandlerFunc(func(context.Context, *topics.Event) error {
		calls = append(calls, "handler")
		return nil
	})
	chained := processor.Chain(h, recorder("metrics", &calls), recorder("retry", &calls), recorder("fence", &calls))
	if err := chained.Handle(context.Background(), &topics.Event{ID: "e1"}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	want := []string{"metrics", "retry", "fence", "handler", "/fence", "/retry", "/metrics"}
	if !slices.Equal(calls, want) {
		t.Errorf("call order = %v, want %v", calls, want)
	}
}

func TestChainWithoutMiddlewareIsTheHandler(t *testing.T) {
	called := 0
	h := processor.HandlerFunc(func(context.Context, *topics.Event) error {
		called++
		return nil
	})
	if err := processor.Chain(h).Handle(context.Background(), &topics.Event{}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if called != 1 {
		t.Errorf("handler called %d times, want 1", called)
	}
}

func TestChainPassesContextEventAndError(t *testing.T) {
	type key struct{}
	boom := errors.New("boom")
	ev := &topics.Event{ID: "e7", Subject: "SKU-1"}
	ctx := context.WithValue(context.Background(), key{}, "v")
	var gotCtx context.Context
	var gotEv *topics.Event
	h := processor.HandlerFunc(func(ctx context.Context, ev *topics.Event) error {
		gotCtx, gotEv = ctx, ev
		return boom
	})
	var calls []string
	err := processor.Chain(h, recorder("a", &calls)).Handle(ctx, ev)
	if !errors.Is(err, boom) {
		t.Errorf("error = %v, want %v", err, boom)
	}
	if gotEv != ev {
		t.Errorf("handler got event %p, want %p", gotEv, ev)
	}
	if gotCtx == nil || gotCtx.Value(key{}) != "v" {
		t.Errorf("handler did not get the caller's context")
	}
}

func TestHandlerFunc(t *testing.T) {
	want := errors.New("sink down")
	var got *topics.Event
	var h processor.Handler = processor.HandlerFunc(func(_ context.Context, ev *topics.Event) error {
		got = ev
		return want
	})
	ev := &topics.Event{ID: "x"}
	if err := h.Handle(context.Background(), ev); err != want {
		t.Errorf("Handle error = %v, want %v", err, want)
	}
	if got != ev {
		t.Errorf("HandlerFunc got %p, want %p", got, ev)
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("422 unprocessable")
	perm := processor.Permanent(base)

	if processor.Permanent(nil) != nil {
		t.Errorf("Permanent(nil) = %v, want nil", processor.Permanent(nil))
	}
	if perm.Error() != base.Error() {
		t.Errorf("Permanent(err).Error() = %q, want %q", perm.Error(), base.Error())
	}
	if !errors.Is(perm, base) {
		t.Errorf("errors.Is(Permanent(err), err) = false, want true")
	}

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", base, false},
		{"permanent", perm, true},
		{"wrapped once", fmt.Errorf("magento put: %w", perm), true},
		{"wrapped twice", fmt.Errorf("sku A: %w", fmt.Errorf("magento put: %w", perm)), true},
		{"joined", errors.Join(errors.New("other"), perm), true},
		{"formatted with %v loses it", fmt.Errorf("magento put: %v", perm), false},
		{"retry after", processor.RetryAfter(base, time.Second), false},
		{"permanent inside retry after", processor.RetryAfter(perm, time.Second), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := processor.IsPermanent(tt.err); got != tt.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	base := errors.New("429 too many requests")
	if processor.RetryAfter(nil, time.Second) != nil {
		t.Errorf("RetryAfter(nil, d) is not nil")
	}
	ra := processor.RetryAfter(base, 3*time.Second)
	if ra.Error() != base.Error() {
		t.Errorf("RetryAfter(err, d).Error() = %q, want %q", ra.Error(), base.Error())
	}
	if !errors.Is(ra, base) {
		t.Errorf("errors.Is(RetryAfter(err, d), err) = false")
	}
	if processor.IsPermanent(ra) {
		t.Errorf("RetryAfter error is permanent")
	}

	tests := []struct {
		name   string
		err    error
		want   time.Duration
		wantOK bool
	}{
		{"nil", nil, 0, false},
		{"plain", base, 0, false},
		{"direct", ra, 3 * time.Second, true},
		{"zero delay", processor.RetryAfter(base, 0), 0, true},
		{"wrapped", fmt.Errorf("webhook: %w", ra), 3 * time.Second, true},
		{"outermost wins", processor.RetryAfter(fmt.Errorf("x: %w", ra), time.Minute), time.Minute, true},
		{"inside permanent", processor.Permanent(ra), 3 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := processor.RetryAfterOf(tt.err)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("RetryAfterOf(%v) = %v, %v; want %v, %v", tt.err, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestErrFiltered(t *testing.T) {
	wrapped := fmt.Errorf("group order-email: type %s: %w", "order.cancelled", processor.ErrFiltered)
	if !errors.Is(wrapped, processor.ErrFiltered) {
		t.Errorf("errors.Is(wrapped, ErrFiltered) = false")
	}
	if !errors.Is(fmt.Errorf("outer: %w", wrapped), processor.ErrFiltered) {
		t.Errorf("errors.Is(doubly wrapped, ErrFiltered) = false")
	}
	if errors.Is(errors.New(processor.ErrFiltered.Error()), processor.ErrFiltered) {
		t.Errorf("an error with the same text matches ErrFiltered; it must be a sentinel")
	}
	if processor.IsPermanent(processor.ErrFiltered) {
		t.Errorf("ErrFiltered is permanent")
	}
	if _, ok := processor.RetryAfterOf(processor.ErrFiltered); ok {
		t.Errorf("ErrFiltered carries a retry delay")
	}
}
