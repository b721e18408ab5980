//go:build !linux

package main

import (
	"syscall"
	"time"
)

// sysProcAttr: only Linux can tie a child's life to the harness; elsewhere
// the children exit when their stdin closes (broker, drain) or are killed
// by Close (redis-server).
func sysProcAttr() *syscall.SysProcAttr { return nil }

// cpuTime is not measured here: the CPU figures read 0.
func cpuTime() time.Duration { return 0 }

// procCPU is not measured here: the broker's CPU figures read 0.
func procCPU(int) time.Duration { return 0 }
