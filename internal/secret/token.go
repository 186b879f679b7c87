package secret

import (
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Reasons OpenToken refuses a token.
var (
	// ErrTokenInvalid is a token that was not made by SignToken under this
	// SECRET_KEY for this purpose, or was altered.
	ErrTokenInvalid = errors.New("token is not valid")
	// ErrTokenExpired is a genuine token whose time is up.
	ErrTokenExpired = errors.New("token expired")
)

// maxTokenLength bounds what OpenToken reads: a cookie or form field far
// longer than any token SignToken makes is refused before any work.
const maxTokenLength = 8 << 10

// SignToken returns payload signed for purpose until expires, as text safe
// for a cookie, a form field or a URL: base64url(payload) "." unix expiry
// "." base64url(mac). The payload is signed, not encrypted: it must hold
// nothing secret. A token signed for one purpose never opens for another.
func (k *Keys) SignToken(purpose string, payload []byte, expires time.Time) string {
	body := base64.RawURLEncoding.EncodeToString(payload) + "." + strconv.FormatInt(expires.Unix(), 10)
	return body + "." + base64.RawURLEncoding.EncodeToString(tokenMAC(k.cur.tokenKey, purpose, body))
}

// OpenToken returns the payload of token if SignToken made it for purpose
// under SECRET_KEY, or under SECRET_KEY_PREVIOUS during a key rotation (so
// that sessions and forms handed out before it still work), and it has not
// expired at now. It fails with
// ErrTokenInvalid or ErrTokenExpired; an altered token is always invalid,
// whatever its expiry says.
func (k *Keys) OpenToken(purpose, token string, now time.Time) ([]byte, error) {
	if token == "" || len(token) > maxTokenLength {
		return nil, ErrTokenInvalid
	}
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return nil, ErrTokenInvalid
	}
	body := token[:i]
	mac, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil || !k.verifyToken(purpose, body, mac) {
		return nil, ErrTokenInvalid
	}
	payload64, exp, ok := strings.Cut(body, ".")
	if !ok {
		return nil, ErrTokenInvalid
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return nil, ErrTokenInvalid
	}
	payload, err := base64.RawURLEncoding.DecodeString(payload64)
	if err != nil {
		return nil, ErrTokenInvalid
	}
	if !now.Before(time.Unix(unix, 0)) {
		return nil, ErrTokenExpired
	}
	return payload, nil
}

// verifyToken reports, in constant time, whether mac is tokenMAC of
// purpose and body under SECRET_KEY's or SECRET_KEY_PREVIOUS's token key.
func (k *Keys) verifyToken(purpose, body string, mac []byte) bool {
	if hmac.Equal(mac, tokenMAC(k.cur.tokenKey, purpose, body)) {
		return true
	}
	return k.prev != nil && hmac.Equal(mac, tokenMAC(k.prev.tokenKey, purpose, body))
}

// tokenMAC signs body for purpose under a token key. The purpose is
// length-prefixed, so no purpose and body can pass for another pair.
func tokenMAC(key []byte, purpose, body string) []byte {
	return sign(key, []byte(strconv.Itoa(len(purpose))+":"+purpose+"\x00"+body))
}
