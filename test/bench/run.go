package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// measured is one timed run over a backlog of records.
type measured struct {
	records  int       // records the rate is computed over
	start    time.Time // the consumer was created
	assigned time.Time // the consumer group assigned the partitions
	end      time.Time // the last record was finished
	stats    processor.GroupStats
	// cpu is the CPU time the harness process used from start to end
	// (the broker and redis-server run in processes of their own).
	cpu time.Duration
	// alloc is the memory the harness process allocated from start to
	// end, and gcs the garbage collections it ran meanwhile.
	alloc uint64
	gcs   uint32
}

// elapsed runs from the partition assignment to the last record finished:
// joining the consumer group is not throughput. Fetching is: it starts at
// the assignment, for shopstream and the baselines alike.
func (m measured) elapsed() time.Duration { return m.end.Sub(m.assigned) }

// rate is records per second over elapsed.
func (m measured) rate() float64 { return float64(m.records) / m.elapsed().Seconds() }

// cpuPerRecord is the process CPU time per record, in microseconds: less
// sensitive than rate to a busy neighbour, which takes wall time, not CPU.
func (m measured) cpuPerRecord() float64 { return float64(m.cpu.Microseconds()) / float64(m.records) }

// allocPerRecord is the memory allocated per record, in bytes: what drives
// the garbage collector's work, and unaffected by a busy neighbour.
func (m measured) allocPerRecord() float64 { return float64(m.alloc) / float64(m.records) }

// counters is the CPU time, allocated memory and garbage collections of
// the harness process so far; a run subtracts its start from its end.
type counters struct {
	cpu   time.Duration
	alloc uint64
	gcs   uint32
}

// readCounters reads them. ReadMemStats stops the world for a moment:
// it is called once at each end of a run, never per record.
func readCounters() counters {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return counters{cpu: cpuTime(), alloc: ms.TotalAlloc, gcs: ms.NumGC}
}

// since sets m's CPU, allocation and collection counts from start to now.
func (m *measured) since(start counters) {
	now := readCounters()
	m.cpu, m.alloc, m.gcs = now.cpu-start.cpu, now.alloc-start.alloc, now.gcs-start.gcs
}

var noop = processor.HandlerFunc(func(context.Context, *topics.Event) error { return nil })

// runShopstream runs a Processor with one group, cfg, until n records have
// finished (any outcome), then shuts it down gracefully. atEnd, if set, runs
// when the n-th record finished, before the shutdown (heap profiles).
func runShopstream(ctx context.Context, brokers []string, versions processor.VersionStore, cfg processor.GroupConfig, n int, timeout time.Duration, atEnd func()) (measured, error) {
	if cfg.Name == "" {
		cfg.Name = "bench"
	}
	if cfg.Topic == "" {
		cfg.Topic = topics.TopicInventory
	}
	cfg.Domain = topics.DomainInventory
	p, err := processor.New(processor.Options{
		Brokers:      brokers,
		Versions:     versions,
		Logger:       zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger(),
		DrainTimeout: 10 * time.Second,
	}, cfg)
	if err != nil {
		return measured{}, err
	}
	m := measured{records: n, start: time.Now()}
	c0 := readCounters()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }() // owned here: every return path waits for done

	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for m.end.IsZero() {
		select {
		case <-tick.C:
			if m.assigned.IsZero() && p.Ready(ctx) == nil {
				m.assigned = time.Now() // within a tick of onAssigned
			}
			if p.Stats()[0].Consumed >= int64(n) {
				m.end = time.Now()
				m.since(c0)
			}
		case err := <-done:
			if err == nil {
				err = errors.New("processor stopped by itself")
			}
			return m, err
		case <-deadline.C:
			cancel()
			<-done
			return m, fmt.Errorf("group %s: timed out after %s with %d of %d records finished", cfg.GroupID(), timeout, p.Stats()[0].Consumed, n)
		case <-ctx.Done():
			<-done
			return m, ctx.Err()
		}
	}
	if m.assigned.IsZero() {
		m.assigned = m.start // never seen ready: count the join too (conservative)
	}
	if atEnd != nil {
		atEnd()
	}
	cancel()
	if err := <-done; err != nil {
		return m, fmt.Errorf("group %s: shutdown: %w", cfg.GroupID(), err)
	}
	m.stats = p.Stats()[0]
	if s := m.stats; s.DeadLettered > 0 || s.Retried > 0 {
		return m, fmt.Errorf("group %s: %d records dead-lettered, %d retries: the benchmark records must all apply", cfg.GroupID(), s.DeadLettered, s.Retried)
	}
	return m, nil
}

// consumerOpts configure a baseline consumer; assigned receives the time of
// the first partition assignment.
func consumerOpts(brokers []string, topic, group string, assigned *atomic.Int64) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			assigned.CompareAndSwap(0, time.Now().UnixNano())
		}),
	}
}

// rawConsume is S1's baseline: a plain franz-go group consumer that does
// nothing with the records and commits after every poll. With decode set it
// is instead the bound S1 reports for context: the same consumer decoding
// and validating every record with topics.Decode, spread over GOMAXPROCS
// goroutines per poll — the decode cost without scheduling, ordering or
// per-record commits.
func rawConsume(ctx context.Context, brokers []string, topic, group string, n int, timeout time.Duration, decode bool) (measured, error) {
	var assigned atomic.Int64
	cl, err := kgo.NewClient(consumerOpts(brokers, topic, group, &assigned)...)
	if err != nil {
		return measured{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m := measured{records: n, start: time.Now()}
	c0 := readCounters()
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return m, fmt.Errorf("raw consumer: %d of %d records after %s: %w", got, n, timeout, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return m, fmt.Errorf("raw consumer: fetch: %w", ferr)
		}
		got += fs.NumRecords()
		if decode {
			if err := decodeAll(fs.Records()); err != nil {
				return m, err
			}
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			return m, fmt.Errorf("raw consumer: commit: %w", err)
		}
	}
	m.end = time.Now()
	m.since(c0)
	m.assigned = time.Unix(0, assigned.Load())
	return m, nil
}

// decodeAll decodes recs with topics.Decode on GOMAXPROCS goroutines.
func decodeAll(recs []*kgo.Record) error {
	n := runtime.GOMAXPROCS(0)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(recs); i += n {
				if _, err := topics.Decode(topics.DomainInventory, recs[i].Key, recs[i].Value); err != nil {
					errs[w] = fmt.Errorf("decode %s/%d@%d: %w", recs[i].Topic, recs[i].Partition, recs[i].Offset, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// perPartition is S3's baseline, the classic worker-per-partition consumer:
// one goroutine per partition handles its records one at a time, in offset
// order, and commits after each batch it was handed. It stops after n
// records or after window, whichever comes first: its rate is steady, so a
// window of it measures the same thing as the whole backlog.
func perPartition(ctx context.Context, brokers []string, topic, group string, h processor.Handler, n int, window time.Duration) (measured, error) {
	var assigned atomic.Int64
	cl, err := kgo.NewClient(consumerOpts(brokers, topic, group, &assigned)...)
	if err != nil {
		return measured{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	m := measured{start: time.Now()}
	var (
		done     atomic.Int64
		failOnce sync.Once
		failure  error
		workers  sync.WaitGroup
		feeds    = map[int32]chan []*kgo.Record{}
	)
	fail := func(err error) {
		failOnce.Do(func() { failure = err })
		cancel()
	}
	work := func(feed <-chan []*kgo.Record) {
		defer workers.Done()
		for batch := range feed {
			for _, r := range batch {
				ev, err := topics.Decode(topics.DomainInventory, r.Key, r.Value)
				if err != nil {
					fail(fmt.Errorf("baseline: decode %d@%d: %w", r.Partition, r.Offset, err))
					return
				}
				if err := h.Handle(ctx, ev); err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("baseline: handle %d@%d: %w", r.Partition, r.Offset, err))
					}
					return
				}
				if done.Add(1) == int64(n) {
					cancel()
				}
			}
			if err := cl.CommitRecords(ctx, batch[len(batch)-1]); err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("baseline: commit: %w", err))
				return
			}
		}
	}
	stop := time.AfterFunc(window, cancel)
	defer stop.Stop()
poll:
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			fail(fmt.Errorf("baseline: fetch: %w", ferr))
			break
		}
		for _, fp := range fs {
			for _, t := range fp.Topics {
				for _, p := range t.Partitions {
					if len(p.Records) == 0 {
						continue
					}
					feed := feeds[p.Partition]
					if feed == nil {
						feed = make(chan []*kgo.Record, 1)
						feeds[p.Partition] = feed
						workers.Add(1)
						go work(feed) // owned here: its feed closes below, and we wait
					}
					select {
					case feed <- p.Records:
					case <-ctx.Done():
						break poll
					}
				}
			}
		}
	}
	m.end = time.Now()
	for _, feed := range feeds {
		close(feed)
	}
	workers.Wait()
	if failure != nil {
		return m, failure
	}
	m.records = int(done.Load())
	m.assigned = time.Unix(0, assigned.Load())
	if m.records == 0 {
		return m, errors.New("baseline: no record handled")
	}
	return m, nil
}
