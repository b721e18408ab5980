package processor_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// logging is a middleware with one concern: it prints each event before and
// the result after the handler it wraps.
func logging(name string) processor.Middleware {
	return func(next processor.Handler) processor.Handler {
		return processor.HandlerFunc(func(ctx context.Context, ev *topics.Event) error {
			fmt.Printf("%s: before %s\n", name, ev.ID)
			err := next.Handle(ctx, ev)
			fmt.Printf("%s: after %s (permanent=%v)\n", name, ev.ID, processor.IsPermanent(err))
			return err
		})
	}
}

func ExampleChain() {
	// The sink: an event it cannot accept is marked Permanent, so the
	// processor dead-letters it at once instead of retrying; an event type
	// this group does not handle is ErrFiltered.
	sink := processor.HandlerFunc(func(_ context.Context, ev *topics.Event) error {
		switch ev.Type {
		case topics.TypeThresholdBreached:
			return processor.ErrFiltered
		case topics.TypeStockUpdated:
			if ev.Subject == "" {
				return processor.Permanent(errors.New("no sku"))
			}
		}
		return nil
	})

	// The first middleware is the outermost.
	h := processor.Chain(sink, logging("metrics"), logging("retry"))

	err := h.Handle(context.Background(), &topics.Event{ID: "e1", Type: topics.TypeStockUpdated})
	fmt.Println("e1:", err, processor.IsPermanent(err))

	err = h.Handle(context.Background(), &topics.Event{ID: "e2", Type: topics.TypeThresholdBreached})
	fmt.Println("e2 filtered:", errors.Is(err, processor.ErrFiltered))
	// Output:
	// metrics: before e1
	// retry: before e1
	// retry: after e1 (permanent=true)
	// metrics: after e1 (permanent=true)
	// e1: no sku true
	// metrics: before e2
	// retry: before e2
	// retry: after e2 (permanent=false)
	// metrics: after e2 (permanent=false)
	// e2 filtered: true
}
