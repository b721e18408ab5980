package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

func TestRedactErrorsKeepsClassHidesEmails(t *testing.T) {
	base := errors.New(`crm: POST: 400 Bad Request: {"message":"contact jane.doe+vip@example.co.uk exists"}`)
	for name, in := range map[string]error{
		"permanent":   processor.Permanent(base),
		"retry-after": processor.RetryAfter(base, time.Second),
		"plain":       fmt.Errorf("wrapped: %w", base),
	} {
		h := redactErrors(processor.HandlerFunc(func(context.Context, *topics.Event) error { return in }))
		err := h.Handle(context.Background(), &topics.Event{})
		if strings.Contains(err.Error(), "@") || !strings.Contains(err.Error(), "[email redacted]") {
			t.Errorf("%s: %q still holds the address", name, err)
		}
		if processor.IsPermanent(err) != processor.IsPermanent(in) {
			t.Errorf("%s: class lost", name)
		}
		if _, ok := processor.RetryAfterOf(err); name == "retry-after" && !ok {
			t.Errorf("%s: RetryAfter lost", name)
		}
		if !errors.Is(err, base) {
			t.Errorf("%s: errors.Is lost", name)
		}
	}
	h := redactErrors(processor.HandlerFunc(func(context.Context, *topics.Event) error { return nil }))
	if err := h.Handle(context.Background(), &topics.Event{}); err != nil {
		t.Fatal(err)
	}
}

func TestRedactWriter(t *testing.T) {
	var b strings.Builder
	w := redactWriter{&b}
	line := `{"level":"error","error":"poison record: data.email: \"ann.lee@example.com\" is not valid"}` + "\n"
	n, err := w.Write([]byte(line))
	if err != nil || n != len(line) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if strings.Contains(b.String(), "@") || !strings.Contains(b.String(), "[email redacted]") {
		t.Errorf("got %q", b.String())
	}
}
