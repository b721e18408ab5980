//go:build !linux

package main

import "syscall"

// sysProcAttr: only Linux can tie a child's life to the harness; elsewhere
// the children exit when their stdin closes (broker, drain) or are killed
// by Close (redis-server).
func sysProcAttr() *syscall.SysProcAttr { return nil }
