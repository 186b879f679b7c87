package render_test

import (
	"testing"

	"github.com/jackalope-app/jackalope/internal/jamf"
	"github.com/jackalope-app/jackalope/internal/render"
)

// BenchmarkMessage renders single messages, as a dispatcher does for each
// event of a channel that keeps up.
func BenchmarkMessage(b *testing.B) {
	for _, name := range []string{jamf.EventComputerCheckIn, jamf.EventComputerPolicyFinished, jamf.EventSmartGroupMobileDeviceMembershipChange} {
		env := sample(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				render.Message(env, linkOptions)
			}
		})
	}
}
