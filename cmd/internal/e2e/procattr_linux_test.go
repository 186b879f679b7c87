package e2e

import "syscall"

// dieWithParent makes a started service die with the test binary, so that
// a test run killed by its -timeout leaves no service behind holding a port
// or a NATS consumer.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
