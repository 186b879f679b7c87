// Package secret seals and hashes the project's secrets (Slack webhook URLs,
// Jamf URL tokens, inbound credentials, signed cookies) with keys derived
// from SECRET_KEY, and opens what was sealed under SECRET_KEY_PREVIOUS
// while a key is being rotated. It is a leaf package.
//
// A seal is bound to what it holds: its associated data names the
// installation and the purpose (webhook URL, token, inbound credentials),
// so a value copied from one installation's record to another's, or from
// one field to another, does not open.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrOpen is returned when a sealed value cannot be opened: it was sealed
// with another SECRET_KEY, for another installation or purpose, or it was
// altered.
var ErrOpen = errors.New("cannot open sealed value: wrong SECRET_KEY, sealed for another installation, or corrupted")

// MinKeyLength is the shortest SECRET_KEY accepted.
const MinKeyLength = 16

// Seal formats. v1 seals (before seals were bound) have no associated
// data; they still open, as Legacy, until they are sealed again.
const (
	legacyPrefix = "v1."
	boundPrefix  = "v2."
	// boundLabel starts the associated data of a v2 seal.
	boundLabel = "jackalope seal v2\x00"
)

// Purpose says what a sealed value is. It is part of the seal's associated
// data, so a value sealed for one purpose never opens as another.
type Purpose string

// The purposes of sealed values.
const (
	WebhookURL  Purpose = "webhook-url"
	JamfToken   Purpose = "jamf-token"
	InboundAuth Purpose = "inbound-auth"
)

// Opened says under which key and format a value was opened, and so
// whether it should be sealed again.
type Opened uint8

// How a value was opened.
const (
	// Current: a bound seal under SECRET_KEY; nothing to do.
	Current Opened = iota
	// Legacy: an unbound (v1) seal under SECRET_KEY.
	Legacy
	// Previous: a seal under SECRET_KEY_PREVIOUS.
	Previous
)

// Stale reports whether a value opened this way should be sealed again.
func (o Opened) Stale() bool { return o != Current }

// keySet is every key derived from one SECRET_KEY.
type keySet struct {
	aead    cipher.AEAD
	hashKey []byte
	authKey []byte
	signKey []byte
	// tokenKey signs the console's session cookie, its sign-in state and
	// its CSRF tokens (see SignToken).
	tokenKey    []byte
	fingerprint string
}

// Keys holds the keys derived from SECRET_KEY and, during a rotation, from
// SECRET_KEY_PREVIOUS. New seals, hashes and signatures use SECRET_KEY;
// the previous key only opens and verifies. It is safe for concurrent use.
type Keys struct {
	cur  *keySet
	prev *keySet // nil without SECRET_KEY_PREVIOUS
}

// New derives the keys of secretKey, without a previous key.
func New(secretKey string) (*Keys, error) {
	return NewWithPrevious(secretKey, "")
}

// NewWithPrevious derives the keys of secretKey and, unless previousKey is
// empty, of previousKey, which then opens old seals and verifies old
// signatures and token hashes until everything is sealed again.
func NewWithPrevious(secretKey, previousKey string) (*Keys, error) {
	cur, err := derive(secretKey)
	if err != nil {
		return nil, err
	}
	k := &Keys{cur: cur}
	if previousKey == "" {
		return k, nil
	}
	if previousKey == secretKey {
		return nil, errors.New("the previous secret key is the same as the secret key")
	}
	if k.prev, err = derive(previousKey); err != nil {
		return nil, fmt.Errorf("previous key: %w", err)
	}
	return k, nil
}

// derive derives the sealing, hashing, signing and token keys from secretKey with
// HKDF-SHA256, one label each, so no key is used for two purposes.
func derive(secretKey string) (*keySet, error) {
	if len(secretKey) < MinKeyLength {
		return nil, fmt.Errorf("secret key must be at least %d characters", MinKeyLength)
	}
	d := func(label string) ([]byte, error) {
		return hkdf.Key(sha256.New, []byte(secretKey), nil, "jackalope "+label, 32)
	}
	sealKey, err := d("seal v1")
	if err != nil {
		return nil, fmt.Errorf("derive seal key: %w", err)
	}
	hashKey, err := d("token hash v1")
	if err != nil {
		return nil, fmt.Errorf("derive hash key: %w", err)
	}
	authKey, err := d("inbound auth hash v1")
	if err != nil {
		return nil, fmt.Errorf("derive inbound auth key: %w", err)
	}
	signKey, err := d("sign v1")
	if err != nil {
		return nil, fmt.Errorf("derive sign key: %w", err)
	}
	tokenKey, err := d("token v1")
	if err != nil {
		return nil, fmt.Errorf("derive token key: %w", err)
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	// The fingerprint is an HMAC keyed by the secret key over a fixed
	// label: it tells two keys apart without revealing either, and unlike a
	// plain hash of the key it cannot be checked against guesses without
	// the key.
	fp := hmac.New(sha256.New, []byte(secretKey))
	fp.Write([]byte("jackalope key fingerprint v1"))
	return &keySet{
		aead:        aead,
		hashKey:     hashKey,
		authKey:     authKey,
		signKey:     signKey,
		tokenKey:    tokenKey,
		fingerprint: hex.EncodeToString(fp.Sum(nil)[:16]),
	}, nil
}

// Previous returns the keys of SECRET_KEY_PREVIOUS alone, or nil when there
// is none: what hashed the tokens that are not hashed again yet.
func (k *Keys) Previous() *Keys {
	if k.prev == nil {
		return nil
	}
	return &Keys{cur: k.prev}
}

// Fingerprint identifies SECRET_KEY without revealing it: services compare
// fingerprints to find out whether they hold the same key.
func (k *Keys) Fingerprint() string { return k.cur.fingerprint }

// Holds reports whether fingerprint is that of SECRET_KEY or of
// SECRET_KEY_PREVIOUS.
func (k *Keys) Holds(fingerprint string) bool {
	return fingerprint == k.cur.fingerprint || k.prev != nil && fingerprint == k.prev.fingerprint
}

// Seal encrypts plaintext for installationID and purpose p with
// AES-256-GCM under SECRET_KEY and a random nonce, and returns it as text
// safe for SQL and JSON: "v2." + base64url(nonce || ciphertext).
func (k *Keys) Seal(p Purpose, installationID, plaintext string) string {
	return boundPrefix + seal(k.cur.aead, []byte(plaintext), boundData(p, installationID))
}

// SealLegacy seals plaintext the way releases before bound seals did: v1,
// no associated data. Nothing in Jackalope makes such seals any more;
// tests use it to make the records an upgrade finds.
func (k *Keys) SealLegacy(plaintext string) string {
	return legacyPrefix + seal(k.cur.aead, []byte(plaintext), nil)
}

func seal(aead cipher.AEAD, plaintext, data []byte) string {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("secret: crypto/rand failed: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plaintext, data))
}

// boundData is the associated data of a v2 seal.
func boundData(p Purpose, installationID string) []byte {
	return []byte(boundLabel + string(p) + "\x00" + installationID)
}

// Open reverses Seal for the same purpose and installation, under
// SECRET_KEY or SECRET_KEY_PREVIOUS, and opens legacy (v1) seals, which
// are bound to nothing. It says how the value was opened, so that callers
// seal stale values again. It fails with ErrOpen, never with garbage.
func (k *Keys) Open(p Purpose, installationID, sealed string) (string, Opened, error) {
	var (
		data []byte
		how  = Current
	)
	rest, ok := strings.CutPrefix(sealed, boundPrefix)
	if ok {
		data = boundData(p, installationID)
	} else if rest, ok = strings.CutPrefix(sealed, legacyPrefix); ok {
		how = Legacy
	} else {
		return "", Current, fmt.Errorf("%w (unknown format)", ErrOpen)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(raw) < k.cur.aead.NonceSize()+k.cur.aead.Overhead() {
		return "", Current, fmt.Errorf("%w (malformed)", ErrOpen)
	}
	if plain, ok := open(k.cur.aead, raw, data); ok {
		return plain, how, nil
	}
	if k.prev != nil {
		if plain, ok := open(k.prev.aead, raw, data); ok {
			return plain, Previous, nil
		}
	}
	return "", Current, ErrOpen
}

func open(aead cipher.AEAD, raw, data []byte) (string, bool) {
	n := aead.NonceSize()
	plain, err := aead.Open(nil, raw[:n], raw[n:], data)
	if err != nil {
		return "", false
	}
	return string(plain), true
}

// OpenWebhook opens the sealed Slack webhook URL of installationID. It is
// what the dispatcher uses: a URL sealed for another installation does not
// open.
func (k *Keys) OpenWebhook(installationID, sealed string) (string, error) {
	url, _, err := k.Open(WebhookURL, installationID, sealed)
	return url, err
}

// HashToken returns the hex HMAC-SHA256 of a Jamf URL token under
// SECRET_KEY. Stores and the read model index installations by it; the
// token itself is never kept in the clear. During a rotation, tokens not
// hashed again yet carry Previous().HashToken.
func (k *Keys) HashToken(token string) string {
	return mac(k.cur.hashKey, token)
}

// HashInboundAuth returns the hex HMAC-SHA256 under SECRET_KEY of the
// credentials Jamf Pro must send with a webhook (in the canonical form of
// registry.BasicCredential or registry.HeaderCredential).
func (k *Keys) HashInboundAuth(credential string) string {
	return mac(k.cur.authKey, credential)
}

// CheckInboundAuth reports, in constant time, whether credential hashes to
// hash under SECRET_KEY or SECRET_KEY_PREVIOUS.
func (k *Keys) CheckInboundAuth(credential, hash string) bool {
	ok := hmac.Equal([]byte(mac(k.cur.authKey, credential)), []byte(hash))
	if k.prev != nil {
		ok = hmac.Equal([]byte(mac(k.prev.authKey, credential)), []byte(hash)) || ok
	}
	return ok
}

func mac(key []byte, s string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil))
}

// Sign returns a keyed MAC of data under SECRET_KEY: a stable value that
// reveals nothing of data (the channel key of a webhook added by hand).
// Values handed to a browser that must come back unaltered and in time are
// signed with SignToken instead.
func (k *Keys) Sign(data []byte) []byte {
	return sign(k.cur.signKey, data)
}

func sign(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}
