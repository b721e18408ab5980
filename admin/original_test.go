package admin

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/topics"
)

// originalsFixture is a kfake cluster with topic "src":
//
//	partition 0: k0..k5 at offsets 0..5, then everything below 2 deleted
//	partition 1: a committed transaction (t0 at 0, t1 at 1, marker at 2),
//	             an aborted one (x at 3, marker at 4), p5 at 5, and another
//	             aborted one last (y at 6, marker at 7)
func originalsFixture(t *testing.T) (context.Context, *kgo.Client, *kadm.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "src"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	rec := func(p int32, key string) *kgo.Record {
		return &kgo.Record{Topic: "src", Partition: p, Key: []byte(key), Value: []byte("value of " + key),
			Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("tp-" + key)}}}
	}
	for i := range 6 {
		if err := cl.ProduceSync(ctx, rec(0, "k"+strconv.Itoa(i))).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	txn := func(commit bool, keys ...string) {
		t.Helper()
		tx, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID("fixture"))
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Close()
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if err := tx.ProduceSync(ctx, rec(1, k)).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	txn(true, "t0", "t1")
	txn(false, "x")
	if err := cl.ProduceSync(ctx, rec(1, "p5")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txn(false, "y")
	adm := kadm.NewClient(cl)
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: "src", Partition: 0, At: 2, LeaderEpoch: -1})
	resp, err := adm.DeleteRecords(ctx, del)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}
	ends, err := adm.ListEndOffsets(ctx, "src")
	if err != nil {
		t.Fatal(err)
	}
	if e0, _ := ends.Lookup("src", 0); e0.Offset != 6 {
		t.Fatalf("fixture: partition 0 ends at %d, want 6", e0.Offset)
	}
	if e1, _ := ends.Lookup("src", 1); e1.Offset != 8 {
		t.Fatalf("fixture: partition 1 ends at %d, want 8", e1.Offset)
	}
	return ctx, cl, adm
}

// readOriginals finds records that exist (in a committed transaction too,
// and several per partition, far apart) and says why the others are gone,
// without waiting for an offset read_committed never returns.
func TestReadOriginals(t *testing.T) {
	ctx, cl, adm := originalsFixture(t)
	at := func(p int32, o int64) sourceAt { return sourceAt{"src", p, o} }
	want := []sourceAt{
		at(0, 5), at(0, 0), at(0, 2), at(0, 5), // 5 twice: two groups dead-lettered it
		at(1, 1), at(1, 2), at(1, 3), at(1, 5), at(1, 6), at(1, 99),
	}
	found, gone, err := readOriginals(ctx, cl, adm, want)
	if err != nil {
		t.Fatal(err)
	}
	for loc, key := range map[sourceAt]string{at(0, 2): "k2", at(0, 5): "k5", at(1, 1): "t1", at(1, 5): "p5"} {
		r, ok := found[loc]
		if !ok {
			t.Errorf("%s not found (gone: %q)", loc, gone[loc])
			continue
		}
		if string(r.Key) != key || string(r.Value) != "value of "+key || headerOf(r, "traceparent") != "tp-"+key || r.Offset != loc.offset {
			t.Errorf("%s: read %s@%d key %q value %q headers %v", loc, r.Topic, r.Offset, r.Key, r.Value, r.Headers)
		}
	}
	for loc, reason := range map[sourceAt]string{
		at(0, 0):  "the partition now starts at offset 2",
		at(1, 2):  "transaction marker",
		at(1, 3):  "the partition continues at offset 4",
		at(1, 6):  "the partition continues at offset 7", // only the abort marker follows
		at(1, 99): "committed records end before offset 8",
	} {
		if _, ok := found[loc]; ok {
			t.Errorf("%s found, want gone", loc)
		}
		if !strings.Contains(gone[loc], reason) {
			t.Errorf("%s: gone %q, want it to say %q", loc, gone[loc], reason)
		}
	}
	if len(found)+len(gone) != 9 {
		t.Errorf("found %d, gone %d: want 9 distinct locations decided", len(found), len(gone))
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := readOriginals(cctx, cl, adm, []sourceAt{at(0, 3)}); err == nil {
		t.Error("readOriginals with an ended context: no error")
	}
}

// readBackOmitted swaps in the original only when it is the record that
// failed: same key and, when the header parsed, same value size; it takes
// the redrive count from the original should the dead letter have lost it.
func TestReadBackOmitted(t *testing.T) {
	ctx, cl, adm := originalsFixture(t)
	dl := func(key string, off int64, count int) (RedriveRecord, *kgo.Record) {
		return RedriveRecord{Key: key, OriginalTopic: "src", OriginalPartition: 0, OriginalOffset: off, ValueOmitted: true, RedriveCount: count + 1},
			&kgo.Record{Topic: "src.dlq", Key: []byte(key)}
	}
	size := int64(len("value of k3"))
	recs := make([]RedriveRecord, 6)
	raws := make([]*kgo.Record, 6)
	recs[0], raws[0] = dl("k3", 3, 0)                       // found
	recs[1], raws[1] = dl("k9", 3, 0)                       // another key at that offset
	recs[2], raws[2] = dl("k3", 3, 0)                       // another size
	recs[3], raws[3] = dl("k1", 1, 0)                       // deleted
	recs[4], raws[4] = dl("k3", 3, 0)                       // size unknown (-1): the key decides
	recs[5] = RedriveRecord{Key: "k4", Skipped: "no group"} // skipped: never read
	raws[5] = &kgo.Record{Key: []byte("k4")}
	sizes := []int64{size, size, size + 1, 7, -1, 0}
	if err := readBackOmitted(ctx, cl, adm, recs, raws, sizes); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 4} {
		if recs[i].Missing != "" || string(raws[i].Value) != "value of k3" || raws[i].Topic != "src" || headerOf(raws[i], "traceparent") != "tp-k3" {
			t.Errorf("record %d: missing %q, raw %s %q %v; want the original k3", i, recs[i].Missing, raws[i].Topic, raws[i].Value, raws[i].Headers)
		}
	}
	for i, want := range map[int][]string{
		1: {"src/0@3", "another record", `"k3"`, `"k9"`},
		2: {"src/0@3", "another record", "11 bytes", topics.HeaderValueOmitted + " says 12"},
		3: {"src/0@1", "is gone", "starts at offset 2"},
	} {
		for _, w := range want {
			if !strings.Contains(recs[i].Missing, w) {
				t.Errorf("record %d: missing %q, want it to say %q", i, recs[i].Missing, w)
			}
		}
		if raws[i].Topic != "src.dlq" {
			t.Errorf("record %d: replaced by %s@%d although it is not the original", i, raws[i].Topic, raws[i].Offset)
		}
	}
	if recs[5].Missing != "" || raws[5].Topic != "" {
		t.Errorf("a skipped record was looked up: %+v", recs[5])
	}
}

// The redrive count continues from the original's when the dead letter
// carries none, and from the dead letter's otherwise.
func TestReadBackOmittedRedriveCount(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "src"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	orig := &kgo.Record{Topic: "src", Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{{Key: topics.HeaderRedriveGroup, Value: []byte("shopstream.g")}, {Key: topics.HeaderRedriveCount, Value: []byte("2")}}}
	if err := cl.ProduceSync(ctx, orig).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dlqCount, want int }{{0, 3}, {2, 3}, {4, 5}} {
		recs := []RedriveRecord{{Key: "k", OriginalTopic: "src", OriginalOffset: 0, ValueOmitted: true, RedriveCount: c.dlqCount + 1}}
		raws := []*kgo.Record{{Key: []byte("k")}}
		if err := readBackOmitted(ctx, cl, kadm.NewClient(cl), recs, raws, []int64{1}); err != nil {
			t.Fatal(err)
		}
		if recs[0].Missing != "" || recs[0].RedriveCount != c.want {
			t.Errorf("dead letter count %d, original's 2: redrive count %d (missing %q), want %d", c.dlqCount, recs[0].RedriveCount, recs[0].Missing, c.want)
		}
	}
}
