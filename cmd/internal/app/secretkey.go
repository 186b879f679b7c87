package app

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackalope-app/jackalope/internal/secret"
)

// secretKeyFile is where the all-in-one keeps the SECRET_KEY it generated.
const secretKeyFile = "secret_key"

// dataDirSecretKey returns the key kept in dataDir, generating it (32
// random bytes, hex, mode 0600) the first time, so that cookies, Jamf URL
// tokens and sealed webhook URLs survive a restart. created is true when it
// was generated now.
//
// A key file that fails secret.CheckKey but has at least
// secret.MinKeyLength characters (one written by hand, or by an older
// version) is still used, since every Jamf URL and stored webhook depends
// on it: weak then says why it should be rotated.
func dataDirSecretKey(dataDir string) (key string, created bool, weak error, err error) {
	path := filepath.Join(dataDir, secretKeyFile)
	if raw, err := os.ReadFile(path); err == nil {
		key = strings.TrimSpace(string(raw))
		if len(key) < secret.MinKeyLength {
			return "", false, nil, fmt.Errorf("SECRET_KEY: %s holds a key shorter than %d characters; remove it only if nothing was installed yet", path, secret.MinKeyLength)
		}
		return key, false, secret.CheckKey(key), nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, nil, fmt.Errorf("SECRET_KEY: read %s: %w", path, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", false, nil, fmt.Errorf("DATA_DIR: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", false, nil, fmt.Errorf("SECRET_KEY: generate: %w", err)
	}
	key = hex.EncodeToString(b)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process generated it first: use theirs.
		return dataDirSecretKey(dataDir)
	}
	if err != nil {
		return "", false, nil, fmt.Errorf("SECRET_KEY: create %s: %w", path, err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		_ = f.Close()
		return "", false, nil, fmt.Errorf("SECRET_KEY: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return "", false, nil, fmt.Errorf("SECRET_KEY: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", false, nil, fmt.Errorf("SECRET_KEY: close %s: %w", path, err)
	}
	return key, true, nil, nil
}
