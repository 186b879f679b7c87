package bus

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Auth says how a connection to an external server proves who it is and
// checks the server: at most one of CredsFile and NKeyFile (a user and
// password, or a token, may instead be in the URL), and TLS files. Only
// paths are kept, never their contents, so an Auth can be logged.
type Auth struct {
	// CredsFile is a NATS credentials file (a user JWT and its nkey
	// seed), as nsc writes them for a server in operator mode.
	CredsFile string
	// NKeyFile holds a user nkey seed ("SU…"), as `jackalope nats-creds`
	// writes them for the users of deploy/nats.
	NKeyFile string
	// CAFile holds the PEM certificates that verify the server, instead of
	// the system's. Setting it requires TLS.
	CAFile string
	// CertFile and KeyFile are a client certificate and its key, for a
	// server that verifies its clients (mutual TLS). Both or neither.
	CertFile string
	KeyFile  string
}

// IsZero reports whether a has nothing set.
func (a Auth) IsZero() bool { return a == Auth{} }

// options returns the nats.go options that a asks for. A file that is
// missing or unreadable, or a seed that is not a user seed, is an error
// naming the file, never its contents.
func (a Auth) options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case a.CredsFile != "" && a.NKeyFile != "":
		return nil, errors.New("nats credentials: a creds file and an nkey seed file exclude each other")
	case a.CredsFile != "":
		if err := readable(a.CredsFile); err != nil {
			return nil, fmt.Errorf("nats credentials: %w", err)
		}
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(a.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey seed %s: %w", a.NKeyFile, seedError(err))
		}
		opts = append(opts, opt)
	}
	if a.CAFile != "" {
		opts = append(opts, nats.RootCAs(a.CAFile))
	}
	switch {
	case a.CertFile != "" && a.KeyFile != "":
		opts = append(opts, nats.ClientCert(a.CertFile, a.KeyFile))
	case a.CertFile != "" || a.KeyFile != "":
		return nil, errors.New("nats tls: a client certificate needs both its certificate and its key file")
	}
	return opts, nil
}

// readable reports a file that cannot be opened for reading.
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// seedError keeps what nats.go says about a seed file short: it may quote
// the file's first line, which could be a seed.
func seedError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe
	}
	return errors.New("not a user nkey seed (it starts with SU)")
}

// inboxPrefix is where the replies to a connection's requests arrive:
// _INBOX.<name>. Every service has its own, so that a server can let each
// user read only the replies meant for it (deploy/nats).
func inboxPrefix(name string) string {
	return "_INBOX." + strings.Map(func(r rune) rune {
		if r <= ' ' || r == '.' || r == '*' || r == '>' || r > '~' {
			return '_'
		}
		return r
	}, name)
}

// embeddedSeedFile is the nkey seed, in the embedded server's store
// directory, that the server's one user authenticates with. Every process
// on the data directory (the all-in-one, its `channels` and `dlq`
// commands) reads it; nothing else can connect.
const embeddedSeedFile = "client.nk"

// embeddedAuth returns the public key of the embedded server's user and the
// option that authenticates as that user, generating the seed under
// storeDir the first time.
func embeddedAuth(storeDir string) (public string, opt nats.Option, err error) {
	path := filepath.Join(storeDir, embeddedSeedFile)
	public, _, err = UserSeed(path)
	if err != nil {
		return "", nil, err
	}
	opt, err = nats.NkeyOptionFromSeed(path)
	if err != nil {
		return "", nil, fmt.Errorf("nats nkey seed %s: %w", path, seedError(err))
	}
	return public, opt, nil
}

// UserSeed returns the public key of the user nkey seed kept in path,
// generating the seed first (mode 0600, written whole before it appears)
// when there is none; created says it did. Two processes that race to
// create it end up with the same seed. The directory is created (0700) if
// needed.
func UserSeed(path string) (public string, created bool, err error) {
	if public, err := readUserSeed(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return public, false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("nkey seed: %w", err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", false, fmt.Errorf("nkey seed: generate: %w", err)
	}
	defer kp.Wipe()
	seed, err := kp.Seed()
	if err != nil {
		return "", false, fmt.Errorf("nkey seed: generate: %w", err)
	}
	defer wipe(seed)
	if err := linkNew(path, append(seed, '\n')); errors.Is(err, fs.ErrExist) {
		// Another process made it first: use theirs.
		public, err := readUserSeed(path)
		return public, false, err
	} else if err != nil {
		return "", false, fmt.Errorf("nkey seed: %w", err)
	}
	public, err = kp.PublicKey()
	if err != nil {
		return "", false, fmt.Errorf("nkey seed: %w", err)
	}
	return public, true, nil
}

// readUserSeed returns the public key of the user seed in path.
func readUserSeed(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("nkey seed: %w", err)
	}
	defer wipe(raw)
	kp, err := nkeys.FromSeed(bytes.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("nkey seed %s: not a user nkey seed", path)
	}
	defer kp.Wipe()
	public, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(public) {
		return "", fmt.Errorf("nkey seed %s: not a user nkey seed", path)
	}
	return public, nil
}

// linkNew writes data to a new file at path, mode 0600, so that a reader
// never sees it half written: it writes a temporary file beside it and
// links it into place, failing with fs.ErrExist when path exists.
func linkNew(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // the link, when made, keeps the file
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}
