package main

import (
	"os"
	"testing"
	"time"
)

// procCPU reads the same counters as cpuTime, from /proc: for this process
// the two agree to /proc's 10 ms resolution.
func TestProcCPU(t *testing.T) {
	for cpuTime() < 50*time.Millisecond {
		// Burn CPU until the process has used at least 50 ms.
	}
	got, want := procCPU(os.Getpid()), cpuTime()
	if got < want-20*time.Millisecond || got > want+20*time.Millisecond {
		t.Fatalf("procCPU = %s, cpuTime = %s: want them within 20 ms", got, want)
	}
	if procCPU(-1) != 0 {
		t.Fatal("procCPU of no process is not 0")
	}
}
