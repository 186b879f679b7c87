package secret

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// MinNewKeyLength is the shortest SECRET_KEY a service starts with. Keys of
// MinKeyLength to MinNewKeyLength-1 characters still open what they sealed
// (an all-in-one's generated key file from an older version), but are not
// taken from the environment.
const MinNewKeyLength = 32

// minDistinct is the fewest different characters a key may have: a random
// key of 32 hex digits has about 14, so fewer means a key typed by hand.
const minDistinct = 8

// ErrWeakKey is wrapped by CheckKey's answer.
var ErrWeakKey = errors.New("weak secret key")

// placeholders are the starts of the stand-in keys that sample files and
// documentation show, compared with the key's letters and digits only, in
// lower case ("change-me-to-openssl-rand-hex-32" is "changemetoopensslrandhex32").
var placeholders = []string{"changeme", "replaceme", "yoursecret", "placeholder", "example", "opensslrand", "secretkey", "insecure"}

// CheckKey says why key must not be used as SECRET_KEY, or nil: shorter
// than MinNewKeyLength characters, a placeholder from a sample file or the
// documentation (anything starting with "change-me", an unexpanded
// "$(openssl rand -hex 32)", ...), or too repetitive (a character or a
// pattern repeated). The answer wraps ErrWeakKey and never contains the key.
func CheckKey(key string) error {
	if len(key) < MinNewKeyLength {
		return fmt.Errorf("%w: %d characters, at least %d needed", ErrWeakKey, len(key), MinNewKeyLength)
	}
	var letters strings.Builder
	for _, r := range strings.ToLower(key) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			letters.WriteRune(r)
		}
	}
	plain := letters.String()
	for _, p := range placeholders {
		if strings.HasPrefix(plain, p) || p == "opensslrand" && strings.Contains(plain, p) {
			return fmt.Errorf("%w: a placeholder from a sample file, not a key", ErrWeakKey)
		}
	}
	if repetitive(key) {
		return fmt.Errorf("%w: a repeated character or pattern, not a random key", ErrWeakKey)
	}
	return nil
}

// repetitive reports whether key has fewer than minDistinct different
// characters or is one pattern repeated ("abcabcabc…").
func repetitive(key string) bool {
	distinct := map[rune]bool{}
	for _, r := range key {
		distinct[r] = true
	}
	if len(distinct) < minDistinct {
		return true
	}
	for period := 1; period <= len(key)/2; period++ {
		if key[period:] == key[:len(key)-period] {
			return true
		}
	}
	return false
}
