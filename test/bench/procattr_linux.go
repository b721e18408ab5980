package main

import "syscall"

// sysProcAttr makes the kernel kill a child (broker, drain run)
// when the harness dies without cleaning up, so none outlives the run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
