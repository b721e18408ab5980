package chaos

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/topics"
)

// TestSinkOutage: every sink but fraud answers 503 for a while, then 429
// with Retry-After, then recovers — all within the retry budget, so none of
// those groups may dead-letter a record for it. The fraud sink stays down
// longer than its (small) budget, so its records must reach the DLQ as
// retries_exhausted; redrive brings them back, and the invariants hold.
func TestSinkOutage(t *testing.T) {
	eachBackend(t, false, func(t *testing.T, b *backend) {
		t.Parallel()
		outage := size(4*time.Second, 30*time.Second)
		s := newStack(t, b, `drain_timeout: 20s
groups:
  catalog: {retry: {max_attempts: 1000, initial_backoff: 50ms, max_backoff: 1s, max_elapsed: 3m}}
  inventory: {retry: {max_attempts: 1000, initial_backoff: 50ms, max_backoff: 1s, max_elapsed: 3m}}
  order-crm: {retry: {max_attempts: 1000, initial_backoff: 50ms, max_backoff: 1s, max_elapsed: 3m}}
  order-email: {retry: {max_attempts: 1000, initial_backoff: 50ms, max_backoff: 1s, max_elapsed: 3m}}
  customer-crm: {retry: {max_attempts: 1000, initial_backoff: 50ms, max_backoff: 1s, max_elapsed: 3m}}
  order-fraud: {retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 200ms, max_elapsed: 1s}}
`)
		s.generate(stream(21, size(1500, 20000), 0.01))
		down := []string{devstack.SinkProduct, devstack.SinkPrice, devstack.SinkSourceItems, devstack.SinkCRM, devstack.SinkEmail}
		for _, sink := range append(down, devstack.SinkFraud) {
			s.sim.SetFailRate(sink, 1, http.StatusServiceUnavailable)
		}
		s.start()
		s.start()
		if err := s.feed(t.Context(), 0, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(outage)
		for _, sink := range down {
			s.sim.SetFailRate(sink, 0, 0)
			s.sim.FailNext(sink, 20, http.StatusTooManyRequests, "1")
		}
		t.Logf("503 for %s, then 20 × 429 Retry-After: 1 per sink; fraud down %s more", outage, outage/2)
		time.Sleep(outage / 2)
		s.sim.SetFailRate(devstack.SinkFraud, 0, 0)
		s.waitCaughtUp(size(3*time.Minute, 10*time.Minute))

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		exhausted := map[string]int{}
		for _, d := range devstack.DLQTopics() {
			dls, err := admin.ListDLQ(ctx, s.cl, s.prefix+d, admin.Filter{ErrorClass: topics.ErrorClassRetriesExhausted})
			if err != nil {
				t.Fatal(err)
			}
			for _, dl := range dls {
				exhausted[dl.Group]++
			}
		}
		t.Logf("retries_exhausted on the DLQ per group: %v", exhausted)
		for g, n := range exhausted {
			if g != "shopstream.order-fraud" {
				t.Errorf("%s dead-lettered %d records the retry budget should have carried", g, n)
			}
		}
		if exhausted["shopstream.order-fraud"] == 0 {
			t.Errorf("order-fraud's sink was down beyond its retry budget, yet nothing reached its DLQ")
		}
		requireOK(t, s.check("sink-outage (before redrive)"))

		rep, err := admin.Redrive(ctx, s.cl, s.prefix+topics.DLQTopic(topics.TopicOrder),
			admin.Filter{Group: "order-fraud", ErrorClass: topics.ErrorClassRetriesExhausted}, admin.RedriveOptions{Execute: true})
		if err != nil {
			t.Fatalf("redrive: %v", err)
		}
		t.Logf("redrive: read %d, selected %d, redriven %d, skipped %d, failed %d", rep.Read, rep.Selected, rep.Redriven, rep.Skipped, rep.Failed)
		if rep.Redriven == 0 || rep.Failed != 0 {
			t.Fatalf("redrive wrote %d records, %d failed", rep.Redriven, rep.Failed)
		}
		s.waitCaughtUp(2 * time.Minute)
		v := s.check("sink-outage")
		requireOK(t, v)
		for _, g := range v.Groups {
			if g.Group == "order-fraud" && g.DeadLettered != 0 {
				t.Errorf("after redrive %d order-fraud events are only on the DLQ, not applied", g.DeadLettered)
			}
		}
	})
}
