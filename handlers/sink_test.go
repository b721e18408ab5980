package handlers

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/shopstream/shopstream/processor"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"", 0, false},
		{"2", 2 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{"-5", 0, false},
		{"soon", 0, false},
		{"Fri, 27 Nov 2026 10:00:30 GMT", 30 * time.Second, true},
		{"Friday, 27-Nov-26 10:01:00 GMT", time.Minute, true}, // RFC 850
		{"Fri Nov 27 10:00:05 2026", 5 * time.Second, true},   // asctime
		{"Fri, 27 Nov 2026 09:00:00 GMT", 0, true},            // past
		{"99999999999999999999", 0, false},                    // overflows int64
		{"9999999999999", maxDuration, true},                  // overflows Duration
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.value != "" {
			h.Set("Retry-After", tt.value)
		}
		got, ok := retryAfter(h, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Retry-After %q: got %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.ok)
		}
	}
}

func TestClassify(t *testing.T) {
	s := &sink{name: "test", timeout: time.Second, secret: "tok"}
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	resp := func(code int, retryAfter string) *http.Response {
		r := &http.Response{StatusCode: code, Header: http.Header{}}
		if retryAfter != "" {
			r.Header.Set("Retry-After", retryAfter)
		}
		return r
	}
	type class int
	const (
		ok class = iota
		retryable
		permanent
		delayed
	)
	tests := []struct {
		resp  *http.Response
		err   error
		class class
		delay time.Duration
	}{
		{resp: resp(200, ""), class: ok},
		{resp: resp(201, ""), class: ok},
		{resp: resp(204, ""), class: ok},
		{resp: resp(304, ""), class: permanent},
		{resp: resp(400, ""), class: permanent},
		{resp: resp(401, ""), class: permanent},
		{resp: resp(404, ""), class: permanent},
		{resp: resp(409, ""), class: permanent},
		{resp: resp(422, ""), class: permanent},
		{resp: resp(408, ""), class: retryable},
		{resp: resp(500, ""), class: retryable},
		{resp: resp(502, ""), class: retryable},
		{resp: resp(504, ""), class: retryable},
		{resp: resp(503, ""), class: retryable},
		{resp: resp(503, "Fri, 27 Nov 2026 10:00:09 GMT"), class: delayed, delay: 9 * time.Second},
		{resp: resp(429, ""), class: delayed, delay: 0},
		{resp: resp(429, "2"), class: delayed, delay: 2 * time.Second},
		{err: errors.New("connection reset by peer"), class: retryable},
		{err: context.DeadlineExceeded, class: retryable},
	}
	for _, tt := range tests {
		err := s.classify(context.Background(), "PUT /p", tt.resp, nil, tt.err, now)
		d, hasDelay := processor.RetryAfterOf(err)
		var got class
		switch {
		case err == nil:
			got = ok
		case processor.IsPermanent(err):
			got = permanent
		case hasDelay:
			got = delayed
		default:
			got = retryable
		}
		if got != tt.class || d != tt.delay {
			t.Errorf("%v: got class %d delay %v, want class %d delay %v", err, got, d, tt.class, tt.delay)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.classify(ctx, "PUT /p", nil, nil, errors.New("request canceled"), now)
	if !errors.Is(err, context.Canceled) || processor.IsPermanent(err) {
		t.Errorf("cancelled caller: got %v, want wrapped context.Canceled", err)
	}
}
