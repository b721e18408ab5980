package realkafka

import "syscall"

// procAttr puts the broker in its own process group and has the kernel kill
// it if the test process dies without cleaning up.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
