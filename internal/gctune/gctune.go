// Package gctune sets the Go garbage collector of a shopstream process: a
// higher GC percent than Go's default, under a soft memory limit taken from
// the container's memory limit.
//
// A group's heap is small on purpose — MaxBuffered bounds its records in
// flight and small fetches bound what kgo buffers (make bench S6) — and with
// Go's default GOGC=100 the collector runs whenever the heap has grown by
// what is live, every few MiB: ~100 collections per million records, a
// quarter of the CPU a group spends (make bench S1: 1.5 µs per record at
// GOGC=100, 1.1 µs at 400, with 15-20 collections). Trading memory for that
// CPU is the Go team's advice for such a heap ("A Guide to the Go Garbage
// Collector"): GOGC=400 lets the heap grow to five times what is live
// (S6: peak RSS draining 1M records ~85 MiB instead of ~38), and the soft
// memory limit makes the collector work harder, instead of the container
// being killed, as the heap nears what the container may use.
//
// Both settings give way to the environment: GOGC and GOMEMLIMIT, which the
// Go runtime reads itself, are left in force when set.
package gctune

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultPercent is the GC percent a shopstream process runs with when
// GOGC is not set.
const DefaultPercent = 400

// limitShare is the share of the cgroup's memory limit that becomes the
// soft memory limit when GOMEMLIMIT is not set: the rest is for what the
// Go heap does not count (goroutine stacks are counted; the kernel's socket
// buffers and page tables are not) and for the collector's reaction time.
const limitShare = 0.9

// noLimit is the soft memory limit the runtime reports when none is set.
const noLimit = math.MaxInt64

// Settings is what Apply chose, for the start-up log.
type Settings struct {
	// Percent is the GC percent in force (-1: the collector is off).
	Percent int
	// PercentFrom says where it came from: "GOGC" or "default".
	PercentFrom string
	// Limit is the soft memory limit in bytes (math.MaxInt64: none).
	Limit int64
	// LimitFrom says where it came from: "GOMEMLIMIT", "cgroup" (90% of
	// the memory limit of the process's cgroup) or "none".
	LimitFrom string
	// CgroupErr is why the cgroup's memory limit could not be read, if
	// it could not (the process then runs without a soft limit).
	CgroupErr error
}

// Apply sets the collector as the package describes and returns the
// settings in force. It reads the process's own environment, as the
// runtime did.
func Apply() Settings {
	return apply(os.Getenv, os.DirFS("/"))
}

// apply is Apply reading /proc/self/cgroup and /sys/fs/cgroup from root.
func apply(getenv func(string) string, root fs.FS) Settings {
	var s Settings
	if getenv("GOGC") != "" {
		s.PercentFrom = "GOGC"
		s.Percent = debug.SetGCPercent(-1) // read it back: the runtime parsed GOGC
		debug.SetGCPercent(s.Percent)
	} else {
		s.PercentFrom, s.Percent = "default", DefaultPercent
		debug.SetGCPercent(DefaultPercent)
	}
	if getenv("GOMEMLIMIT") != "" {
		s.LimitFrom, s.Limit = "GOMEMLIMIT", debug.SetMemoryLimit(-1) // -1 reads it
		return s
	}
	limit, err := cgroupMemoryLimit(root)
	s.CgroupErr = err
	if err != nil || limit == 0 {
		s.LimitFrom, s.Limit = "none", debug.SetMemoryLimit(-1)
		return s
	}
	s.LimitFrom, s.Limit = "cgroup", int64(float64(limit)*limitShare)
	debug.SetMemoryLimit(s.Limit)
	return s
}

// cgroupMemoryLimit returns the memory limit of the process's cgroup in
// bytes, the lowest along its path up to the root, or 0 for none. It reads
// cgroup v1's memory controller if the process has one (a hybrid system
// mounts v2 as well, without the memory controller), else cgroup v2.
func cgroupMemoryLimit(root fs.FS) (int64, error) {
	f, err := root.Open("proc/self/cgroup")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // not Linux: no cgroups
	}
	if err != nil {
		return 0, fmt.Errorf("cgroup memory limit: %w", err)
	}
	defer f.Close()
	var v1, v2 string
	found1, found2 := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		id, rest, ok1 := strings.Cut(sc.Text(), ":")
		controllers, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			continue
		}
		if id == "0" && controllers == "" {
			v2, found2 = p, true
		}
		for c := range strings.SplitSeq(controllers, ",") {
			if c == "memory" {
				v1, found1 = p, true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("cgroup memory limit: /proc/self/cgroup: %w", err)
	}
	switch {
	case found1:
		return lowestLimit(root, "sys/fs/cgroup/memory", v1, "memory.limit_in_bytes")
	case found2:
		return lowestLimit(root, "sys/fs/cgroup", v2, "memory.max")
	}
	return 0, nil
}

// lowestLimit reads file in the directory of the cgroup p under mount and
// in each of its parents and returns the lowest limit, 0 for none. A file
// that is missing (the root cgroup has none; a cgroup namespace shows the
// container's cgroup at the mount's root, under a path of the host's) is
// skipped.
func lowestLimit(root fs.FS, mount, p, file string) (int64, error) {
	var lowest int64
	for dir := path.Clean("/" + p); ; dir = path.Dir(dir) {
		name := path.Join(mount, dir, file)
		b, err := fs.ReadFile(root, name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return 0, fmt.Errorf("cgroup memory limit: %w", err)
		default:
			v, err := parseLimit(strings.TrimSpace(string(b)))
			if err != nil {
				return 0, fmt.Errorf("cgroup memory limit: /%s: %w", name, err)
			}
			if v > 0 && (lowest == 0 || v < lowest) {
				lowest = v
			}
		}
		if dir == "/" {
			return lowest, nil
		}
	}
}

// parseLimit reads a cgroup memory limit: a number of bytes, or "max" (v2)
// for none. cgroup v1 writes no limit as a number near 2^63, which is none
// as well.
func parseLimit(s string) (int64, error) {
	if s == "max" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number of bytes: %q", s)
	}
	if v <= 0 || v >= 1<<62 {
		return 0, nil
	}
	return v, nil
}
