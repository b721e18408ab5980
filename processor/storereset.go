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
// The marker is written back only after the versions are: should writing
// them fail (Redis flapping), the watch tries again on the next tick rather
// than find the marker in place and take the store for intact.
//
// It runs on the commit loop's goroutine only; it needs no lock.
type storeWatch struct {
	g     *group
	armed bool
	// restoring: a reset was detected and the versions (then the marker)
	// are not all written back yet.
	restoring bool
	resets    prometheus.Counter
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
// reports a reset, or goes on with the write-back of a reset found earlier.
// A nil watch does nothing.
func (w *storeWatch) check(ctx context.Context) {
	if w == nil {
		return
	}
	if !w.armed {
		w.armed = w.writeMarker(ctx) == nil
		return
	}
	if !w.restoring {
		mctx, cancel := context.WithTimeout(ctx, storeCheckTimeout)
		vs, err := w.g.p.opts.Versions.Versions(mctx, w.g.id, []string{storeMarkerSubject})
		cancel()
		if err != nil || len(vs) != 1 || vs[0] != 0 {
			return
		}
		w.resets.Inc()
		w.g.log.Error().Msg("store reset detected: the fence/dedupe store lost this group's marker (Redis restarted empty or flushed?); " +
			"fence versions and applied ids may be gone, so stale versions may be applied until the fence fills again")
		w.restoring = true
	}
	restored, err := w.g.restoreFence(ctx)
	if err == nil {
		err = w.writeMarker(ctx)
	}
	if err != nil {
		w.g.log.Error().Err(err).Int("subjects", restored).Msg("writing fence versions back after the store reset failed; trying again on the next tick")
		return
	}
	w.restoring = false
	w.g.log.Warn().Int("subjects", restored).Msg("fence versions written back from this process's cache after the store reset")
}

// writeMarker writes the group's store marker.
func (w *storeWatch) writeMarker(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, storeCheckTimeout)
	defer cancel()
	if _, err := w.g.p.opts.Versions.Advance(ctx, w.g.id, []string{storeMarkerSubject}, []int64{1}); err != nil {
		return fmt.Errorf("write the store marker: %w", err)
	}
	return nil
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
