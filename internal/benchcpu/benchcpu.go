//go:build unix

// Package benchcpu reports a benchmark's CPU time per operation: the
// process's user and system time, which varies much less than ns/op when
// other work shares the cores.
package benchcpu

import (
	"syscall"
	"testing"
	"time"
)

// Start returns a function that reports, as cpu-ns/op, the CPU time the
// whole process used from Start until it is called, per b.N: everything
// in the process counts, an embedded server or a fake included.
func Start(b *testing.B) (report func()) {
	start := cpuTime(b)
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((cpuTime(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
