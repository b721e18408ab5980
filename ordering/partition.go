// Package ordering holds the rules that keep commerce events in order:
// per-key scheduling inside a partition with a commit watermark, the Redis
// version fence, and event-id dedupe. It imports no other shopstream package.
package ordering

import "sort"

// Item is one record of a partition as the scheduler sees it.
type Item[T any] struct {
	Offset int64
	Epoch  int32
	Key    string
	Value  T
}

type slot[T any] struct {
	Item[T]
	running bool // released to the caller and not finished
	done    bool
}

// Partition schedules the records of one partition: records of the same key
// run strictly in offset order, one at a time; records of different keys may
// run concurrently. It also tracks the commit watermark, the lowest offset
// not yet finished, so that a commit never skips unfinished work.
//
// A Partition is not safe for concurrent use; its owner serialises calls.
type Partition[T any] struct {
	// keys holds, per key with outstanding records, the records waiting
	// behind the one in flight (the in-flight record is not in the slice).
	keys map[string][]Item[T]
	// window holds every outstanding offset in increasing order; finished
	// ones are trimmed from the front, so window[0] is the watermark.
	window []slot[T]

	last       Item[T] // the most recently trimmed (finished) slot
	haveLast   bool
	nextAdded  int64 // one past the highest offset added
	added      bool  // whether anything was added
	unfinished int   // records added and not finished
}

// NewPartition returns an empty scheduler.
func NewPartition[T any]() *Partition[T] {
	return &Partition[T]{keys: make(map[string][]Item[T])}
}

// Add registers it, which must have a higher offset than every item added
// before. It reports whether it may start now: true when no earlier record
// of the same key is outstanding. Otherwise it is queued and returned by Done
// of its predecessor.
func (p *Partition[T]) Add(it Item[T]) bool {
	waiting, busy := p.keys[it.Key]
	p.window = append(p.window, slot[T]{Item: it, running: !busy})
	p.nextAdded, p.added = it.Offset+1, true
	p.unfinished++
	if busy {
		p.keys[it.Key] = append(waiting, it)
		return false
	}
	p.keys[it.Key] = nil // the key is busy with it, nothing waits behind
	return true
}

// Done marks the in-flight record at offset finished and returns the next
// record of the same key, which is now in flight, if there is one.
func (p *Partition[T]) Done(offset int64) (next Item[T], ok bool) {
	i := p.find(offset)
	if i < 0 || !p.window[i].running {
		return next, false // unknown, waiting or already finished: nothing changes
	}
	p.window[i].running, p.window[i].done = false, true
	p.unfinished--
	key := p.window[i].Key
	p.trim()
	waiting := p.keys[key]
	if len(waiting) == 0 {
		delete(p.keys, key)
		return next, false
	}
	next = waiting[0]
	if j := p.find(next.Offset); j >= 0 {
		p.window[j].running = true
	}
	waiting[0] = Item[T]{} // the backing array must not keep it alive
	if len(waiting) == 1 {
		p.keys[key] = nil
	} else {
		p.keys[key] = waiting[1:]
	}
	return next, true
}

// AddDone registers an offset that needs no processing — a transaction's
// commit or abort marker, which a read_committed consumer never hands out
// as a record — as already finished, so that the watermark moves past it
// and an idle partition commits up to its end. Like Add, offset must be
// higher than every offset added before.
func (p *Partition[T]) AddDone(offset int64, epoch int32) {
	p.window = append(p.window, slot[T]{Item: Item[T]{Offset: offset, Epoch: epoch}, done: true})
	p.nextAdded, p.added = offset+1, true
	p.trim()
}

// trim drops the finished slots at the front of the window: the watermark
// is the first unfinished one.
func (p *Partition[T]) trim() {
	for len(p.window) > 0 && p.window[0].done {
		p.last, p.haveLast = p.window[0].Item, true
		var zero T
		p.last.Value = zero // only its offset and epoch are needed: keep nothing alive
		p.window[0] = slot[T]{}
		p.window = p.window[1:]
	}
	if len(p.window) == 0 {
		p.window = p.window[:0:0] // release the backing array of a drained window
	}
}

// find returns the window index of offset, or -1. Offsets are usually
// dense (no gaps but those of compaction and transaction markers), so the
// offset's distance from the window's start is tried first.
func (p *Partition[T]) find(offset int64) int {
	if len(p.window) == 0 {
		return -1
	}
	if d := offset - p.window[0].Offset; d >= 0 && d < int64(len(p.window)) && p.window[d].Offset == offset {
		return int(d)
	}
	i := sort.Search(len(p.window), func(i int) bool { return p.window[i].Offset >= offset })
	if i == len(p.window) || p.window[i].Offset != offset {
		return -1
	}
	return i
}

// Watermark returns the offset to commit, the lowest offset not yet finished
// (or one past the last added when all are finished), with the leader epoch
// of the record just below it. ok is false until the lowest record added
// has finished: before that, there is nothing new to commit.
func (p *Partition[T]) Watermark() (offset int64, epoch int32, ok bool) {
	if !p.haveLast {
		return 0, 0, false
	}
	if len(p.window) > 0 {
		return p.window[0].Offset, p.last.Epoch, true
	}
	return p.nextAdded, p.last.Epoch, true
}

// Next returns one past the highest offset added, and whether any was added.
func (p *Partition[T]) Next() (int64, bool) { return p.nextAdded, p.added }

// Waiting returns the records of key queued behind its running one, in
// offset order. The slice belongs to the Partition: read it before the next
// call that changes the Partition.
func (p *Partition[T]) Waiting(key string) []Item[T] { return p.keys[key] }

// Outstanding is the number of records added and not yet finished.
func (p *Partition[T]) Outstanding() int { return p.unfinished }

// Oldest returns the oldest unfinished record.
func (p *Partition[T]) Oldest() (it Item[T], ok bool) {
	if len(p.window) == 0 {
		return it, false
	}
	return p.window[0].Item, true
}
