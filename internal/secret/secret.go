// Package secret seals and hashes the project's secrets (Slack webhook URLs,
// Jamf URL tokens, signed cookies) with keys derived from SECRET_KEY.
// It is a leaf package.
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
// with another SECRET_KEY, or it was altered.
var ErrOpen = errors.New("cannot open sealed value: wrong SECRET_KEY or corrupted data")

// MinKeyLength is the shortest SECRET_KEY accepted.
const MinKeyLength = 16

const sealPrefix = "v1."

// Keys holds the keys derived from one SECRET_KEY. It is safe for
// concurrent use.
type Keys struct {
	aead    cipher.AEAD
	hashKey []byte
	signKey []byte
	// tokenKey signs the console's session cookie, its sign-in state and
	// its CSRF tokens (see SignToken).
	tokenKey []byte
}

// New derives the sealing, hashing, signing and token keys from secretKey with
// HKDF-SHA256, one label each, so no key is used for two purposes.
func New(secretKey string) (*Keys, error) {
	if len(secretKey) < MinKeyLength {
		return nil, fmt.Errorf("secret key must be at least %d characters", MinKeyLength)
	}
	derive := func(label string) ([]byte, error) {
		return hkdf.Key(sha256.New, []byte(secretKey), nil, "jackalope "+label, 32)
	}
	sealKey, err := derive("seal v1")
	if err != nil {
		return nil, fmt.Errorf("derive seal key: %w", err)
	}
	hashKey, err := derive("token hash v1")
	if err != nil {
		return nil, fmt.Errorf("derive hash key: %w", err)
	}
	signKey, err := derive("sign v1")
	if err != nil {
		return nil, fmt.Errorf("derive sign key: %w", err)
	}
	tokenKey, err := derive("token v1")
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
	return &Keys{aead: aead, hashKey: hashKey, signKey: signKey, tokenKey: tokenKey}, nil
}

// Seal encrypts plaintext with AES-256-GCM under a random nonce and returns
// it as text safe for SQL and JSON: "v1." + base64url(nonce || ciphertext).
func (k *Keys) Seal(plaintext string) string {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("secret: crypto/rand failed: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	out := k.aead.Seal(nonce, nonce, []byte(plaintext), nil)
	return sealPrefix + base64.RawURLEncoding.EncodeToString(out)
}

// Open reverses Seal. It fails with ErrOpen, never with garbage, when the
// value was sealed under another key or altered.
func (k *Keys) Open(sealed string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return "", fmt.Errorf("%w (unknown format)", ErrOpen)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(raw) < k.aead.NonceSize()+k.aead.Overhead() {
		return "", fmt.Errorf("%w (malformed)", ErrOpen)
	}
	n := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return "", ErrOpen
	}
	return string(plain), nil
}

// HashToken returns the hex HMAC-SHA256 of a Jamf URL token. Stores and
// the read model index installations by it; the token itself is never kept
// in the clear.
func (k *Keys) HashToken(token string) string {
	m := hmac.New(sha256.New, k.hashKey)
	m.Write([]byte(token))
	return hex.EncodeToString(m.Sum(nil))
}

// Sign returns a MAC of data, for values handed to a browser (the OAuth
// state cookie) that must come back unaltered.
func (k *Keys) Sign(data []byte) []byte {
	m := hmac.New(sha256.New, k.signKey)
	m.Write(data)
	return m.Sum(nil)
}

// Verify reports whether mac is Sign(data), in constant time.
func (k *Keys) Verify(data, mac []byte) bool {
	return hmac.Equal(k.Sign(data), mac)
}
