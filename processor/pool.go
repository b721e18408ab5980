package processor

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordPool lends kgo the slice of Records it decodes each fetched batch
// into, and takes it back once every record of the batch has finished
// (work.recycle). Without it, every batch allocated a fresh slice — 160
// bytes per record, a sixth of make bench S1's allocations — which the
// garbage collector then had to reclaim (S1: ~900 → ~780 bytes allocated
// per record, ~15% fewer collections).
//
// Only the Records are pooled, not the decompressed batch they point into:
// an event shares that memory (Event.Raw, Event.Data) and a handler may
// keep the event, so it stays the garbage collector's to free.
//
// At most recordPoolMax slices wait idle; one that finds the pool full is
// left to the garbage collector, and so is the slice of a batch whose
// records never all finish (its partition was revoked or lost first).
type recordPool struct {
	mu   sync.Mutex
	idle [][]kgo.Record
}

// recordPoolMax is how many idle slices a group keeps, about 1 MiB each for
// producers' default 1 MB batches of ~300-byte records. Eight kept ~4 MiB
// more idle and took a few collections fewer, but pushed make bench S6's
// peak RSS ratio to 1.17-1.22 (limit 1.2); with four it is 1.13.
const recordPoolMax = 4

// GetRecords lends an idle slice with room for n records, or allocates one
// with a quarter more room, so that a slightly larger batch later fits too.
// The allocation happens outside the lock: PutRecords runs in workers
// settling under the group mutex, which must not wait for it.
func (p *recordPool) GetRecords(n int) []kgo.Record {
	p.mu.Lock()
	for i := len(p.idle) - 1; i >= 0; i-- {
		if r := p.idle[i]; cap(r) >= n {
			last := len(p.idle) - 1
			p.idle[i], p.idle[last] = p.idle[last], nil
			p.idle = p.idle[:last]
			p.mu.Unlock()
			return r[:0]
		}
	}
	p.mu.Unlock()
	return make([]kgo.Record, 0, n+n/4)
}

// PutRecords takes back a slice whose records kgo has zeroed.
func (p *recordPool) PutRecords(r []kgo.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) < recordPoolMax {
		p.idle = append(p.idle, r)
	}
}
