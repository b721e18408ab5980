package processor

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// mapVersions is an in-memory VersionStore that can be emptied or broken.
type mapVersions struct {
	mu   sync.Mutex
	v    map[string]int64
	down bool
	// failWrites makes that many Advance calls of real subjects (not the
	// store marker) fail, then none.
	failWrites int
}

func (m *mapVersions) Versions(_ context.Context, group string, subjects []string) ([]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errors.New("connection refused")
	}
	out := make([]int64, len(subjects))
	for i, s := range subjects {
		out[i] = m.v[group+"|"+s]
	}
	return out, nil
}

func (m *mapVersions) Advance(_ context.Context, group string, subjects []string, versions []int64) ([]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errors.New("connection refused")
	}
	if m.failWrites > 0 && subjects[0] != storeMarkerSubject {
		m.failWrites--
		return nil, errors.New("i/o timeout")
	}
	out := make([]bool, len(subjects))
	for i, s := range subjects {
		if versions[i] > m.v[group+"|"+s] {
			m.v[group+"|"+s], out[i] = versions[i], true
		}
	}
	return out, nil
}

func TestStoreWatchDetectsAnEmptiedStore(t *testing.T) {
	store := &mapVersions{v: map[string]int64{}}
	reg := prometheus.NewRegistry()
	p := &Processor{opts: Options{Versions: store, Registerer: reg}}
	g := &group{p: p, id: "shopstream.inventory", log: zerolog.Nop(), parts: map[int32]*partState{}}
	owned, gone := &partState{num: 0}, &partState{num: 1, discarded: true}
	g.parts[0] = owned
	g.fence.mu.Lock()
	g.fence.putLocked("SKU-A", owned, 7)
	g.fence.putLocked("SKU-B", gone, 9) // learnt under an assignment since lost
	g.fence.mu.Unlock()
	w := newStoreWatch(g)
	other := newStoreWatch(&group{p: p, id: "shopstream.catalog", log: zerolog.Nop()}) // shares the metric
	ctx := context.Background()
	// resets returns the inventory group's count and the number of series.
	series := 0
	resets := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var v float64
		series = 0
		for _, mf := range mfs {
			if mf.GetName() != "shopstream_store_resets_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				series++
				for _, l := range m.GetLabel() {
					if l.GetName() == "group" && l.GetValue() == g.id {
						v = m.GetCounter().GetValue()
					}
				}
			}
		}
		return v
	}

	store.down = true
	w.check(ctx) // cannot arm while the store is down: not a reset
	w.check(ctx)
	store.down = false
	w.check(ctx) // arms
	w.check(ctx)
	other.check(ctx)
	if resets() != 0 {
		t.Fatalf("resets %v before any reset", resets())
	}
	store.down = true
	w.check(ctx) // an outage is not a reset
	store.down = false
	w.check(ctx)
	if resets() != 0 {
		t.Fatalf("an outage counted as a reset")
	}

	store.mu.Lock()
	clear(store.v) // Redis restarted empty
	store.mu.Unlock()
	w.check(ctx)
	if resets() != 1 {
		t.Fatalf("resets %v after the store was emptied, want 1", resets())
	}
	// The owned partition's cached version is written back; the one learnt
	// under a lost assignment is not (another member owns that SKU now).
	if got, _ := store.Versions(ctx, g.id, []string{"SKU-A", "SKU-B"}); got[0] != 7 || got[1] != 0 {
		t.Fatalf("after the reset the store holds SKU-A=%d SKU-B=%d, want 7 and 0", got[0], got[1])
	}
	w.check(ctx) // re-armed: counted once
	if resets() != 1 {
		t.Fatalf("resets %v, want the reset counted once", resets())
	}
	if resets(); series != 2 {
		t.Fatalf("%d shopstream_store_resets_total series, want one per group", series)
	}

	var none *storeWatch
	none.check(ctx) // a group without a version store
	if newStoreWatch(&group{p: &Processor{opts: Options{Registerer: reg}}}) != nil {
		t.Fatal("a watch without a version store")
	}
}

// A write-back that fails after a reset is tried again on the next tick, and
// the marker is written only once the versions are back: a marker written
// first would hide the failed write-back for good.
func TestStoreWatchRetriesAFailedWriteBack(t *testing.T) {
	store := &mapVersions{v: map[string]int64{}}
	reg := prometheus.NewRegistry()
	p := &Processor{opts: Options{Versions: store, Registerer: reg}}
	g := &group{p: p, id: "shopstream.inventory", log: zerolog.Nop(), parts: map[int32]*partState{}}
	owned := &partState{num: 0}
	g.parts[0] = owned
	g.fence.mu.Lock()
	g.fence.putLocked("SKU-A", owned, 7)
	g.fence.mu.Unlock()
	w := newStoreWatch(g)
	ctx := context.Background()
	w.check(ctx) // arms
	read := func(subject string) int64 {
		t.Helper()
		v, err := store.Versions(ctx, g.id, []string{subject})
		if err != nil {
			t.Fatal(err)
		}
		return v[0]
	}

	store.mu.Lock()
	clear(store.v) // Redis restarted empty
	store.failWrites = 1
	store.mu.Unlock()
	w.check(ctx) // detects; the write-back fails
	if a, m := read("SKU-A"), read(storeMarkerSubject); a != 0 || m != 0 {
		t.Fatalf("after a failed write-back the store holds SKU-A=%d and the marker %d, want both 0 (nothing written yet)", a, m)
	}
	w.check(ctx) // tries again
	if a, m := read("SKU-A"), read(storeMarkerSubject); a != 7 || m != 1 {
		t.Fatalf("after the next tick the store holds SKU-A=%d and the marker %d, want 7 and 1", a, m)
	}
	w.check(ctx)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "shopstream_store_resets_total" {
			if n := mf.GetMetric()[0].GetCounter().GetValue(); n != 1 {
				t.Errorf("resets counted %v times, want 1: the retry is the same reset", n)
			}
		}
	}
}
