package ingest

import (
	"strings"
	"sync"
	"sync/atomic"
)

// validToken reports whether token can be a Jamf URL token at all: 16 to
// 64 characters from the URL-safe alphabet, which covers the UUIDs the
// installer hands out. Anything else is answered 404 without hashing it.
func validToken(token string) bool {
	if len(token) < 16 || len(token) > 64 {
		return false
	}
	for i := 0; i < len(token); i++ {
		switch c := token[i]; {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// maxCachedHashes bounds hashCache; a deployment has one token per channel,
// so this is far more than any real one needs.
const maxCachedHashes = 16384

// hashCache remembers the hash of tokens that belonged to an installation,
// so that the steady stream of webhooks from a fleet does not pay for an
// HMAC (and its allocations) on every request. It maps a token to a pure
// function of it, so a rotated or disabled installation is still seen at
// once: the read model is asked on every request. Only tokens that matched
// are kept, so made-up tokens cannot fill it; when full it starts over.
// The tokens stay in the process's memory, which holds SECRET_KEY already.
type hashCache struct {
	m sync.Map // token -> hash
	n atomic.Int64
}

func (c *hashCache) get(token string) (string, bool) {
	v, ok := c.m.Load(token)
	if !ok {
		return "", false
	}
	return v.(string), true
}

func (c *hashCache) put(token, hash string) {
	if c.n.Add(1) > maxCachedHashes {
		c.m.Clear()
		c.n.Store(1)
	}
	// The token is a slice of the request's path; a copy lets that go.
	c.m.Store(strings.Clone(token), hash)
}
