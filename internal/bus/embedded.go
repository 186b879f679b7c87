package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// embeddedServerName tells our embedded server from any other NATS server
// that a stale URL file might point at.
const embeddedServerName = "jackalope-embedded"

// embeddedReadyTimeout bounds how long startEmbedded waits for the server,
// JetStream recovery of a large store included.
const embeddedReadyTimeout = 30 * time.Second

// startEmbedded starts a single-node NATS server with JetStream storing
// under storeDir. It listens on a random loopback port only, so it never
// collides with a NATS server already on 4222, and takes only clients that
// sign in as user, the public nkey whose seed is kept in storeDir: any
// other local process is refused.
func startEmbedded(ctx context.Context, storeDir, user string, logger *slog.Logger) (*server.Server, error) {
	debug := logger.Enabled(ctx, slog.LevelDebug)
	opts := &server.Options{
		ServerName: embeddedServerName,
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   storeDir,
		MaxPayload: embeddedMaxPayload,
		Nkeys:      []*server.NkeyUser{{Nkey: user}},
		NoSigs:     true,
		Debug:      debug,
	}
	return startServer(ctx, opts, logger)
}

// startServer starts a NATS server from opts, logging through logger, and
// waits until it takes connections with JetStream enabled.
func startServer(ctx context.Context, opts *server.Options, logger *slog.Logger) (*server.Server, error) {
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats server: %w", err)
	}
	srv.SetLoggerV2(serverLog{log: logger.With("component", "nats-server")}, opts.Debug, false, false)
	srv.Start()

	deadline := embeddedReadyTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < deadline {
		deadline = time.Until(d)
	}
	if !srv.ReadyForConnections(deadline) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("embedded nats server: not ready for connections")
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("embedded nats server: jetstream did not start")
	}
	logger.Info("embedded nats server started", "url", srv.ClientURL(), "store", opts.StoreDir)
	return srv, nil
}

// serverLog adapts the NATS server's logger to slog. Notices are debug
// output: the server's start-up banner is noise in a service's log.
// Warnings and errors stay visible; a fatal error never exits the process.
type serverLog struct{ log *slog.Logger }

func (l serverLog) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLog) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLog) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLog) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLog) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLog) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }

// urlFileName is the file, in the embedded server's store directory, that
// holds its loopback client URL while it runs.
const urlFileName = "client.url"

// attachEmbedded connects to the embedded server another process runs on
// storeDir, signing in with auth (the seed kept beside the store), if its
// URL file names one that still answers with the server ID the file
// recorded; nil otherwise. After a kill -9 the file stays behind,
// and its port may since belong to another data directory's server.
func attachEmbedded(storeDir string, auth, opts []nats.Option, logger *slog.Logger) *nats.Conn {
	raw, err := os.ReadFile(filepath.Join(storeDir, urlFileName))
	if err != nil {
		return nil
	}
	u, id, ok := strings.Cut(strings.TrimSpace(string(raw)), " ")
	if !ok || id == "" || !strings.HasPrefix(u, "nats://127.0.0.1:") {
		return nil
	}
	// A bare probe first: the real options carry handlers that must run
	// only for the connection that is kept. It signs in like them.
	probe, err := nats.Connect(u, slices.Concat(auth, []nats.Option{nats.Timeout(2 * time.Second), nats.NoReconnect()})...)
	if err != nil {
		logger.Debug("stale embedded server url; starting our own", "url", u, "err", err)
		return nil
	}
	same := probe.ConnectedServerId() == id
	probe.Close()
	if !same {
		return nil
	}
	nc, err := nats.Connect(u, opts...)
	if err != nil {
		return nil
	}
	logger.Info("sharing the embedded nats server of another process on this data directory", "url", u)
	return nc
}

// writeURLFile records the server's URL and ID for other processes on
// storeDir and returns the file's path; failing to write it only costs them
// sharing the server.
func writeURLFile(storeDir string, srv *server.Server, logger *slog.Logger) string {
	path := filepath.Join(storeDir, urlFileName)
	if err := os.WriteFile(path, []byte(urlFileLine(srv)+"\n"), 0o600); err != nil {
		logger.Warn("cannot record the embedded server url", "path", path, "err", err)
		return ""
	}
	return path
}

func urlFileLine(srv *server.Server) string { return srv.ClientURL() + " " + srv.ID() }

// removeURLFile removes the URL file if it still names srv.
func removeURLFile(path string, srv *server.Server) {
	if path == "" {
		return
	}
	if raw, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(raw)) == urlFileLine(srv) {
		_ = os.Remove(path)
	}
}
