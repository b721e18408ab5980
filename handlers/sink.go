// Package handlers holds what each consumer group does with an event: the
// Magento / Adobe Commerce REST client (catalog and inventory groups) and the
// generic webhook sink (CRM, fraud scoring, email).
//
// Every sink sends one HTTP request per event, waits on its own rate limiter
// first, and maps the outcome onto the processor's error vocabulary: 2xx is
// success; 429, 5xx, 408, timeouts and connection errors are retryable (429 and
// 503 carry their Retry-After delay, see processor.RetryAfter); every other
// 4xx, and a payload that cannot be decoded, is processor.Permanent.
package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// Headers sent with every request, Magento and webhook alike. Sinks ignore
// them; the Magento simulator uses them to check per-subject ordering.
const (
	// HeaderEventID carries the event's CloudEvents id.
	HeaderEventID = "X-Shopstream-Event-Id"
	// HeaderEventVersion carries the event's version extension; it is left
	// out when the event has no version (version 0).
	HeaderEventVersion = "X-Shopstream-Event-Version"
)

const (
	defaultTimeout = 10 * time.Second
	// maxErrorBody bounds the response text quoted in an error.
	maxErrorBody = 512
	// maxBody bounds how much of a response is read, and then drained so the
	// connection can be reused; a longer body costs a new connection.
	maxBody = 1 << 20
)

// sink is the HTTP plumbing shared by Magento and Webhook: one client with a
// pooled transport, one rate limiter, one per-request timeout.
type sink struct {
	name    string // prefixes every error: "magento", "crm"
	client  *http.Client
	limiter *rate.Limiter
	timeout time.Duration
	secret  string // redacted from quoted response bodies
}

// newSink validates the settings common to every sink and builds it. Problems
// are reported together, each prefixed with name.
func newSink(name string, client *http.Client, timeout time.Duration, limit float64, burst int, secret string) (*sink, error) {
	var errs []error
	if timeout < 0 {
		errs = append(errs, fmt.Errorf("%s timeout: must not be negative, got %s", name, timeout))
	}
	if limit < 0 {
		errs = append(errs, fmt.Errorf("%s rate limit: must not be negative, got %g", name, limit))
	}
	if burst < 0 {
		errs = append(errs, fmt.Errorf("%s burst: must not be negative, got %d", name, burst))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if timeout == 0 {
		timeout = defaultTimeout
	}
	if client == nil {
		client = newClient()
	}
	return &sink{
		name:    name,
		client:  keepMethodOnRedirect(client),
		limiter: newLimiter(limit, burst),
		timeout: timeout,
		secret:  secret,
	}, nil
}

// newLimiter returns an unlimited limiter for limit 0; a burst of 0 with a
// limit means 1, so at least one request can ever pass.
func newLimiter(limit float64, burst int) *rate.Limiter {
	if limit == 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(limit), max(burst, 1))
}

// newClient returns a client whose transport keeps enough idle connections
// per host for a group's full concurrency against one downstream.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256, // a group runs up to its concurrency (default 64) calls at once; fewer idle slots churn connections
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

// keepMethodOnRedirect returns a copy of client that follows only the
// redirects that keep the request's method and body (307, 308), under
// client's own redirect policy. net/http turns a PUT or POST answered with
// 301, 302 or 303 into a GET without a body, which a REST API answers with
// 200: the write would count as applied while nothing was written. Such a
// redirect is returned as the response instead, and classify makes it a
// permanent error that names the status (the configured URL is wrong).
func keepMethodOnRedirect(client *http.Client) *http.Client {
	c := *client
	next := client.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.Method != via[0].Method {
			return http.ErrUseLastResponse
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 { // net/http's default policy
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

// send waits on the rate limiter, then sends body to target with hdr plus the
// event headers, within the sink's timeout. It returns the response body of a
// 2xx answer, or the classified error.
func (s *sink) send(ctx context.Context, ev *topics.Event, method, target string, body []byte, hdr http.Header) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		// Not wrapped: a URL parse error quotes the whole URL, query included.
		return nil, processor.Permanent(fmt.Errorf("%s: %s: cannot build request", s.name, method))
	}
	op := method + " " + req.URL.EscapedPath()
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "shopstream")
	req.Header.Set(HeaderEventID, ev.ID)
	if ev.Version != 0 {
		req.Header.Set(HeaderEventVersion, strconv.FormatInt(ev.Version, 10))
	}

	// Wait first, with the caller's ctx, so the wait does not eat into the
	// request's own timeout.
	if err := s.limiter.Wait(ctx); err != nil {
		return nil, fmt.Errorf("%s: %s: rate limit: %w", s.name, op, err)
	}
	reqCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req = req.WithContext(reqCtx)
	resp, err := s.client.Do(req)
	var data []byte
	if err == nil {
		data, err = readBody(resp)
		if err != nil {
			if resp.StatusCode/100 != 2 {
				err = nil // classify by status with whatever text arrived
			} else {
				err = fmt.Errorf("read response: %w", err)
			}
		}
	}
	if err := s.classify(ctx, op, resp, data, err, time.Now()); err != nil {
		return nil, err
	}
	return data, nil
}

// readBody reads up to maxBody bytes, drains a bounded remainder so the
// connection goes back to the pool, and closes the body.
func readBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	return data, err
}

// classify maps the outcome of one exchange to the processor's error
// vocabulary. err is a transport or read error (resp is then ignored); ctx is
// the caller's context, not the per-request one, so that a cancelled caller
// is told apart from a slow sink. now resolves an HTTP-date Retry-After.
//
//   - caller's ctx done: its error, wrapped; retryable.
//   - timeout, connection error: retryable.
//   - 2xx: nil.
//   - 429: processor.RetryAfter with the Retry-After delay (0 when absent).
//   - 503: processor.RetryAfter when Retry-After is present, else retryable.
//   - other 5xx, 408: retryable.
//   - 3xx (a redirect not followed), other 4xx, 1xx: processor.Permanent.
func (s *sink) classify(ctx context.Context, op string, resp *http.Response, body []byte, err error, now time.Time) error {
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("%s: %s: %w", s.name, op, ctxErr)
		}
		// A *url.Error quotes the full URL, query secrets included: keep
		// only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// Not wrapped: the sink being slow must not read as the
			// caller's own deadline.
			return fmt.Errorf("%s: %s: timed out (limit %s): %v", s.name, op, s.timeout, err)
		}
		return fmt.Errorf("%s: %s: %w", s.name, op, err)
	}

	code := resp.StatusCode
	if code/100 == 2 {
		return nil
	}
	status := resp.Status
	if status == "" {
		status = strconv.Itoa(code)
	}
	e := fmt.Errorf("%s: %s: %s", s.name, op, status)
	if text := s.quote(body); text != "" {
		e = fmt.Errorf("%w: %s", e, text)
	}
	d, hasDelay := retryAfter(resp.Header, now)
	switch {
	case code == http.StatusTooManyRequests:
		return processor.RetryAfter(e, d)
	case code == http.StatusServiceUnavailable && hasDelay:
		return processor.RetryAfter(e, d)
	case code/100 == 5, code == http.StatusRequestTimeout:
		return e
	case code/100 == 3:
		// Only a redirect that would turn the write into a GET reaches
		// here (keepMethodOnRedirect).
		return processor.Permanent(fmt.Errorf("%w (a redirect would turn the write into a GET: configure the URL it points to)", e))
	default:
		return processor.Permanent(e)
	}
}

// quote returns up to maxErrorBody bytes of body for an error message, with
// the sink's secret redacted first so that a server echoing the request
// cannot leak it, even cut in half.
func (s *sink) quote(body []byte) string {
	text := string(body)
	if s.secret != "" {
		text = strings.ReplaceAll(text, s.secret, "[redacted]")
	}
	if len(text) > maxErrorBody {
		text = text[:maxErrorBody] + "…"
	}
	return strings.TrimSpace(strings.ToValidUTF8(text, "?"))
}

// retryAfter parses a Retry-After header, delay-seconds or HTTP-date, and
// reports whether a usable value was present. A date in the past is 0.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(maxDuration/time.Second) {
			return maxDuration, true
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

const maxDuration = time.Duration(1<<63 - 1)

// parseURL checks that raw is an absolute http or https URL. Errors never
// quote raw, which may carry credentials.
func parseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("must be an absolute http or https URL")
	}
	if u.Host == "" {
		return nil, errors.New("has no host")
	}
	return u, nil
}
