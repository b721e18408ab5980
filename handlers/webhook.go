package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// Default event types of the order webhook groups. NewWebhook copies the list
// it is given, so changing these after construction has no effect. The
// customer CRM group takes every customer type (Types nil).
var (
	// CRMOrderTypes are the order types the CRM webhook takes
	// (group shopstream.order-crm).
	CRMOrderTypes = []string{"order.placed", "order.payment.captured", "order.return.initiated"}
	// FraudOrderTypes are the order types the fraud-scoring webhook takes
	// (group shopstream.order-fraud).
	FraudOrderTypes = []string{"order.placed", "order.payment.captured"}
	// EmailOrderTypes are the order types the email-marketing webhook takes
	// (group shopstream.order-email).
	EmailOrderTypes = []string{"order.placed", "order.shipment.updated", "order.return.initiated"}
)

// WebhookConfig configures a webhook sink.
type WebhookConfig struct {
	// Name names the sink in errors ("crm", "fraud", "email").
	Name string
	// Setting is the name of the setting URL comes from ("crm-url"), for
	// validation errors; empty means Name + "-url".
	Setting string
	// URL receives the events; it may carry a secret in its query, which
	// never appears in errors.
	URL string
	// Timeout bounds one request, response body included; 0 means 10s.
	Timeout time.Duration
	// RateLimit is the most requests per second sent; 0 means unlimited.
	RateLimit float64
	// Burst is how many requests may go at once under RateLimit; 0 means 1.
	Burst int
	// Types lists the event types this sink takes; the others are
	// processor.ErrFiltered. Empty means all.
	Types []string
	// Client, if set, replaces the default pooled client.
	Client *http.Client
}

// Webhook posts each event, as the CloudEvent JSON it was read as, to one
// URL. It is safe for concurrent use.
type Webhook struct {
	url   string
	types map[string]bool // nil: all
	sink  *sink
}

var _ processor.Handler = (*Webhook)(nil)

// NewWebhook validates cfg and returns the sink. Every problem is reported,
// each naming its setting; the URL is never quoted.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	name := cfg.Name
	if name == "" {
		name = "webhook"
	}
	setting := cfg.Setting
	if setting == "" {
		setting = name + "-url"
	}
	var errs []error
	if _, err := parseURL(cfg.URL); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", setting, err))
	}
	s, err := newSink(name, cfg.Client, cfg.Timeout, cfg.RateLimit, cfg.Burst, "")
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	w := &Webhook{url: cfg.URL, sink: s}
	if len(cfg.Types) > 0 {
		w.types = make(map[string]bool, len(cfg.Types))
		for _, t := range cfg.Types {
			w.types[t] = true
		}
	}
	return w, nil
}

// Handle POSTs ev.Raw unchanged with Content-Type application/cloudevents+json,
// Idempotency-Key set to the event id, and the X-Shopstream-Event-* headers.
// A type outside the sink's Types is processor.ErrFiltered.
func (w *Webhook) Handle(ctx context.Context, ev *topics.Event) error {
	if w.types != nil && !w.types[ev.Type] {
		return processor.ErrFiltered
	}
	if len(ev.Raw) == 0 {
		return processor.Permanent(fmt.Errorf("%s: event %s has no raw record value to post", w.sink.name, ev.ID))
	}
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/cloudevents+json")
	hdr.Set("Idempotency-Key", ev.ID)
	// A copy: ev.Raw is valid only until Handle returns (processor.Handler),
	// and net/http may still read a request body after Do returned (a
	// server that answers before reading all of it).
	_, err := w.sink.send(ctx, ev, http.MethodPost, w.url, bytes.Clone(ev.Raw), hdr)
	return err
}
