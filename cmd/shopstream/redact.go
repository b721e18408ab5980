package main

import (
	"context"
	"io"
	"regexp"
	"strings"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// emailPattern matches an e-mail address anywhere in a text.
var emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+`)

// redactErrors keeps customers' e-mail addresses out of the logs and the
// dead-letter headers: a sink's error may quote its response body, which
// may echo the order or customer it was sent. The error keeps its class
// (Permanent, RetryAfter, the skip sentinels) through Unwrap; only its text
// is redacted.
func redactErrors(h processor.Handler) processor.Handler {
	return processor.HandlerFunc(func(ctx context.Context, ev *topics.Event) error {
		err := h.Handle(ctx, ev)
		if err == nil {
			return nil
		}
		msg := err.Error()
		red := emailPattern.ReplaceAllString(msg, "[email redacted]")
		if red == msg {
			return err
		}
		return &redactedError{msg: red, err: err}
	})
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactWriter masks e-mail addresses in everything written through it: the
// logs' last line of defence, for text the processor logs that no handler
// returned (a poison record's reason quotes a little of the record).
type redactWriter struct{ w io.Writer }

func (r redactWriter) Write(p []byte) (int, error) {
	if out := emailPattern.ReplaceAll(p, []byte("[email redacted]")); len(out) != len(p) || string(out) != string(p) {
		if _, err := r.w.Write(out); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return r.w.Write(p)
}

// urlUserinfo matches the user information of a URL in a text, up to the
// last "@" before the host: scheme://user:password@.
var urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]+@`)

// redactCredentials masks every occurrence of the non-empty secrets in s,
// then the user information of every URL (redis://user:password@host →
// redis://[credentials redacted]@host), for text that comes from a library
// rather than from shopstream's own messages.
func redactCredentials(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return urlUserinfo.ReplaceAllString(s, "${1}[credentials redacted]@")
}
