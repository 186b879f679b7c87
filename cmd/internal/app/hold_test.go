package app

import (
	"testing"

	"github.com/jackalope-app/jackalope/internal/dispatch"
)

// TestHoldPerChannel checks what one channel may hold of DISPATCH_HOLD
// (and so the most a digest carries): three quarters, as the dispatch
// defaults, so that the all-in-one's 2,000 let a channel keep up with a
// storm of 1,500 events a second at the default pace.
func TestHoldPerChannel(t *testing.T) {
	for _, tt := range []struct{ hold, want int }{
		{0, 0}, // not set: the dispatch defaults
		{allInOneHold, 1500},
		{dispatch.DefaultHoldTotal, dispatch.DefaultHoldPerChannel},
		{100, 75},
	} {
		if got := holdPerChannel(tt.hold); got != tt.want {
			t.Errorf("holdPerChannel(%d) = %d; want %d", tt.hold, got, tt.want)
		}
	}
}
