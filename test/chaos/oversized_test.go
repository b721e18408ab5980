package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/admin"
	"github.com/shopstream/shopstream/internal/devstack"
	"github.com/shopstream/shopstream/topics"
)

// Sizes around the limits that meet an oversized record. The broker's
// max.message.bytes (Kafka's and kfake's default) bounds a record batch as
// sent, compressed; kgo's ProducerBatchMaxBytes (default 1,000,012 bytes,
// the processor's DLQ producer keeps it) bounds a batch before
// compression; the processor fetches with FetchMaxPartitionBytes 64 KiB
// and FetchMaxBytes 256 KiB (processor/group.go), which a single larger
// batch still passes (KIP-74: the first batch is returned whole).
const (
	brokerMaxMessageBytes = 1048588
	kgoMaxBatchBytes      = 1000012
	processorFetchPart    = 64 << 10
)

// TestOversizedRecords pins what happens to records far above the
// processor's fetch limits, end to end through `shopstream run`
// (inventory group), on kfake and on real Kafka:
//
//   - above max.message.bytes (1,100,000 bytes, uncompressed): cannot be
//     produced; the producer gets MESSAGE_TOO_LARGE (from the broker, or
//     from kgo itself with its default batch limit) and the record is not
//     in the topic;
//   - 900 KiB, valid JSON but not a CloudEvent: fetched although 3.5× the
//     partition fetch limit, dead-lettered byte-exact as poison, and the
//     partition goes on;
//   - 900 KiB, a valid stock event with a huge extra payload field: applied;
//   - a poison record whose dead-letter copy is above kgo's 1,000,012-byte
//     batch limit, either 1,020,000 bytes produced uncompressed (under
//     max.message.bytes) or 2 MiB produced snappy-compressed (the broker
//     checks the compressed size): the full dead-letter copy is refused
//     with MESSAGE_TOO_LARGE, so the processor writes it slim — the key
//     and the contract headers, no value, no original headers, and
//     shopstream.value.omitted with the original's size (the original stays
//     at the offset the headers name; redrive reads it there) — and the
//     partition goes on: the next record of the key and the others are
//     applied, the offsets committed past it, no write failure.
func TestOversizedRecords(t *testing.T) {
	eachBackend(t, true, func(t *testing.T, b *backend) {
		s := newStack(t, b, fastRetry)
		s.groups = []devstack.GroupSpec{s.groups[1]}
		topic := s.prefix + topics.TopicInventory
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()

		stock := func(part int32, key, id string, version int64, extra string) *kgo.Record {
			v := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"chaos","type":"inventory.stock.updated","subject":%q,"time":"2026-11-27T10:00:00Z","version":%d,"datacontenttype":"application/json","data":{"sku":%q,"source_code":"default","quantity":1,"status":1%s}}`,
				id, key, version, key, extra)
			return &kgo.Record{Topic: topic, Partition: part, Key: []byte(key), Value: []byte(v)}
		}
		// fill is n bytes of base64 text: incompressible enough that a
		// snappy batch stays about its size, and valid inside a JSON string.
		fill := func(n int) string {
			return strings.Repeat("TWFueSBoYW5kcyBtYWtlIGxpZ2h0IHdvcmsu", n/36+1)[:n]
		}
		notJSON := func(n int) []byte { return []byte(`{"id":"` + fill(n-7)) } // no closing quote

		// Above max.message.bytes: refused by the broker, and by kgo's own
		// default limit before that.
		over := &kgo.Record{Topic: topic, Partition: 5, Key: []byte("SKU-over"), Value: notJSON(1100000)}
		raw := s.client(t, kgo.ProducerBatchMaxBytes(16<<20), kgo.ProducerBatchCompression(kgo.NoCompression()))
		errBroker := raw.ProduceSync(ctx, over).FirstErr()
		def := s.client(t)
		errClient := def.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 5, Key: over.Key, Value: over.Value}).FirstErr()
		for name, err := range map[string]error{"broker (uncompressed, 16 MiB client limit)": errBroker, "kgo default limit": errClient} {
			if !errors.Is(err, kerr.MessageTooLarge) {
				t.Errorf("a %d-byte record (max.message.bytes %d), %s: produce error %v, want MESSAGE_TOO_LARGE", len(over.Value), brokerMaxMessageBytes, name, err)
			} else {
				t.Logf("a %d-byte record (max.message.bytes %d), %s: %v", len(over.Value), brokerMaxMessageBytes, name, err)
			}
		}

		envelope := []byte(`{"specversion":"1.0","id":"big-envelope","type":"inventory.stock.updated","subject":"SKU-A","blob":"` + fill(900<<10) + `"}`)
		if _, err := topics.Decode(topics.DomainInventory, []byte("SKU-A"), envelope); !topics.IsPoison(err) {
			t.Fatalf("the 900 KiB envelope decodes with %v; want a poison error", err)
		}
		if ends, err := s.adm.ListEndOffsets(ctx, topic); err != nil {
			t.Fatal(err)
		} else if o, _ := ends.Lookup(topic, 5); o.Offset != 0 {
			t.Errorf("partition 5 holds %d records; the %d-byte record must not be in the topic", o.Offset, len(over.Value))
		}

		p := s.start("SHOPSTREAM_GROUPS=inventory")
		applied := func(id string) bool {
			for _, c := range s.sim.Calls() {
				if c.EventID == id {
					return true
				}
			}
			return false
		}
		committed := func() map[int32]int64 {
			offs, err := s.adm.FetchOffsets(ctx, "shopstream.inventory")
			if err != nil {
				t.Fatal(err)
			}
			got := map[int32]int64{}
			offs.Each(func(o kadm.OffsetResponse) {
				if o.Topic == topic && o.Err == nil && o.At >= 0 {
					got[o.Partition] = o.At
				}
			})
			return got
		}

		// Phase 1: records the processor can finish, the big ones first.
		// Everything is applied or dead-lettered and committed.
		recs := []*kgo.Record{
			// Partition 0: a 900 KiB poison record, then a good one.
			{Topic: topic, Partition: 0, Key: []byte("SKU-A"), Value: envelope},
			stock(0, "SKU-A", "after-big-envelope", 1, ""),
			// Partition 1: a 900 KiB valid event, then a good one.
			stock(1, "SKU-B", "big-valid", 1, `,"notes":"`+fill(900<<10)+`"`),
			stock(1, "SKU-B", "after-big-valid", 2, ""),
			// Partitions 2, 3 and 4: an ordinary record.
			stock(2, "SKU-C0", "before-uncompressed", 1, ""),
			stock(3, "SKU-E0", "before-compressed", 1, ""),
			stock(4, "SKU-D", "control", 1, ""),
		}
		if err := s.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		want := map[int32]int64{0: 2, 1: 2, 2: 1, 3: 1, 4: 1}
		waitFor(t, time.Minute, fmt.Sprintf("phase 1 applied and committed at %v", want), func() bool {
			for _, id := range []string{"after-big-envelope", "big-valid", "after-big-valid", "before-uncompressed", "before-compressed", "control"} {
				if !applied(id) {
					return false
				}
			}
			return maps.Equal(committed(), want)
		})
		dls, err := admin.ListDLQ(ctx, s.cl, topics.DLQTopic(topic), admin.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) != 1 || string(dls[0].Key) != "SKU-A" || !bytes.Equal(dls[0].Value, envelope) ||
			dls[0].ErrorClass != topics.ErrorClassPoison || len(dls[0].Problems) > 0 {
			t.Errorf("DLQ: %d records, want the 900 KiB envelope only, byte-exact, class poison", len(dls))
		} else {
			t.Logf("900 KiB envelope (> %d-byte partition fetch limit) dead-lettered: %s; 900 KiB valid event applied", processorFetchPart, clip(dls[0].Error, 120))
		}

		// Phase 2: on partitions 2 and 3 a poison record whose dead-letter
		// copy is too big for Kafka, the next record of its key and a record
		// of another key.
		stuck := []*kgo.Record{
			{Topic: topic, Partition: 2, Key: []byte("SKU-C"), Value: notJSON(1020000)},
			stock(2, "SKU-C", "after-uncompressed-same-key", 1, ""),
			stock(2, "SKU-C1", "after-uncompressed-other-key", 1, ""),
		}
		if err := raw.ProduceSync(ctx, stuck...).FirstErr(); err != nil {
			t.Fatalf("produce the 1,020,000-byte record uncompressed: %v", err)
		}
		snappy := s.client(t, kgo.ProducerBatchMaxBytes(16<<20), kgo.ProducerBatchCompression(kgo.SnappyCompression()))
		compressed := []*kgo.Record{
			{Topic: topic, Partition: 3, Key: []byte("SKU-E"), Value: bytes.Repeat([]byte("x"), 2<<20)},
			stock(3, "SKU-E", "after-compressed-same-key", 1, ""),
			stock(3, "SKU-E1", "after-compressed-other-key", 1, ""),
		}
		if err := snappy.ProduceSync(ctx, compressed...).FirstErr(); err != nil {
			t.Fatalf("produce the 2 MiB record snappy-compressed: %v", err)
		}
		t.Logf("produced %d bytes uncompressed and %d bytes snappy-compressed (> %d, the DLQ producer's batch limit)",
			len(stuck[0].Value), len(compressed[0].Value), kgoMaxBatchBytes)

		// The full dead-letter copy is refused as too large; the slim one
		// (no value, no original headers, shopstream.value.omitted) is
		// written at once, and the partitions go on.
		want[2], want[3] = want[2]+3, want[3]+3
		waitFor(t, time.Minute, fmt.Sprintf("phase 2 applied and committed at %v", want), func() bool {
			for _, st := range [][]*kgo.Record{stuck, compressed} {
				if !applied(eventID(st[1])) || !applied(eventID(st[2])) {
					return false
				}
			}
			return maps.Equal(committed(), want)
		})
		if f := dlqWriteFailures(t, p.log); len(f) != 0 {
			t.Errorf("dead-letter write failures %v, want none: a too-large copy is written slim at once", f)
		}
		dls, err = admin.ListDLQ(ctx, s.cl, topics.DLQTopic(topic), admin.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		slim := map[string]admin.DeadLetter{}
		for _, d := range dls {
			if _, ok := d.Header(topics.HeaderValueOmitted); ok {
				slim[string(d.Key)] = d
			}
		}
		for _, st := range [][]*kgo.Record{stuck, compressed} {
			d, ok := slim[string(st[0].Key)]
			if !ok {
				t.Errorf("no slim dead letter for %s in %d DLQ records", st[0].Key, len(dls))
				continue
			}
			size, _ := d.Header(topics.HeaderValueOmitted)
			if size != fmt.Sprint(len(st[0].Value)) || len(d.Value) != 0 || d.ErrorClass != topics.ErrorClassPoison ||
				d.OriginalPartition != st[0].Partition || d.OriginalOffset != st[0].Offset {
				t.Errorf("slim dead letter of %s: value omitted %q (want %d), %d value bytes, class %s, original %d@%d (want %d@%d)",
					st[0].Key, size, len(st[0].Value), len(d.Value), d.ErrorClass, d.OriginalPartition, d.OriginalOffset, st[0].Partition, st[0].Offset)
			} else {
				t.Logf("partition %d: %d-byte poison record dead-lettered slim (%s=%s), the partition went on", st[0].Partition, len(st[0].Value), topics.HeaderValueOmitted, size)
			}
		}
		if len(dls) != 3 {
			t.Errorf("DLQ: %d records, want the envelope and the two slim dead letters", len(dls))
		}
		p.kill()
	})
}

// client is a producer on the stack's Kafka with opts, closed with the test.
func (s *stack) client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func eventID(r *kgo.Record) string {
	var ev struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(r.Value, &ev)
	return ev.ID
}

// dlqWriteFailures reads a process log: the errors of its failed
// dead-letter writes, per source partition.
func dlqWriteFailures(t *testing.T, path string) map[int32][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int32][]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l struct {
			Message   string `json:"message"`
			Partition int32  `json:"partition"`
			Error     string `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Message == "dead-letter write failed; the partition waits for it" {
			out[l.Partition] = append(out[l.Partition], l.Error)
		}
	}
	return out
}
