package gctune

import (
	"runtime/debug"
	"strings"
	"testing"
	"testing/fstest"
)

func cgroupFS(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for name, data := range files {
		m[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return m
}

func TestCgroupMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
		err   string
	}{
		{"no cgroups", map[string]string{}, 0, ""},
		{"v2 leaf", map[string]string{
			"proc/self/cgroup":                          "0::/kubepods/pod1/c1\n",
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "536870912\n",
			"sys/fs/cgroup/kubepods/pod1/memory.max":    "max\n",
		}, 512 * mib, ""},
		{"v2 parent lower", map[string]string{
			"proc/self/cgroup":                          "0::/kubepods/pod1/c1\n",
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "max\n",
			"sys/fs/cgroup/kubepods/pod1/memory.max":    "268435456\n",
		}, 256 * mib, ""},
		{"v2 namespace", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "134217728\n",
		}, 128 * mib, ""},
		{"v2 unlimited", map[string]string{
			"proc/self/cgroup":                    "0::/user.slice/session-1.scope\n",
			"sys/fs/cgroup/user.slice/memory.max": "max\n",
		}, 0, ""},
		{"v1 unlimited", map[string]string{
			"proc/self/cgroup": "4:memory:/process_api/0c\n1:cpu:/\n0::/\n",
			"sys/fs/cgroup/memory/process_api/0c/memory.limit_in_bytes": "9223372036854771712\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":                "9223372036854771712\n",
		}, 0, ""},
		{"hybrid: v1 memory wins", map[string]string{
			"proc/self/cgroup": "7:cpuacct,memory:/docker/abc\n0::/docker/abc\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "1073741824\n",
			"sys/fs/cgroup/docker/abc/memory.max":                   "268435456\n",
		}, 1024 * mib, ""},
		{"garbage", map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "lots\n",
		}, 0, `/sys/fs/cgroup/memory.max: not a number of bytes: "lots"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cgroupMemoryLimit(cgroupFS(tc.files))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("limit = %d, want %d", got, tc.want)
			}
		})
	}
}

// restoreRuntime puts the collector's settings back after a test of apply.
func restoreRuntime(t *testing.T) {
	percent := debug.SetGCPercent(100)
	debug.SetGCPercent(percent)
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestApply(t *testing.T) {
	limited := cgroupFS(map[string]string{
		"proc/self/cgroup":         "0::/\n",
		"sys/fs/cgroup/memory.max": "536870912\n",
	})
	t.Run("defaults", func(t *testing.T) {
		restoreRuntime(t)
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(noLimit)
		s := apply(env(nil), limited)
		want := Settings{Percent: DefaultPercent, PercentFrom: "default", Limit: 483183820, LimitFrom: "cgroup"}
		if s != want {
			t.Fatalf("settings %+v, want %+v", s, want)
		}
		if p := debug.SetGCPercent(100); p != DefaultPercent {
			t.Errorf("runtime GC percent %d, want %d", p, DefaultPercent)
		}
		if l := debug.SetMemoryLimit(-1); l != want.Limit {
			t.Errorf("runtime memory limit %d, want %d", l, want.Limit)
		}
	})
	t.Run("environment wins", func(t *testing.T) {
		restoreRuntime(t)
		// As the runtime would have read GOGC=150 and GOMEMLIMIT=1GiB.
		debug.SetGCPercent(150)
		debug.SetMemoryLimit(1 << 30)
		s := apply(env(map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB"}), limited)
		want := Settings{Percent: 150, PercentFrom: "GOGC", Limit: 1 << 30, LimitFrom: "GOMEMLIMIT"}
		if s != want {
			t.Fatalf("settings %+v, want %+v", s, want)
		}
		if p := debug.SetGCPercent(100); p != 150 {
			t.Errorf("runtime GC percent %d, want 150 left in force", p)
		}
		if l := debug.SetMemoryLimit(-1); l != 1<<30 {
			t.Errorf("runtime memory limit %d, want 1 GiB left in force", l)
		}
	})
	t.Run("no cgroup limit", func(t *testing.T) {
		restoreRuntime(t)
		debug.SetMemoryLimit(noLimit)
		s := apply(env(nil), cgroupFS(map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "max\n",
		}))
		if s.LimitFrom != "none" || s.Limit != noLimit || s.CgroupErr != nil {
			t.Fatalf("settings %+v, want no limit", s)
		}
	})
	t.Run("unreadable cgroup limit", func(t *testing.T) {
		restoreRuntime(t)
		debug.SetMemoryLimit(noLimit)
		s := apply(env(nil), cgroupFS(map[string]string{
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "lots\n",
		}))
		if s.LimitFrom != "none" || s.Limit != noLimit || s.CgroupErr == nil {
			t.Fatalf("settings %+v, want no limit and the error", s)
		}
		if s.Percent != DefaultPercent {
			t.Fatalf("GC percent %d, want %d whatever the cgroup", s.Percent, DefaultPercent)
		}
	})
}
