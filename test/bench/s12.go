package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shopstream/shopstream/ordering"
	"github.com/shopstream/shopstream/processor"
	"github.com/shopstream/shopstream/topics"
)

// s12Concurrency is the group's Concurrency in S1 and S2.
const s12Concurrency = 64

// runS12 runs S1 (overhead: shopstream with a no-op handler and no fence,
// full decode and validation, vs raw franz-go consuming the same records and
// committing after every poll) and S2 (the same with the Redis version fence
// on a real redis-server, vs S1's shopstream run). Rounds are interleaved
// (raw, S1, S2, raw, ...) and each figure is the median of its rounds, so a
// noisy neighbour hits all three alike.
func runS12(ctx context.Context, c *config, doS1, doS2 bool) ([]row, []string, error) {
	n, rounds := 1_000_000, 3
	if c.quick {
		n, rounds = 100_000, 1
	}
	b, err := startBroker(ctx, topics.TopicInventory)
	if err != nil {
		return nil, nil, err
	}
	defer b.Close()
	ds, err := produceTimed(ctx, c, b.addrs, topics.TopicInventory, n, uniformKeys(1))
	if err != nil {
		return nil, nil, err
	}
	var (
		fence processor.VersionStore
		rdb   *redis.Client
	)
	if doS2 {
		srv, stopRedis, err := startRedis()
		if err != nil {
			return nil, nil, err
		}
		defer stopRedis()
		rdb = redis.NewClient(&redis.Options{Addr: srv.Addr()})
		defer rdb.Close()
		fence = ordering.NewVersionFence(rdb)
	}
	timeout := 2 * time.Minute
	var raws, decodes, ours, fenced []measured
	var redisPerRecord []float64 // redis-server CPU µs per fenced record
	// The broker's CPU µs per record of each run (group join included).
	var brokerRaw, brokerOurs, brokerFenced []float64
	perRecord := func(cpu time.Duration) float64 { return float64(cpu.Microseconds()) / float64(n) }
	brokerPerRecord := func(before time.Duration) float64 { return perRecord(b.cpu() - before) }
	for r := range rounds {
		if doS1 {
			bc := b.cpu()
			m, err := rawConsume(ctx, b.addrs, ds.topic, fmt.Sprintf("bench.s1-raw.%d", r), n, timeout, false)
			if err != nil {
				return nil, nil, err
			}
			brokerRaw = append(brokerRaw, brokerPerRecord(bc))
			raws = append(raws, m)
			logf("  round %d: raw franz-go %s", r+1, kRate(m.rate()))
			m, err = rawConsume(ctx, b.addrs, ds.topic, fmt.Sprintf("bench.s1-decode.%d", r), n, timeout, true)
			if err != nil {
				return nil, nil, err
			}
			decodes = append(decodes, m)
			logf("  round %d: raw franz-go + parallel decode %s", r+1, kRate(m.rate()))
		}
		bc := b.cpu()
		m, err := runShopstream(ctx, b.addrs, nil, processor.GroupConfig{
			Name: "s1", ID: fmt.Sprintf("bench.s1.%d", r), Handler: noop,
			Idempotency: processor.IdempotencyNone, Concurrency: s12Concurrency,
		}, n, timeout, nil)
		if err != nil {
			return nil, nil, err
		}
		brokerOurs = append(brokerOurs, brokerPerRecord(bc))
		ours = append(ours, m)
		logf("  round %d: shopstream %s", r+1, kRate(m.rate()))
		if doS2 {
			before, err := redisCPU(ctx, rdb)
			if err != nil {
				return nil, nil, err
			}
			bc := b.cpu()
			m, err := runShopstream(ctx, b.addrs, fence, processor.GroupConfig{
				Name: "s2", ID: fmt.Sprintf("bench.s2.%d", r), Handler: noop,
				Idempotency: processor.IdempotencyFence, Concurrency: s12Concurrency,
			}, n, timeout, nil)
			if err != nil {
				return nil, nil, err
			}
			if m.stats.Applied != int64(n) {
				return nil, nil, fmt.Errorf("S2: %d of %d records applied (%d skipped stale): every version is new", m.stats.Applied, n, m.stats.SkippedStale)
			}
			after, err := redisCPU(ctx, rdb)
			if err != nil {
				return nil, nil, err
			}
			brokerFenced = append(brokerFenced, brokerPerRecord(bc))
			fenced = append(fenced, m)
			redisPerRecord = append(redisPerRecord, perRecord(after-before))
			logf("  round %d: shopstream + fence %s", r+1, kRate(m.rate()))
		}
	}
	var rows []row
	var notes []string
	oursRate := median(ours)
	if doS1 {
		rawRate := median(raws)
		rows = append(rows, row{
			scenario: "S1 overhead: no-op sink, no fence, full decode + validation",
			ours:     kRate(oursRate), base: kRate(rawRate) + " raw franz-go, commit per poll",
			ratio: oursRate / rawRate, target: atLeast(0.5),
		})
	}
	if doS2 {
		fenceRate := median(fenced)
		rows = append(rows, row{
			scenario: "S2 fence: Redis version fence (real redis-server)",
			ours:     kRate(fenceRate), base: kRate(oursRate) + " S1 shopstream",
			ratio: fenceRate / oursRate, target: atLeast(0.5),
		})
	}
	if doS1 {
		notes = append(notes, fmt.Sprintf("S1 context: raw franz-go that also decodes and validates every record with topics.Decode on %d goroutines (no scheduling, no ordering, no handler): %s, %.2f of raw — the decode alone bounds what any processor with full validation can reach on this machine (shopstream: %.2f of that bound).",
			runtime.GOMAXPROCS(0), kRate(median(decodes)), median(decodes)/median(raws), oursRate/median(decodes)))
	}
	notes = append(notes, fmt.Sprintf("S1/S2 CPU per record (median; the harness process, which runs the consumers, and for S2 redis-server too; the broker runs apart): raw franz-go %s, shopstream %s, fenced %s + redis-server %s.",
		cpuText(raws, nil), cpuText(ours, nil), cpuText(fenced, nil), cpuText(nil, redisPerRecord)))
	notes = append(notes, fmt.Sprintf("S1/S2 broker CPU per record (median; kfake's process, read from /proc at 10 ms resolution, group join included): raw franz-go %s, shopstream %s, fenced %s.",
		cpuText(nil, brokerRaw), cpuText(nil, brokerOurs), cpuText(nil, brokerFenced)))
	notes = append(notes, fmt.Sprintf("S1/S2 memory allocated per record and garbage collections per run (median; the harness process): raw franz-go %s, shopstream %s, fenced %s.",
		allocText(raws), allocText(ours), allocText(fenced)))
	notes = append(notes, fmt.Sprintf("S1/S2: %d inventory.stock.updated records of ~%d bytes over %d SKUs and %d partitions; concurrency %d; median of %d interleaved rounds (rates: raw %s; shopstream %s; fenced %s).",
		n, len(appendRecord(nil, 0, skuName(0), baseVersion)), skuCount, partitions, s12Concurrency, rounds,
		rates(raws), rates(ours), rates(fenced)))

	if c.cpuProfile || c.memProfile {
		type profileRun struct {
			id    string
			fence processor.VersionStore
			cfg   processor.GroupConfig
		}
		runs := []profileRun{{"S1", nil, processor.GroupConfig{
			Name: "s1", ID: "bench.s1.profile", Handler: noop,
			Idempotency: processor.IdempotencyNone, Concurrency: s12Concurrency,
		}}}
		if doS2 {
			runs = append(runs, profileRun{"S2", fence, processor.GroupConfig{
				Name: "s2", ID: "bench.s2.profile", Handler: noop,
				Idempotency: processor.IdempotencyFence, Concurrency: s12Concurrency,
			}})
		}
		for _, r := range runs {
			note, err := profiled(c, r.id, func(atEnd func()) error {
				_, err := runShopstream(ctx, b.addrs, r.fence, r.cfg, n, timeout, atEnd)
				return err
			})
			if err != nil {
				return rows, notes, err
			}
			notes = append(notes, note)
		}
	}
	return rows, notes, nil
}

// median is the median rate of runs (NaN for none).
func median(runs []measured) float64 {
	rs := make([]float64, len(runs))
	for i, m := range runs {
		rs[i] = m.rate()
	}
	return medianOf(rs)
}

// medianOf is the median of vs, which it sorts (NaN for none).
func medianOf(vs []float64) float64 {
	if len(vs) == 0 {
		return nan()
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

// cpuText is the median CPU per record of runs, or of perRecord if runs is
// nil, in µs ("not run" for none).
func cpuText(runs []measured, perRecord []float64) string {
	for _, m := range runs {
		perRecord = append(perRecord, m.cpuPerRecord())
	}
	if len(perRecord) == 0 {
		return "not run"
	}
	return fmt.Sprintf("%.2f µs", medianOf(perRecord))
}

// allocText is the median memory allocated per record of runs and their
// median count of garbage collections ("not run" for none).
func allocText(runs []measured) string {
	if len(runs) == 0 {
		return "not run"
	}
	var perRecord, gcs []float64
	for _, m := range runs {
		perRecord = append(perRecord, m.allocPerRecord())
		gcs = append(gcs, float64(m.gcs))
	}
	return fmt.Sprintf("%.0f B and %.0f GCs", medianOf(perRecord), medianOf(gcs))
}

func rates(runs []measured) string {
	if len(runs) == 0 {
		return "not run"
	}
	s := ""
	for i, m := range runs {
		if i > 0 {
			s += ", "
		}
		s += kRate(m.rate())
	}
	return s
}

func nan() float64 { var z float64; return z / z }

// startProfiles starts the profiles c asks for, named after the scenario:
// a CPU profile until stop, and heap profiles before the run (-heap-base)
// and when its last record finished (atEnd), so that
// `go tool pprof -sample_index=alloc_space -diff_base <base> <heap>` shows
// what the run allocated.
func startProfiles(c *config, id string) (stop func() error, atEnd func(), err error) {
	prefix := filepath.Join(c.dir, c.stamp+"-"+id)
	var cpu *os.File
	if c.cpuProfile {
		if cpu, err = os.Create(prefix + "-cpu.pprof"); err != nil {
			return nil, nil, err
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, nil, err
		}
	}
	var heapErr error
	writeHeap := func(path string) {
		runtime.GC() // up-to-date in-use figures
		f, err := os.Create(path)
		if err == nil {
			err = pprof.WriteHeapProfile(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil && heapErr == nil {
			heapErr = err
		}
	}
	if c.memProfile {
		writeHeap(prefix + "-heap-base.pprof")
		atEnd = func() { writeHeap(prefix + "-heap.pprof") }
	}
	stop = func() error {
		if cpu != nil {
			pprof.StopCPUProfile()
			if err := cpu.Close(); err != nil {
				return err
			}
		}
		return heapErr
	}
	return stop, atEnd, nil
}

// profiled runs one extra, unmeasured shopstream run of scenario id (run,
// which calls atEnd when its last record finished) with the profiles the
// flags ask for, and returns the note naming them.
func profiled(c *config, id string, run func(atEnd func()) error) (string, error) {
	logf("  profiling an extra %s shopstream run", id)
	stopProfile, atEnd, err := startProfiles(c, id)
	if err != nil {
		return "", err
	}
	err = run(atEnd)
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err != nil {
		return "", err
	}
	return profileNote(c, id), nil
}

func profileNote(c *config, id string) string {
	prefix := filepath.Join(c.dir, c.stamp+"-"+id)
	var files []string
	if c.cpuProfile {
		files = append(files, prefix+"-cpu.pprof")
	}
	if c.memProfile {
		files = append(files, prefix+"-heap-base.pprof", prefix+"-heap.pprof")
	}
	return fmt.Sprintf("%s profiles (an extra, unmeasured shopstream run): %v", id, files)
}
