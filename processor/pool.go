package processor

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordPool lends kgo the slice of Records it decodes each fetched batch
// into, and the buffer it decompresses the batch into, and takes both back
// once every record of the batch has finished (work.recycle). Without it,
// every batch allocated a fresh slice — 160 bytes per record, a sixth of
// make bench S1's allocations — and a fresh buffer of the batch's size,
// which the garbage collector then had to reclaim (and the runtime to zero
// and hand back to the system). Records: S1 ~900 → ~780 bytes allocated per
// record; buffers: ~750 → ~560 bytes and ~25 → ~17 collections per million
// records, ~6% less CPU per record (same-process A/B rounds).
//
// An event shares its batch's buffer (Event.Raw, Event.Data), which is why a
// handler may use them only until Handle returns (Handler): afterwards the
// buffer holds another batch.
//
// At most recordPoolMax slices and decompressPoolMax buffers wait idle; one
// that finds the pool full is left to the garbage collector, and so are the
// slice and buffer of a batch whose records never all finish (its partition
// was revoked or lost first).
type recordPool struct {
	mu   sync.Mutex
	idle [][]kgo.Record
	bufs [][]byte // idle decompression buffers
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

// decompressPoolMax is how many idle decompression buffers a group keeps:
// batches finish about as fast as they are fetched, so two suffice to reuse
// nearly every buffer (make bench S1), and each idle one counts in the live
// heap that the collector's goal multiplies (S6's peak RSS).
const decompressPoolMax = 2

// decompressBufMax is the largest buffer kept idle: a rare huge batch's
// buffer is left to the garbage collector rather than held for good.
const decompressBufMax = 8 << 20

// GetDecompressBytes lends an idle buffer to decompress a batch into, or
// nil. A codec that finds it too small allocates its own, which comes back
// through PutDecompressBytes in its place, so the pool settles on buffers
// of the batches' size.
func (p *recordPool) GetDecompressBytes([]byte, kgo.CompressionCodecType) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.bufs); n > 0 {
		b := p.bufs[n-1]
		p.bufs[n-1] = nil
		p.bufs = p.bufs[:n-1]
		return b
	}
	return nil
}

// PutDecompressBytes takes back a buffer kgo has zeroed.
func (p *recordPool) PutDecompressBytes(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bufs) < decompressPoolMax && cap(b) <= decompressBufMax {
		p.bufs = append(p.bufs, b)
	}
}
