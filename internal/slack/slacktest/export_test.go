package slacktest

import "time"

// SetClock makes the rate limits of s read the time from now, so that a
// test decides how much time passes between two posts.
func SetClock(s *Server, now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}
