package ordering

import "testing"

// A window held open by one long-running record grows the ring to its span;
// once it is over and the window stays small, the ring shrinks back, while a
// window that fills and empties regularly keeps its ring.
func TestPartitionRingShrinksAfterLongWindow(t *testing.T) {
	p := NewPartition[int]()
	off := int64(0)
	add := func(key uint64) int64 {
		p.Add(Item[int]{Offset: off, Key: key})
		off++
		return off - 1
	}
	stuck := add(0)
	for i := range 10_000 {
		o := add(uint64(i + 1))
		p.Done(o) // finished, but held in the window behind stuck
	}
	if grown := len(p.ring); grown < 10_001 {
		t.Fatalf("ring of %d slots for a window of 10001", grown)
	}
	grown := len(p.ring)
	p.Done(stuck)
	if p.n != 0 {
		t.Fatalf("%d slots left in the window after everything finished", p.n)
	}
	// Windows of at most 100 records from now on.
	for range 4 * grown / 100 {
		var offs []int64
		for k := range 100 {
			offs = append(offs, add(uint64(k)))
		}
		for _, o := range offs {
			p.Done(o)
		}
	}
	if got := len(p.ring); got > 256 {
		t.Errorf("ring still holds %d slots (it grew to %d) after windows of 100", got, grown)
	}
	if wm, _, ok := p.Watermark(); !ok || wm != off {
		t.Errorf("watermark %d (%v), want %d", wm, ok, off)
	}

	// A window that fills to 2000 and empties keeps its ring.
	cycle := func() {
		var offs []int64
		for k := range 2000 {
			offs = append(offs, add(uint64(k)))
		}
		for _, o := range offs {
			p.Done(o)
		}
	}
	cycle()
	ring := &p.ring[0]
	for range 50 {
		cycle()
	}
	if &p.ring[0] != ring {
		t.Errorf("the ring was reallocated (now %d slots) while windows of 2000 came and went", len(p.ring))
	}
}
