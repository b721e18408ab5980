package processor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// storeMarkerSubject is the fence subject of a group's store marker. The
// leading NUL keeps it apart from every real subject (a record key).
const storeMarkerSubject = "\x00shopstream.store-marker"

// storeCheckTimeout bounds one marker read or write.
const storeCheckTimeout = 2 * time.Second

// storeWatch detects a fence store that lost its data (a Redis without
// persistence restarted empty, a failover to an empty replica, a FLUSHALL):
// when its group starts it writes a marker version through the VersionStore
// itself, and on every commit tick it reads the marker back. A marker that
// reads 0 means every fence version and dedupe id of the group may be gone:
// stale versions can then be applied over newer ones until the fence fills
// again. The watch reports it — an error log and
// shopstream_store_resets_total{group} — writes the marker again, and
// writes back every fence version the group's cache holds for the
// partitions it owns (chunk.go: the versions it applied or read since they
// were assigned), so the fence is rebuilt for every subject this process
// has seen; the group keeps going (see README, "Redis restarted empty"). A store that
// cannot be reached is not a reset: the group's own outage handling pauses
// it, and the watch tries again on the next tick.
//
// It runs on the commit loop's goroutine only; it needs no lock.
type storeWatch struct {
	g      *group
	armed  bool
	resets prometheus.Counter
}

// newStoreWatch returns the watch of g, or nil when g has no version store.
func newStoreWatch(g *group) *storeWatch {
	if g.p.opts.Versions == nil {
		return nil
	}
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shopstream_store_resets_total",
		Help: "Times the group found its fence/dedupe store emptied (its store marker gone) while running.",
	}, []string{"group"})
	if err := g.p.opts.Registerer.Register(cv); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			g.log.Error().Err(err).Msg("register shopstream_store_resets_total")
			return &storeWatch{g: g, resets: prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered"})}
		}
		cv = are.ExistingCollector.(*prometheus.CounterVec)
	}
	c := cv.WithLabelValues(g.id)
	return &storeWatch{g: g, resets: c}
}

// check writes the marker if it is not yet written, else reads it back and
// reports a reset. A nil watch does nothing.
func (w *storeWatch) check(ctx context.Context) {
	if w == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, storeCheckTimeout)
	defer cancel()
	store, id := w.g.p.opts.Versions, w.g.id
	if !w.armed {
		if _, err := store.Advance(ctx, id, []string{storeMarkerSubject}, []int64{1}); err == nil {
			w.armed = true
		}
		return
	}
	vs, err := store.Versions(ctx, id, []string{storeMarkerSubject})
	if err != nil || len(vs) != 1 || vs[0] != 0 {
		return
	}
	w.resets.Inc()
	w.g.log.Error().Msg("store reset detected: the fence/dedupe store lost this group's marker (Redis restarted empty or flushed?); " +
		"fence versions and applied ids may be gone, so stale versions may be applied until the fence fills again")
	if _, err := store.Advance(ctx, id, []string{storeMarkerSubject}, []int64{1}); err != nil {
		w.armed = false
	}
	restored, err := w.g.restoreFence(ctx)
	ev := w.g.log.Error()
	if err == nil {
		ev = w.g.log.Warn()
	}
	ev.Err(err).Int("subjects", restored).Msg("fence versions written back from this process's cache after the store reset")
}

// restoreFence writes the cached fence versions of the owned partitions
// back to the store (set-if-greater: never lowers a version written since)
// and returns how many it wrote.
func (g *group) restoreFence(ctx context.Context) (int, error) {
	g.mu.Lock()
	owned := make(map[*partState]bool, len(g.parts))
	for _, ps := range g.parts {
		if !ps.draining && !ps.discarded {
			owned[ps] = true
		}
	}
	g.mu.Unlock()
	var subjects []string
	var versions []int64
	g.fence.mu.Lock()
	for s, e := range g.fence.m {
		if owned[e.part] && e.version > 0 {
			subjects, versions = append(subjects, s), append(versions, e.version)
		}
	}
	g.fence.mu.Unlock()
	done := 0
	for done < len(subjects) {
		end := min(done+maxBatch, len(subjects))
		bctx, cancel := context.WithTimeout(ctx, storeCheckTimeout)
		_, err := g.p.opts.Versions.Advance(bctx, g.id, subjects[done:end], versions[done:end])
		cancel()
		if err != nil {
			return done, fmt.Errorf("write back fence versions: %w", err)
		}
		done = end
	}
	return done, nil
}
