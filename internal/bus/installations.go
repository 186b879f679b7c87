package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jackalope-app/jackalope/internal/registry"
)

const (
	// rewatchWait is the pause before the installations watch is opened
	// again after it ended unexpectedly, and between failed attempts.
	rewatchWait = time.Second
	// reloadTimeout bounds the reload of the read model on a new watch.
	reloadTimeout = 30 * time.Second
)

// PutInstallation stores e under its ID in the KV bucket "installations".
func (c *Conn) PutInstallation(ctx context.Context, e registry.Entry) error {
	if err := validID(e.ID); err != nil {
		return fmt.Errorf("put installation: %w", err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("put installation %s: %w", e.ID, err)
	}
	kv, err := c.installations(ctx)
	if err != nil {
		return fmt.Errorf("put installation %s: %w", e.ID, err)
	}
	if _, err := kv.Put(ctx, e.ID, b); err != nil {
		return fmt.Errorf("put installation %s: %w", e.ID, err)
	}
	return nil
}

// DeleteInstallation removes id from the KV bucket. Removing an ID that is
// not there succeeds.
func (c *Conn) DeleteInstallation(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return fmt.Errorf("delete installation: %w", err)
	}
	kv, err := c.installations(ctx)
	if err != nil {
		return fmt.Errorf("delete installation %s: %w", id, err)
	}
	if err := kv.Purge(ctx, id); err != nil {
		return fmt.Errorf("delete installation %s: %w", id, err)
	}
	return nil
}

// InstallationKeys returns the IDs in the KV bucket, sorted; an empty bucket
// gives an empty slice.
func (c *Conn) InstallationKeys(ctx context.Context) ([]string, error) {
	kv, err := c.installations(ctx)
	if err != nil {
		return nil, fmt.Errorf("list installation keys: %w", err)
	}
	keys, err := kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list installation keys: %w", err)
	}
	return keys, nil
}

// GetInstallation returns the entry stored under id, or an error wrapping
// registry.ErrNotFound.
func (c *Conn) GetInstallation(ctx context.Context, id string) (registry.Entry, error) {
	if err := validID(id); err != nil {
		return registry.Entry{}, fmt.Errorf("get installation: %w", err)
	}
	kv, err := c.installations(ctx)
	if err != nil {
		return registry.Entry{}, fmt.Errorf("get installation %s: %w", id, err)
	}
	kve, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return registry.Entry{}, fmt.Errorf("get installation %s: %w", id, registry.ErrNotFound)
	}
	if err != nil {
		return registry.Entry{}, fmt.Errorf("get installation %s: %w", id, err)
	}
	e, err := decodeEntry(kve.Key(), kve.Value())
	if err != nil {
		return registry.Entry{}, fmt.Errorf("get installation %s: %w", id, err)
	}
	return e, nil
}

// installations returns the KV bucket "installations", looked up once.
func (c *Conn) installations(ctx context.Context) (jetstream.KeyValue, error) {
	return c.bucket(ctx, BucketInstallations)
}

// bucket returns the KV bucket name, looked up once.
func (c *Conn) bucket(ctx context.Context, name string) (jetstream.KeyValue, error) {
	c.kvMu.Lock()
	defer c.kvMu.Unlock()
	if kv, ok := c.kv[name]; ok {
		return kv, nil
	}
	kv, err := c.js.KeyValue(ctx, name)
	if err != nil {
		return nil, err
	}
	if c.kv == nil {
		c.kv = map[string]jetstream.KeyValue{}
	}
	c.kv[name] = kv
	return kv, nil
}

func decodeEntry(key string, value []byte) (registry.Entry, error) {
	var e registry.Entry
	if err := json.Unmarshal(value, &e); err != nil {
		return registry.Entry{}, fmt.Errorf("decode entry: %w", err)
	}
	// The key is the ID; a value that disagrees does not get to move.
	e.ID = key
	return e, nil
}

// Installations is the in-memory read model of the KV bucket
// "installations", indexed by ID and by token hash. It is safe for
// concurrent use. WatchInstallations returns one and keeps it current.
type Installations struct {
	mu      sync.RWMutex
	byID    map[string]registry.Entry
	byHash  map[string]string // token hash -> ID
	loaded  atomic.Bool
	stopped chan struct{} // closed when the watch has stopped for good
}

func newInstallations() *Installations {
	return &Installations{byID: map[string]registry.Entry{}, byHash: map[string]string{}, stopped: make(chan struct{})}
}

// ByTokenHash returns the entry whose TokenHash is hash.
func (s *Installations) ByTokenHash(hash string) (registry.Entry, bool) {
	if hash == "" {
		return registry.Entry{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.byHash[hash]
	if !ok {
		return registry.Entry{}, false
	}
	e, ok := s.byID[id]
	return e, ok
}

// ByID returns the entry with id.
func (s *Installations) ByID(id string) (registry.Entry, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.byID[id]
	return e, ok
}

// Len returns the number of entries.
func (s *Installations) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byID)
}

// Loaded reports whether the entries stored when the watch started have
// all been read. It stays true while the watch reconnects.
func (s *Installations) Loaded() bool { return s.loaded.Load() }

// put stores e, dropping the index of a token hash e no longer has.
func (s *Installations) put(e registry.Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.byID[e.ID]; ok && old.TokenHash != e.TokenHash {
		s.unindex(old)
	}
	s.byID[e.ID] = e
	if e.TokenHash != "" {
		s.byHash[e.TokenHash] = e.ID
	}
}

// remove drops id and its token hash.
func (s *Installations) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.byID[id]; ok {
		s.unindex(old)
		delete(s.byID, id)
	}
}

// keepOnly drops every entry whose ID is not in ids.
func (s *Installations) keepOnly(ids map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, e := range s.byID {
		if !ids[id] {
			s.unindex(e)
			delete(s.byID, id)
		}
	}
}

// unindex drops e's token hash unless it now belongs to another entry.
// The caller holds mu.
func (s *Installations) unindex(e registry.Entry) {
	if s.byHash[e.TokenHash] == e.ID {
		delete(s.byHash, e.TokenHash)
	}
}

// WatchInstallations loads the KV bucket "installations" into a new
// Installations and returns it once every stored entry is in. A goroutine
// then applies puts and deletes as they happen, until ctx ends; after a
// reconnect, or when the watch breaks, it opens the watch again and
// resynchronises the model, which keeps serving what it had meanwhile. If ctx ends before the load completes, it
// returns ctx's error.
func (c *Conn) WatchInstallations(ctx context.Context) (*Installations, error) {
	kv, err := c.installations(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch installations: %w", err)
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch installations: %w", err)
	}
	s := newInstallations()
	if _, err := c.load(ctx, w, s); err != nil {
		_ = w.Stop()
		return nil, fmt.Errorf("watch installations: %w", err)
	}
	s.loaded.Store(true)
	c.log.Info("installations loaded", "count", s.Len())
	go c.follow(ctx, kv, w, s)
	return s, nil
}

// load applies the initial values of w to s and returns the IDs it saw.
func (c *Conn) load(ctx context.Context, w jetstream.KeyWatcher, s *Installations) (map[string]bool, error) {
	seen := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watch closed before the initial values were read")
			}
			if e == nil {
				return seen, nil
			}
			if c.apply(s, e) {
				seen[e.Key()] = true
			}
		}
	}
}

// follow applies w's updates to s until ctx ends. When the watch breaks,
// or the connection comes back after an outage (a restarted server has
// lost the watch's ephemeral consumer), it opens the watch again and
// resynchronises s.
func (c *Conn) follow(ctx context.Context, kv jetstream.KeyValue, w jetstream.KeyWatcher, s *Installations) {
	defer close(s.stopped)
	reconnected := c.nc.StatusChanged(nats.CONNECTED)
	defer c.nc.RemoveStatusListener(reconnected)
	for {
		again := c.applyUpdates(ctx, w, s, reconnected)
		_ = w.Stop()
		if ctx.Err() != nil || c.nc.IsClosed() {
			return
		}
		wait := rewatchWait
		if again {
			wait = 0
			c.log.Info("nats reconnected; reloading installations")
		} else {
			c.log.Warn("installations watch ended; opening it again")
		}
		if w = c.rewatch(ctx, kv, s, wait); w == nil {
			return
		}
	}
}

// rewatch opens a new watch after wait, loads it into s and drops what is
// no longer stored, retrying until it succeeds or ctx ends (then it
// returns nil).
func (c *Conn) rewatch(ctx context.Context, kv jetstream.KeyValue, s *Installations, wait time.Duration) jetstream.KeyWatcher {
	for {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		wait = rewatchWait
		if ctx.Err() != nil || c.nc.IsClosed() {
			return nil
		}
		w, err := kv.WatchAll(ctx)
		if err != nil {
			c.log.Warn("installations watch failed", "err", err)
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, reloadTimeout)
		seen, err := c.load(lctx, w, s)
		cancel()
		if err != nil {
			_ = w.Stop()
			c.log.Warn("installations reload failed", "err", err)
			continue
		}
		s.keepOnly(seen)
		c.log.Info("installations reloaded", "count", s.Len())
		return w
	}
}

// applyUpdates applies w's updates to s until ctx ends or w closes, which
// it reports with false, or the connection comes back after an outage,
// which it reports with true.
func (c *Conn) applyUpdates(ctx context.Context, w jetstream.KeyWatcher, s *Installations, reconnected <-chan nats.Status) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-reconnected:
			return true
		case e, ok := <-w.Updates():
			if !ok {
				return false
			}
			if e != nil {
				c.apply(s, e)
			}
		}
	}
}

// apply applies one KV change to s and reports whether the key is present
// afterwards.
func (c *Conn) apply(s *Installations, e jetstream.KeyValueEntry) bool {
	switch e.Operation() {
	case jetstream.KeyValuePut:
		entry, err := decodeEntry(e.Key(), e.Value())
		if err != nil {
			c.log.Error("unreadable installation in the read model; dropped", "installation", e.Key(), "err", err)
			s.remove(e.Key())
			return false
		}
		s.put(entry)
		c.log.Debug("installation updated", "installation", entry.ID, "status", string(entry.Status))
		return true
	default:
		s.remove(e.Key())
		c.log.Debug("installation removed", "installation", e.Key())
		return false
	}
}
