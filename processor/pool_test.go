package processor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topics"
)

func TestRecordPool(t *testing.T) {
	var p recordPool
	a := p.GetRecords(100)
	if len(a) != 0 || cap(a) < 100 {
		t.Fatalf("GetRecords(100) on an empty pool = len %d cap %d, want len 0 cap >= 100", len(a), cap(a))
	}
	a = a[:cap(a)]
	p.PutRecords(a)
	if b := p.GetRecords(cap(a) + 1); cap(b) < cap(a)+1 || &b[:1][0] == &a[0] {
		t.Fatalf("GetRecords(%d) lent the idle slice of cap %d", cap(a)+1, cap(a))
	}
	if b := p.GetRecords(100); cap(b) != cap(a) || &b[:1][0] != &a[0] {
		t.Fatal("GetRecords did not lend back the idle slice that fits")
	}
	for range recordPoolMax + 3 {
		p.PutRecords(make([]kgo.Record, 10))
	}
	if len(p.idle) != recordPoolMax {
		t.Fatalf("%d idle slices kept, want at most %d", len(p.idle), recordPoolMax)
	}
}

func TestDecompressPool(t *testing.T) {
	var p recordPool
	if b := p.GetDecompressBytes(nil, kgo.CodecSnappy); b != nil {
		t.Fatalf("an empty pool lent a buffer of cap %d", cap(b))
	}
	a := make([]byte, 1000)
	p.PutDecompressBytes(a)
	if b := p.GetDecompressBytes(nil, kgo.CodecSnappy); cap(b) != cap(a) || &b[:1][0] != &a[0] {
		t.Fatal("GetDecompressBytes did not lend back the idle buffer")
	}
	if b := p.GetDecompressBytes(nil, kgo.CodecSnappy); b != nil {
		t.Fatal("a buffer was lent twice")
	}
	for range decompressPoolMax + 3 {
		p.PutDecompressBytes(make([]byte, 10))
	}
	if len(p.bufs) != decompressPoolMax {
		t.Fatalf("%d idle buffers kept, want at most %d", len(p.bufs), decompressPoolMax)
	}
	p.bufs = nil
	p.PutDecompressBytes(make([]byte, 0, decompressBufMax+1))
	if len(p.bufs) != 0 {
		t.Fatalf("a buffer of %d bytes was kept idle, want none above %d", decompressBufMax+1, decompressBufMax)
	}
}

// Finished records go back to kgo, which returns each batch's Records and
// decompressed bytes to the group's pool, and the reused buffers never show
// a handler anything but its own record: every event, while it is handled,
// holds exactly the value produced. A transaction's markers (kept as control
// records) are recycled as well.
func TestFinishedRecordsReturnToPool(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := topics.TopicInventory
	c := inventoryCluster(t, 3)
	// Small snappy batches: many batches, each decoded into its own slice.
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerBatchMaxBytes(4<<10),
		kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	const n = 3000
	produced := make(map[string]string, n+2) // event id -> value
	value := func(i int) (string, *kgo.Record) {
		id, sku := fmt.Sprintf("ev-%d", i), fmt.Sprintf("SKU-%d", i%97)
		v := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"erp","type":"inventory.stock.updated","subject":%q,"version":%d,"data":{"sku":%q,"source_code":"default","quantity":%d,"status":1}}`,
			id, sku, i+1, sku, i)
		produced[id] = v
		return id, &kgo.Record{Topic: topic, Key: []byte(sku), Value: []byte(v)}
	}
	var recs []*kgo.Record
	for i := range n {
		_, r := value(i)
		recs = append(recs, r)
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	tx, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("pool-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := n; i < n+2; i++ {
		_, r := value(i)
		if err := tx.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	handled := make(map[string]int) // event id -> times handled
	var wrong []string
	p, err := New(Options{Brokers: c.ListenAddrs(), Logger: zerolog.Nop()}, GroupConfig{
		Name: "inventory", Topic: topic, Domain: topics.DomainInventory, Idempotency: IdempotencyNone,
		Concurrency: 4,
		Handler: HandlerFunc(func(_ context.Context, ev *topics.Event) error {
			mu.Lock()
			defer mu.Unlock()
			handled[ev.ID]++
			if want := produced[ev.ID]; string(ev.Raw) != want || !strings.Contains(want, `"data":`+string(ev.Data)+"}") {
				wrong = append(wrong, fmt.Sprintf("event %s: Raw %q, Data %q; produced %q", ev.ID, ev.Raw, ev.Data, want))
			}
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for p.Stats()[0].Consumed < int64(len(produced)) {
		select {
		case <-tick.C:
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-ctx.Done():
			t.Fatalf("%d of %d records finished", p.Stats()[0].Consumed, len(produced))
		}
	}
	stop() // the drain settles every record before Run returns
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	pools, _ := p.groups[0].cl.OptValue(kgo.WithPools).([]kgo.Pool)
	if len(pools) != 1 {
		t.Fatalf("the group's client has %d pools, want its own", len(pools))
	}
	// Hundreds of batches finished; the pool keeps the most it may.
	pool := pools[0].(*recordPool)
	if len(pool.idle) != recordPoolMax {
		t.Errorf("%d record slices came back to the pool, want %d: finished records are not recycled", len(pool.idle), recordPoolMax)
	}
	if len(pool.bufs) != decompressPoolMax {
		t.Errorf("%d decompression buffers came back to the pool, want %d: finished batches are not recycled", len(pool.bufs), decompressPoolMax)
	}
	for _, w := range wrong[:min(len(wrong), 5)] {
		t.Errorf("a handler saw another record's bytes: %s", w)
	}
	if len(handled) != len(produced) {
		t.Fatalf("handled %d events, want %d", len(handled), len(produced))
	}
}
