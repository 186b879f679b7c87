package app

import (
	"fmt"
	"net/http"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/jackalope-app/jackalope/internal/testwait"
)

// TestAllInOneGCPercent serves the all-in-one with and without GOGC: it
// sets the collector's target to allInOneGCPercent only when GOGC is not
// set, and gives the process's own back when it stops.
func TestAllInOneGCPercent(t *testing.T) {
	before := gcPercent(t)
	tests := []struct {
		name string
		gogc string
		want int64
	}{
		{name: "GOGC not set", want: allInOneGCPercent},
		{name: "GOGC set", gogc: "200", want: before},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := loopbackAddr(t)
			env := map[string]string{"LISTEN_ADDR": addr, "DATA_DIR": t.TempDir(), "SHUTDOWN_TIMEOUT": "5s", "GOGC": tt.gogc}
			_, stderr, stop := serveAllInOne(t, env)
			testwait.Until(t, 30*time.Second, func() error {
				if code, _ := httpGet(t, "http://"+addr+"/readyz"); code != http.StatusOK {
					return fmt.Errorf("/readyz answered %d; want 200\n%s", code, stderr)
				}
				return nil
			})
			if got := gcPercent(t); got != tt.want {
				t.Errorf("GC percent while serving = %d; want %d", got, tt.want)
			}
			stop()
			if got := gcPercent(t); got != before {
				t.Errorf("GC percent after serving = %d; want the process's own %d back", got, before)
			}
		})
	}
}

// gcPercent reads the collector's target without changing it.
func gcPercent(t *testing.T) int64 {
	t.Helper()
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Fatalf("/gc/gogc:percent is not supported")
	}
	return int64(s[0].Value.Uint64())
}
