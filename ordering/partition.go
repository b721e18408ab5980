// Package ordering holds the rules that keep commerce events in order:
// per-key scheduling inside a partition with a commit watermark, the Redis
// version fence, and event-id dedupe. It imports no other shopstream package.
package ordering

import (
	"hash/maphash"
	"iter"
	"sort"
)

// Item is one record of a partition as the scheduler sees it.
type Item[T any] struct {
	Offset int64
	Epoch  int32
	// Key is the record's ordering key as HashKey returns it. Equal keys
	// have equal hashes, so a key's records keep their order; two keys
	// whose hashes collide (about once in 2^64 pairs) are only run one
	// after the other, as if they were one key — never out of order.
	Key   uint64
	Value T
}

// keySeed seeds HashKey, differently in every process, so that nobody can
// choose keys that collide.
var keySeed = maphash.MakeSeed()

// HashKey returns the Item.Key of an ordering key. Hashing a key once,
// outside the scheduler, keeps its bytes out of the scheduler's map: the
// map lookups on the record keys themselves were a tenth of make bench S1's
// CPU, mostly fetching the key bytes from memory under the group mutex.
func HashKey(key string) uint64 { return maphash.String(keySeed, key) }

type slot[T any] struct {
	Item[T]
	// behind is the offset of the next record of the same key, queued
	// behind this one, or -1.
	behind  int64
	running bool // released to the caller and not finished
	done    bool
}

// minRing is the smallest capacity the window grows to.
const minRing = 64

// Partition schedules the records of one partition: records of the same key
// run strictly in offset order, one at a time; records of different keys may
// run concurrently. It also tracks the commit watermark, the lowest offset
// not yet finished, so that a commit never skips unfinished work.
//
// A Partition is not safe for concurrent use; its owner serialises calls.
type Partition[T any] struct {
	// tails holds, per key with outstanding records, the offset of its
	// newest record. The key's records are chained in offset order through
	// slot.behind, from the one in flight to the tail.
	tails map[uint64]int64
	// ring holds every outstanding offset in increasing order, n of them
	// from ring[head] on, wrapping around; len(ring) is a power of two.
	// Finished ones are trimmed from the front, so the first is the
	// watermark. Adding and trimming allocate nothing once the ring is as
	// large as the most records outstanding at once; it shrinks again
	// once the window has stayed far smaller for a while (review).
	ring    []slot[T]
	head, n int
	// peak is the most slots the window held since the last review, and
	// reviewIn how many more slots are trimmed before the next one.
	peak, reviewIn int

	last       Item[T] // the most recently trimmed (finished) slot
	haveLast   bool
	nextAdded  int64 // one past the highest offset added
	added      bool  // whether anything was added
	unfinished int   // records added and not finished
}

// NewPartition returns an empty scheduler.
func NewPartition[T any]() *Partition[T] {
	return &Partition[T]{tails: make(map[uint64]int64)}
}

// at returns the i-th outstanding slot (0 is the oldest).
func (p *Partition[T]) at(i int) *slot[T] { return &p.ring[(p.head+i)&(len(p.ring)-1)] }

// Add registers it, which must have a higher offset than every item added
// before. It reports whether it may start now: true when no earlier record
// of the same key is outstanding. Otherwise it is queued and returned by Done
// of its predecessor.
func (p *Partition[T]) Add(it Item[T]) bool {
	tail, busy := p.tails[it.Key]
	if busy {
		if i := p.find(tail); i >= 0 {
			p.at(i).behind = it.Offset
		}
	}
	p.tails[it.Key] = it.Offset
	p.push(slot[T]{Item: it, behind: -1, running: !busy})
	p.unfinished++
	return !busy
}

// push appends s to the window, growing the ring when it is full.
func (p *Partition[T]) push(s slot[T]) {
	if p.n == len(p.ring) {
		grown := make([]slot[T], max(minRing, 2*len(p.ring)))
		for i := range p.n {
			grown[i] = *p.at(i)
		}
		p.ring, p.head = grown, 0
	}
	*p.at(p.n) = s
	p.n++
	p.peak = max(p.peak, p.n)
	p.nextAdded, p.added = s.Offset+1, true
}

// Done marks the in-flight record at offset finished and returns the next
// record of the same key, which is now in flight, if there is one.
func (p *Partition[T]) Done(offset int64) (next Item[T], ok bool) {
	i := p.find(offset)
	if i < 0 || !p.at(i).running {
		return next, false // unknown, waiting or already finished: nothing changes
	}
	s := p.at(i)
	s.running, s.done = false, true
	p.unfinished--
	behind := s.behind
	if behind < 0 {
		delete(p.tails, s.Key)
	}
	p.trim()
	if behind < 0 {
		return next, false
	}
	j := p.find(behind)
	if j < 0 {
		return next, false // cannot happen: a queued record is outstanding
	}
	n := p.at(j)
	n.running = true
	return n.Item, true
}

// AddDone registers an offset that needs no processing — a transaction's
// commit or abort marker, which a read_committed consumer never hands out
// as a record — as already finished, so that the watermark moves past it
// and an idle partition commits up to its end. Like Add, offset must be
// higher than every offset added before.
func (p *Partition[T]) AddDone(offset int64, epoch int32) {
	p.push(slot[T]{Item: Item[T]{Offset: offset, Epoch: epoch}, behind: -1, done: true})
	p.trim()
}

// trim drops the finished slots at the front of the window: the watermark
// is the first unfinished one. Dropped slots are zeroed, so the ring keeps
// no finished record alive.
func (p *Partition[T]) trim() {
	for p.n > 0 {
		s := p.at(0)
		if !s.done {
			return
		}
		p.last, p.haveLast = Item[T]{Offset: s.Offset, Epoch: s.Epoch}, true
		*s = slot[T]{}
		p.head = (p.head + 1) & (len(p.ring) - 1)
		p.n--
		if p.reviewIn--; p.reviewIn <= 0 {
			p.review()
		}
	}
}

// review runs each time a ring's length of slots has been trimmed. A ring
// that the window never filled past a quarter since the last review shrinks
// to twice the window's peak (a power of two, at least minRing). The ring
// grows to the window's span, not to the records outstanding: one record
// retried for minutes, while the rest of its partition goes on, holds every
// later slot in the window. Without a review that memory stayed taken for
// the partition's lifetime; a window that fills and empties with every
// fetch keeps its ring.
func (p *Partition[T]) review() {
	if size := len(p.ring); size > minRing && p.peak <= size/4 {
		want := minRing
		for want < 2*p.peak {
			want *= 2
		}
		shrunk := make([]slot[T], want)
		for i := range p.n {
			shrunk[i] = *p.at(i)
		}
		p.ring, p.head = shrunk, 0
	}
	p.peak, p.reviewIn = p.n, len(p.ring)
}

// find returns the window index of offset, or -1. Offsets are usually
// dense (no gaps but those of compaction and transaction markers), so the
// offset's distance from the window's start is tried first.
func (p *Partition[T]) find(offset int64) int {
	if p.n == 0 {
		return -1
	}
	if d := offset - p.at(0).Offset; d >= 0 && d < int64(p.n) && p.at(int(d)).Offset == offset {
		return int(d)
	}
	i := sort.Search(p.n, func(i int) bool { return p.at(i).Offset >= offset })
	if i == p.n || p.at(i).Offset != offset {
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
	if p.n > 0 {
		return p.at(0).Offset, p.last.Epoch, true
	}
	return p.nextAdded, p.last.Epoch, true
}

// Next returns one past the highest offset added, and whether any was added.
func (p *Partition[T]) Next() (int64, bool) { return p.nextAdded, p.added }

// Behind yields the records of the same key queued behind the outstanding
// record at offset, in offset order. The Partition must not change while
// the sequence runs.
func (p *Partition[T]) Behind(offset int64) iter.Seq[Item[T]] {
	return func(yield func(Item[T]) bool) {
		i := p.find(offset)
		if i < 0 {
			return
		}
		for off := p.at(i).behind; off >= 0; {
			j := p.find(off)
			if j < 0 {
				return
			}
			s := p.at(j)
			if !yield(s.Item) {
				return
			}
			off = s.behind
		}
	}
}

// Span is the number of offsets in the window: from the watermark (the
// oldest unfinished record) to the newest added, finished ones included.
// It is what the window's memory grows with.
func (p *Partition[T]) Span() int { return p.n }

// Outstanding is the number of records added and not yet finished.
func (p *Partition[T]) Outstanding() int { return p.unfinished }

// Oldest returns the oldest unfinished record.
func (p *Partition[T]) Oldest() (it Item[T], ok bool) {
	if p.n == 0 {
		return it, false
	}
	return p.at(0).Item, true
}
