package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// keySource holds the API key: from a file (re-read on SIGHUP and when its content changes, so a
// rotated Kubernetes secret needs no restart) or from ACTIVEPIECES_API_KEY. The key is never
// logged or put in an error.
type keySource struct {
	path string
	key  atomic.Pointer[string]
}

func newKeySource(path string, getenv func(string) string) (*keySource, error) {
	k := &keySource{path: path}
	if path == "" {
		v := strings.TrimSpace(getenv("ACTIVEPIECES_API_KEY"))
		if v == "" {
			return nil, errors.New("no API key: set ACTIVEPIECES_API_KEY or --activepieces.api-key-file (or use --demo)")
		}
		k.key.Store(&v)
		return k, nil
	}
	if _, err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Get returns the current key.
func (k *keySource) Get() string { return *k.key.Load() }

// reload re-reads the file; changed reports whether the key differs from the one held.
func (k *keySource) reload() (changed bool, err error) {
	b, err := os.ReadFile(k.path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named below; the error needs nothing else
		}
		return false, fmt.Errorf("reading API key file %s: %w", k.path, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return false, fmt.Errorf("API key file %s is empty", k.path)
	}
	old := k.key.Load()
	k.key.Store(&v)
	return old == nil || *old != v, nil
}

// watch re-reads the key file on SIGHUP and every interval until ctx ends.
func (k *keySource) watch(ctx context.Context, hup <-chan os.Signal, interval time.Duration, log *slog.Logger) {
	if k.path == "" {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		reason := "file check"
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reason = "SIGHUP"
		case <-t.C:
		}
		changed, err := k.reload()
		switch {
		case err != nil:
			log.Warn("keeping the previous API key", "reason", reason, "err", err)
		case changed:
			log.Info("API key reloaded", "reason", reason, "file", k.path)
		}
	}
}
