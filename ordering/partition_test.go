package ordering_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/shopstream/shopstream/ordering"
)

// none stands for "no offset": Done hands over nothing, or Watermark has
// nothing to commit (ok == false).
const none = -1

// pstep is one call on a Partition and what must be true after it.
type pstep struct {
	done bool // false: Add, true: Done

	off   int64
	key   string // Add
	epoch int32  // Add
	start bool   // Add: whether it may start now
	next  int64  // Done: the offset handed over, or none

	wm          int64 // Watermark offset after the step, or none for ok == false
	wmEpoch     int32
	outstanding int
}

func add(off int64, key string, epoch int32, start bool) pstep {
	return pstep{off: off, key: key, epoch: epoch, start: start}
}

func done(off, next int64) pstep {
	return pstep{done: true, off: off, next: next}
}

// then sets what Watermark and Outstanding must report after the step.
func (s pstep) then(wm int64, epoch int32, outstanding int) pstep {
	s.wm, s.wmEpoch, s.outstanding = wm, epoch, outstanding
	return s
}

func item(off int64, key string, epoch int32) ordering.Item[string] {
	return ordering.Item[string]{Offset: off, Epoch: epoch, Key: ordering.HashKey(key), Value: "v" + strconv.FormatInt(off, 10)}
}

func TestPartitionTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps []pstep
	}{
		{
			name: "same key runs one at a time in offset order",
			steps: []pstep{
				add(0, "a", 1, true).then(none, 0, 1),
				add(1, "a", 1, false).then(none, 0, 2),
				add(2, "a", 1, false).then(none, 0, 3),
				done(0, 1).then(1, 1, 2),
				done(1, 2).then(2, 1, 1),
				done(2, none).then(3, 1, 0),
			},
		},
		{
			name: "different keys start at once",
			steps: []pstep{
				add(0, "a", 1, true).then(none, 0, 1),
				add(1, "b", 1, true).then(none, 0, 2),
				add(2, "c", 1, true).then(none, 0, 3),
				done(2, none).then(none, 0, 2), // 0 still runs: nothing to commit
				done(1, none).then(none, 0, 1),
				done(0, none).then(3, 1, 0),
			},
		},
		{
			name: "interleaved keys hand over only their own successor",
			steps: []pstep{
				add(0, "a", 1, true).then(none, 0, 1),
				add(1, "b", 1, true).then(none, 0, 2),
				add(2, "a", 1, false).then(none, 0, 3),
				add(3, "b", 1, false).then(none, 0, 4),
				add(4, "c", 1, true).then(none, 0, 5),
				done(1, 3).then(none, 0, 4),
				done(3, none).then(none, 0, 3),
				add(5, "b", 1, true).then(none, 0, 4), // b is idle again
				done(0, 2).then(2, 1, 3),              // 0 and the finished 1 are trimmed
				done(4, none).then(2, 1, 2),
				done(2, none).then(5, 1, 1),
				done(5, none).then(6, 1, 0),
			},
		},
		{
			name: "gaps from compaction and transaction markers",
			steps: []pstep{
				add(0, "a", 3, true).then(none, 0, 1),
				add(1, "b", 3, true).then(none, 0, 2),
				add(5, "a", 3, false).then(none, 0, 3),
				add(9, "b", 4, false).then(none, 0, 4),
				done(0, 5).then(1, 3, 3),
				done(1, 9).then(5, 3, 2), // the watermark jumps the gap 2..4
				done(9, none).then(5, 3, 1),
				done(5, none).then(10, 4, 0), // one past the last added, epoch of 9
			},
		},
		{
			name: "the first offset need not be zero",
			steps: []pstep{
				add(1000, "a", 7, true).then(none, 0, 1),
				add(1003, "b", 7, true).then(none, 0, 2),
				done(1003, none).then(none, 0, 1),
				done(1000, none).then(1004, 7, 0),
			},
		},
		{
			name: "epoch is that of the record just below the watermark",
			steps: []pstep{
				add(0, "a", 1, true).then(none, 0, 1),
				add(1, "b", 2, true).then(none, 0, 2),
				add(2, "c", 3, true).then(none, 0, 3),
				// 1 (epoch 2) finishes before 0 (epoch 1): committing 2
				// carries the epoch of record 1, not of the record that
				// happened to finish last.
				done(1, none).then(none, 0, 2),
				done(0, none).then(2, 2, 1),
				done(2, none).then(3, 3, 0),
			},
		},
		{
			name: "done of unknown or finished offsets changes nothing",
			steps: []pstep{
				add(0, "a", 1, true).then(none, 0, 1),
				add(2, "b", 1, true).then(none, 0, 2),
				add(4, "b", 1, false).then(none, 0, 3),
				done(1, none).then(none, 0, 3),  // in a gap
				done(7, none).then(none, 0, 3),  // beyond the last added
				done(-5, none).then(none, 0, 3), // before the first added
				done(2, 4).then(none, 0, 2),
				done(2, none).then(none, 0, 2), // finished, still in the window
				done(0, none).then(4, 1, 1),    // 0 and 2 are trimmed
				done(0, none).then(4, 1, 1),    // finished and trimmed
				done(4, none).then(5, 1, 0),
				done(4, none).then(5, 1, 0), // finished, window drained
				done(5, none).then(5, 1, 0), // one past the last added
			},
		},
		{
			name: "adding after a drain",
			steps: []pstep{
				add(0, "a", 1, true).then(none, 0, 1),
				done(0, none).then(1, 1, 0),
				add(3, "a", 2, true).then(3, 1, 1), // a is free again
				add(4, "a", 2, false).then(3, 1, 2),
				done(3, 4).then(4, 2, 1),
				done(4, none).then(5, 2, 0),
			},
		},
		{
			name: "empty key is a key like any other",
			steps: []pstep{
				add(0, "", 1, true).then(none, 0, 1),
				add(1, "", 1, false).then(none, 0, 2),
				add(2, "x", 1, true).then(none, 0, 3),
				done(0, 1).then(1, 1, 2),
				done(1, none).then(2, 1, 1),
				done(2, none).then(3, 1, 0),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := ordering.NewPartition[string]()
			added := map[int64]ordering.Item[string]{}
			unfinished := map[int64]bool{}
			for i, s := range tt.steps {
				if s.done {
					next, ok := p.Done(s.off)
					switch {
					case s.next == none && ok:
						t.Fatalf("step %d: Done(%d) = %+v, true; want nothing", i, s.off, next)
					case s.next != none && (!ok || next != added[s.next]):
						t.Fatalf("step %d: Done(%d) = %+v, %v; want %+v, true", i, s.off, next, ok, added[s.next])
					}
					delete(unfinished, s.off)
				} else {
					it := item(s.off, s.key, s.epoch)
					added[s.off], unfinished[s.off] = it, true
					if got := p.Add(it); got != s.start {
						t.Fatalf("step %d: Add(%+v) = %v, want %v", i, it, got, s.start)
					}
				}
				checkWatermark(t, p, s.wm, s.wmEpoch, fmt.Sprintf("step %d", i))
				if got := p.Outstanding(); got != s.outstanding {
					// Errorf, not Fatalf: see TestPartitionOutstandingCountsOnlyUnfinished.
					t.Errorf("step %d: Outstanding() = %d, want %d (records not yet finished)", i, got, s.outstanding)
				}
				oldest, ok := p.Oldest()
				if len(unfinished) == 0 {
					if ok {
						t.Fatalf("step %d: Oldest() = %+v, true; want nothing", i, oldest)
					}
				} else if want := added[slices.Min(mapKeys(unfinished))]; !ok || oldest != want {
					t.Fatalf("step %d: Oldest() = %+v, %v; want %+v, true", i, oldest, ok, want)
				}
			}
		})
	}
}

func checkWatermark[T any](t *testing.T, p *ordering.Partition[T], want int64, wantEpoch int32, where string) {
	t.Helper()
	off, epoch, ok := p.Watermark()
	if want == none {
		if ok {
			t.Fatalf("%s: Watermark() = %d, %d, true; want ok == false", where, off, epoch)
		}
		return
	}
	if !ok || off != want || epoch != wantEpoch {
		t.Fatalf("%s: Watermark() = %d, %d, %v; want %d, %d, true", where, off, epoch, ok, want, wantEpoch)
	}
}

func mapKeys[K comparable, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestPartitionEmpty(t *testing.T) {
	t.Parallel()
	p := ordering.NewPartition[int]()
	if off, epoch, ok := p.Watermark(); ok {
		t.Errorf("Watermark() of an empty partition = %d, %d, true; want ok == false", off, epoch)
	}
	if n := p.Outstanding(); n != 0 {
		t.Errorf("Outstanding() of an empty partition = %d, want 0", n)
	}
	if it, ok := p.Oldest(); ok {
		t.Errorf("Oldest() of an empty partition = %+v, true; want nothing", it)
	}
	if next, ok := p.Done(0); ok {
		t.Errorf("Done(0) of an empty partition = %+v, true; want nothing", next)
	}
	if p.Outstanding() != 0 {
		t.Errorf("Done on an empty partition changed Outstanding to %d", p.Outstanding())
	}
}

// TestPartitionOutstandingCountsOnlyUnfinished pins the documented meaning
// of Outstanding, "records added and not yet finished". A record finished out
// of order stays in the window behind an unfinished one, and must not be
// counted: the processor decrements its pending count for every finished
// record and, on revoke, subtracts Outstanding again.
func TestPartitionOutstandingCountsOnlyUnfinished(t *testing.T) {
	t.Parallel()
	p := ordering.NewPartition[string]()
	p.Add(item(0, "a", 1))
	p.Add(item(1, "b", 1))
	p.Add(item(2, "c", 1))
	p.Done(2)
	p.Done(1)
	if got := p.Outstanding(); got != 1 {
		t.Errorf("Outstanding() = %d after finishing 1 and 2 of 0..2, want 1 (only 0 is unfinished)", got)
	}
	if got := p.Span(); got != 3 {
		t.Errorf("Span() = %d after finishing 1 and 2 of 0..2, want 3 (0 holds them in the window)", got)
	}
	p.Done(0)
	if got := p.Outstanding(); got != 0 {
		t.Errorf("Outstanding() = %d after finishing all, want 0", got)
	}
	if got := p.Span(); got != 0 {
		t.Errorf("Span() = %d after finishing all, want 0", got)
	}
}

// TestPartitionDoneHandsOverValue checks that the record Done hands over is
// the one added, value included, so the caller can start it without a lookup.
func TestPartitionDoneHandsOverValue(t *testing.T) {
	t.Parallel()
	type rec struct{ body string }
	first, second := &rec{"first"}, &rec{"second"}
	p := ordering.NewPartition[*rec]()
	p.Add(ordering.Item[*rec]{Offset: 10, Epoch: 4, Key: ordering.HashKey("SKU-1"), Value: first})
	p.Add(ordering.Item[*rec]{Offset: 11, Epoch: 5, Key: ordering.HashKey("SKU-1"), Value: second})
	next, ok := p.Done(10)
	if !ok || next.Offset != 11 || next.Epoch != 5 || next.Key != ordering.HashKey("SKU-1") || next.Value != second {
		t.Fatalf("Done(10) = %+v, %v; want offset 11, epoch 5, key SKU-1, value %p", next, ok, second)
	}
	if it, ok := p.Oldest(); !ok || it.Value != second {
		t.Fatalf("Oldest() = %+v, %v; want the record at 11", it, ok)
	}
}

// model is a deliberately naive reference for Partition: a list of every
// record added, each with its state.
type model struct {
	recs      []mrec
	nextAdded int64

	// badOutstanding collects Outstanding mismatches instead of failing at
	// once, so that one wrong count does not hide the other invariants.
	badOutstanding *mismatches
}

// mismatches counts failures of one kind and keeps the first.
type mismatches struct {
	n     int
	first string
}

func (m *mismatches) add(msg string) {
	if m.n == 0 {
		m.first = msg
	}
	m.n++
}

type mrec struct {
	ordering.Item[int]
	inFlight, finished bool
}

// add returns whether the record may start: no unfinished record of its key.
func (m *model) add(it ordering.Item[int]) bool {
	start := true
	for _, r := range m.recs {
		if r.Key == it.Key && !r.finished {
			start = false
		}
	}
	m.recs = append(m.recs, mrec{Item: it, inFlight: start})
	m.nextAdded = it.Offset + 1
	return start
}

// done finishes the in-flight record at off and starts the lowest unfinished
// record of its key, which it returns.
func (m *model) done(off int64) (ordering.Item[int], bool) {
	i := m.index(off)
	m.recs[i].inFlight, m.recs[i].finished = false, true
	for j := range m.recs {
		if r := &m.recs[j]; r.Key == m.recs[i].Key && !r.finished {
			r.inFlight = true
			return r.Item, true
		}
	}
	return ordering.Item[int]{}, false
}

func (m *model) index(off int64) int {
	for i, r := range m.recs {
		if r.Offset == off {
			return i
		}
	}
	return -1
}

// watermark is the lowest unfinished offset (one past the last added if none),
// with the epoch of the record just below it; ok is false if no record below
// it exists, that is the oldest record has not finished.
func (m *model) watermark() (int64, int32, bool) {
	wm := m.nextAdded
	below := -1
	for i, r := range m.recs {
		if !r.finished {
			wm = r.Offset
			break
		}
		below = i
	}
	if below < 0 {
		return 0, 0, false
	}
	return wm, m.recs[below].Epoch, true
}

func (m *model) outstanding() int {
	n := 0
	for _, r := range m.recs {
		if !r.finished {
			n++
		}
	}
	return n
}

func (m *model) inFlight() []int64 {
	var offs []int64
	for _, r := range m.recs {
		if r.inFlight {
			offs = append(offs, r.Offset)
		}
	}
	return offs
}

// check compares p with m and verifies the scheduling invariants on m's
// in-flight set, which was built only from what p returned.
func (m *model) check(t *testing.T, p *ordering.Partition[int], where string) {
	t.Helper()
	busy := map[uint64]int64{}
	lowest := map[uint64]int64{} // lowest unfinished offset per key
	for _, r := range m.recs {
		if _, seen := lowest[r.Key]; !seen && !r.finished {
			lowest[r.Key] = r.Offset
		}
	}
	for _, r := range m.recs {
		if !r.inFlight {
			continue
		}
		if other, dup := busy[r.Key]; dup {
			t.Fatalf("%s: key %x has two records in flight: %d and %d", where, r.Key, other, r.Offset)
		}
		busy[r.Key] = r.Offset
		if lowest[r.Key] != r.Offset {
			t.Fatalf("%s: %d of key %x is in flight while earlier %d is unfinished", where, r.Offset, r.Key, lowest[r.Key])
		}
	}
	for key, off := range lowest {
		if _, ok := busy[key]; !ok {
			t.Fatalf("%s: key %x has unfinished %d but nothing in flight (stalled)", where, key, off)
		}
	}

	wantOff, wantEpoch, wantOK := m.watermark()
	if off, epoch, ok := p.Watermark(); ok != wantOK || (ok && (off != wantOff || epoch != wantEpoch)) {
		t.Fatalf("%s: Watermark() = %d, %d, %v; want %d, %d, %v", where, off, epoch, ok, wantOff, wantEpoch, wantOK)
	}
	if got, want := p.Outstanding(), m.outstanding(); got != want {
		m.badOutstanding.add(fmt.Sprintf("%s: Outstanding() = %d, want %d (records not yet finished)", where, got, want))
	}
	oldest, ok := p.Oldest()
	var want *ordering.Item[int]
	for i := range m.recs {
		if !m.recs[i].finished {
			want = &m.recs[i].Item
			break
		}
	}
	if want == nil {
		if ok {
			t.Fatalf("%s: Oldest() = %+v, want nothing", where, oldest)
		}
	} else if !ok || oldest != *want {
		t.Fatalf("%s: Oldest() = %+v, %v; want %+v, true", where, oldest, ok, *want)
	}
}

// TestPartitionRandomized drives a Partition with random adds (random keys,
// random offset gaps, rising epochs) and random completions of in-flight
// records, and after every call compares it with the model.
func TestPartitionRandomized(t *testing.T) {
	t.Parallel()
	const (
		rounds = 300
		steps  = 400
	)
	var badOutstanding mismatches
	defer func() {
		if badOutstanding.n > 0 {
			t.Errorf("Outstanding() was wrong %d times; first: %s", badOutstanding.n, badOutstanding.first)
		}
	}()
	for round := range rounds {
		rng := rand.New(rand.NewPCG(20240917, uint64(round)))
		nkeys := 1 + rng.IntN(12) // few keys: long per-key queues; many: mostly parallel
		p := ordering.NewPartition[int]()
		m := &model{badOutstanding: &badOutstanding}
		off := rng.Int64N(1000)
		epoch := int32(rng.IntN(5))
		for step := range steps {
			where := fmt.Sprintf("round %d step %d", round, step)
			inFlight := m.inFlight()
			switch r := rng.IntN(100); {
			case r < 50 || len(inFlight) == 0:
				if rng.IntN(10) == 0 {
					off += 1 + rng.Int64N(5) // gap: compaction or a transaction marker
				}
				if rng.IntN(50) == 0 {
					epoch++ // leader change
				}
				it := ordering.Item[int]{Offset: off, Epoch: epoch, Key: ordering.HashKey("k" + strconv.Itoa(rng.IntN(nkeys))), Value: int(off) * 7}
				off++
				want := m.add(it)
				if got := p.Add(it); got != want {
					t.Fatalf("%s: Add(%+v) = %v, want %v", where, it, got, want)
				}
			case r < 92:
				target := inFlight[rng.IntN(len(inFlight))]
				want, wantOK := m.done(target)
				next, ok := p.Done(target)
				if ok != wantOK || next != want {
					t.Fatalf("%s: Done(%d) = %+v, %v; want %+v, %v", where, target, next, ok, want, wantOK)
				}
			default:
				// Done of an offset that is not outstanding: finished, in
				// a gap, or never added. It must change nothing.
				var target int64
				switch rng.IntN(3) {
				case 0:
					target = off + rng.Int64N(10) // never added
				case 1:
					target = -1 - rng.Int64N(10)
				default:
					var finished []int64
					for _, r := range m.recs {
						if r.finished {
							finished = append(finished, r.Offset)
						}
					}
					if len(finished) == 0 {
						target = off
					} else {
						target = finished[rng.IntN(len(finished))]
					}
				}
				if m.index(target) >= 0 && !m.recs[m.index(target)].finished {
					t.Fatalf("%s: test bug: %d is outstanding", where, target)
				}
				wmOff, wmEpoch, wmOK := p.Watermark()
				before := p.Outstanding()
				if next, ok := p.Done(target); ok {
					t.Fatalf("%s: Done(%d) of a non-outstanding offset = %+v, true", where, target, next)
				}
				if o, e, k := p.Watermark(); o != wmOff || e != wmEpoch || k != wmOK || p.Outstanding() != before {
					t.Fatalf("%s: Done(%d) of a non-outstanding offset moved the watermark %d/%d/%v to %d/%d/%v or Outstanding %d to %d",
						where, target, wmOff, wmEpoch, wmOK, o, e, k, before, p.Outstanding())
				}
			}
			m.check(t, p, where)
		}

		// Drain: finish whatever is in flight until nothing is left.
		for i := 0; m.outstanding() > 0; i++ {
			inFlight := m.inFlight()
			target := inFlight[rng.IntN(len(inFlight))]
			want, wantOK := m.done(target)
			if next, ok := p.Done(target); ok != wantOK || next != want {
				t.Fatalf("round %d drain %d: Done(%d) = %+v, %v; want %+v, %v", round, i, target, next, ok, want, wantOK)
			}
			m.check(t, p, fmt.Sprintf("round %d drain %d", round, i))
		}
		if wm, _, ok := p.Watermark(); len(m.recs) > 0 && (!ok || wm != m.nextAdded) {
			t.Fatalf("round %d: drained Watermark() = %d, %v; want %d, true", round, wm, ok, m.nextAdded)
		}
	}
}

// BenchmarkPartition measures Add and Done over a steady workload spread over
// 1000 keys: each iteration adds a batch of records and finishes them in the
// order they become ready, reusing one Partition as a consumer would.
func BenchmarkPartition(b *testing.B) {
	const (
		keys  = 1000
		batch = 4096
	)
	rng := rand.New(rand.NewPCG(1, 2))
	names := make([]string, keys)
	for i := range names {
		names[i] = "SKU-" + strconv.Itoa(i)
	}
	workload := make([]string, batch) // the key of each record of a batch
	for i := range workload {
		workload[i] = names[rng.IntN(keys)]
	}
	p := ordering.NewPartition[int]()
	ready := make([]int64, 0, batch)
	var off int64
	b.ReportAllocs()
	for b.Loop() {
		ready = ready[:0]
		for _, key := range workload {
			if p.Add(ordering.Item[int]{Offset: off, Key: ordering.HashKey(key), Value: int(off)}) {
				ready = append(ready, off)
			}
			off++
		}
		for i := 0; i < len(ready); i++ {
			if next, ok := p.Done(ready[i]); ok {
				ready = append(ready, next.Offset)
			}
		}
		if p.Outstanding() != 0 {
			b.Fatalf("%d records left outstanding", p.Outstanding())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
}

// HashKey is the same for the same key, in one process, and tells apart
// keys that differ in one byte.
func TestHashKey(t *testing.T) {
	if ordering.HashKey("SKU-1") != ordering.HashKey(string([]byte("SKU-1"))) {
		t.Fatal("HashKey differs for equal keys")
	}
	seen := map[uint64]string{}
	for i := range 10000 {
		k := "SKU-" + strconv.Itoa(i)
		h := ordering.HashKey(k)
		if other, dup := seen[h]; dup {
			t.Fatalf("HashKey(%q) == HashKey(%q)", k, other)
		}
		seen[h] = k
	}
}

// Done on a record still waiting behind an earlier one of its key changes
// nothing: only a running record can finish.
func TestPartitionDoneOnWaitingRecordIsIgnored(t *testing.T) {
	p := ordering.NewPartition[string]()
	p.Add(item(0, "a", 1))
	p.Add(item(1, "a", 1))
	if _, ok := p.Done(1); ok {
		t.Fatal("Done(1) released a record while 0 of the same key is running")
	}
	if got := p.Outstanding(); got != 2 {
		t.Errorf("Outstanding() = %d, want 2", got)
	}
	next, ok := p.Done(0)
	if !ok || next.Offset != 1 {
		t.Fatalf("Done(0) = %v, %v; want offset 1 released", next.Offset, ok)
	}
	if _, ok := p.Done(1); ok {
		t.Error("Done(1) released something after the key drained")
	}
	if off, _, ok := p.Watermark(); !ok || off != 2 {
		t.Errorf("watermark %d, %v; want 2", off, ok)
	}
}

// A transaction marker (AddDone) is finished from the start: the watermark
// waits for the records before it and then moves past it, and on its own it
// moves the watermark to one past it.
func TestPartitionAddDone(t *testing.T) {
	p := ordering.NewPartition[int]()
	p.AddDone(4, 2) // a marker first: nothing before it is outstanding
	if off, epoch, ok := p.Watermark(); !ok || off != 5 || epoch != 2 {
		t.Fatalf("watermark after a lone marker = %d/%d/%v, want 5/2/true", off, epoch, ok)
	}
	p.Add(ordering.Item[int]{Offset: 5, Epoch: 2, Key: ordering.HashKey("a")})
	p.Add(ordering.Item[int]{Offset: 6, Epoch: 2, Key: ordering.HashKey("b")})
	p.AddDone(7, 2)
	if off, _, _ := p.Watermark(); off != 5 {
		t.Fatalf("watermark %d with 5 and 6 unfinished, want 5", off)
	}
	p.Done(6)
	if off, _, _ := p.Watermark(); off != 5 {
		t.Fatalf("watermark %d with 5 unfinished, want 5", off)
	}
	p.Done(5)
	if off, _, _ := p.Watermark(); off != 8 {
		t.Fatalf("watermark %d after 5 and 6 finished, want 8 (past the marker at 7)", off)
	}
	if n, ok := p.Next(); !ok || n != 8 || p.Outstanding() != 0 {
		t.Fatalf("Next = %d/%v, outstanding %d; want 8/true, 0", n, ok, p.Outstanding())
	}
}

// Behind yields the records of the same key queued behind a record, in
// offset order, and follows the chain as records finish.
func TestPartitionBehind(t *testing.T) {
	p := ordering.NewPartition[string]()
	for i, key := range []string{"a", "b", "a", "b", "a"} {
		p.Add(item(int64(i), key, 1))
	}
	behind := func(off int64) []int64 {
		var offs []int64
		for it := range p.Behind(off) {
			offs = append(offs, it.Offset)
		}
		return offs
	}
	if got := behind(0); !slices.Equal(got, []int64{2, 4}) {
		t.Errorf("Behind(0) = %v, want [2 4]", got)
	}
	if got := behind(1); !slices.Equal(got, []int64{3}) {
		t.Errorf("Behind(1) = %v, want [3]", got)
	}
	if next, ok := p.Done(0); !ok || next.Offset != 2 {
		t.Fatalf("Done(0) = %v, %v; want 2 released", next.Offset, ok)
	}
	if got := behind(2); !slices.Equal(got, []int64{4}) {
		t.Errorf("after Done(0): Behind(2) = %v, want [4]", got)
	}
	if got := behind(4); len(got) != 0 {
		t.Errorf("Behind(4) = %v, want none", got)
	}
	if got := behind(0); len(got) != 0 {
		t.Errorf("Behind(0) of a finished record = %v, want none", got)
	}
}
