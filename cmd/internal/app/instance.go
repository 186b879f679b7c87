package app

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackalope-app/jackalope/internal/config"
	"github.com/jackalope-app/jackalope/internal/redact"
)

// Needs says what a command acts on: the registry store, NATS, and the
// secret key the all-in-one keeps in DATA_DIR when SECRET_KEY is unset.
type Needs struct {
	Store, NATS, DataDirKey bool
}

// initFlag lets a command create a new, empty instance.
const initFlag = "--init"

// CommandArgs takes --init (or -init) out of a command's arguments, where
// ever it stands before a "--", and reports whether it was there.
func CommandArgs(args []string) (rest []string, init bool) {
	rest = make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(rest, args[i:]...), init
		}
		if a == initFlag || a == "-init" {
			init = true
			continue
		}
		rest = append(rest, a)
	}
	return rest, init
}

// CheckInstance refuses, unless init, a command that would start a new,
// empty instance instead of acting on the one that runs: an SQLite
// registry file, the embedded NATS store or the all-in-one's generated
// secret key that does not exist yet. Such a command would report "no
// installations" or "no dead letters" from a directory it just made, while
// the real ones sit elsewhere. The error says what is missing, where it
// looked, and which variable to set.
func CheckInstance(cfg config.Config, needs Needs, init bool) error {
	if init {
		return nil
	}
	dataDir := absolute(cfg.DataDir)
	var missing []string
	if needs.Store && cfg.Database.Driver == config.DriverSQLite && !exists(cfg.Database.Path) {
		if filepath.Clean(cfg.Database.Path) == filepath.Join(filepath.Clean(cfg.DataDir), "jackalope.db") {
			missing = append(missing, fmt.Sprintf("DATABASE_URL is not set and DATA_DIR (%s) holds no registry (jackalope.db)", dataDir))
		} else {
			missing = append(missing, fmt.Sprintf("DATABASE_URL names an SQLite registry that does not exist (%s)", absolute(cfg.Database.Path)))
		}
	}
	if needs.NATS && cfg.NATS.URL == "" && !exists(filepath.Join(cfg.DataDir, "nats")) {
		missing = append(missing, fmt.Sprintf("NATS_URL is not set and DATA_DIR (%s) holds no embedded NATS store (nats/)", dataDir))
	}
	if needs.DataDirKey && cfg.SecretKey == "" && !exists(filepath.Join(cfg.DataDir, secretKeyFile)) {
		missing = append(missing, fmt.Sprintf("SECRET_KEY is not set and DATA_DIR (%s) holds no %s", dataDir, secretKeyFile))
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s. Run the command where the instance keeps its data (set DATA_DIR), or point it at the services' "+
		"database and NATS (DATABASE_URL, NATS_URL); give %s to start a new, empty instance there", ErrNoInstance, strings.Join(missing, "; "), initFlag)
}

// ErrNoInstance is wrapped by CheckInstance's refusal.
var ErrNoInstance = errors.New("no instance to act on")

// Instance says in one line what a command acts on, credentials left out:
// "acting on DATA_DIR /srv/j: registry sqlite /srv/j/jackalope.db, NATS
// embedded (store /srv/j/nats)" or "acting on registry postgres
// postgres://jack:xxxxx@db:5432/j, NATS nats://n1:4222".
func Instance(cfg config.Config, needs Needs) string {
	var parts []string
	inDataDir := false
	if needs.Store {
		if cfg.Database.Driver == config.DriverSQLite {
			parts = append(parts, "registry sqlite "+absolute(cfg.Database.Path))
			inDataDir = strings.HasPrefix(absolute(cfg.Database.Path), absolute(cfg.DataDir)+string(filepath.Separator))
		} else {
			parts = append(parts, "registry "+cfg.Database.Describe())
		}
	}
	if needs.NATS {
		if cfg.NATS.URL == "" {
			parts = append(parts, "NATS embedded (store "+filepath.Join(absolute(cfg.DataDir), "nats")+")")
			inDataDir = true
		} else {
			parts = append(parts, "NATS "+redact.URL(cfg.NATS.URL))
		}
	}
	if needs.DataDirKey && cfg.SecretKey == "" {
		inDataDir = true
	}
	line := "acting on " + strings.Join(parts, ", ")
	if inDataDir {
		line = "acting on DATA_DIR " + absolute(cfg.DataDir) + ": " + strings.Join(parts, ", ")
	}
	return line
}

// announce writes Instance's line to w (stderr, so that the command's own
// output stays as it was for scripts), before the command's output.
func announce(w io.Writer, cfg config.Config, needs Needs) {
	// A command whose stderr is gone still does its work.
	_, _ = fmt.Fprintln(w, Instance(cfg, needs))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// absolute is path made absolute, so that a command run from another
// directory shows where it really acts; path itself if that fails.
func absolute(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}
