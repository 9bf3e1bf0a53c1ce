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
		v, err := cleanKey(getenv("ACTIVEPIECES_API_KEY"))
		if err != nil {
			return nil, fmt.Errorf("ACTIVEPIECES_API_KEY %w", err)
		}
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
	v, err := cleanKey(string(b))
	if err != nil {
		return false, fmt.Errorf("API key file %s %w", k.path, err)
	}
	if v == "" {
		return false, fmt.Errorf("API key file %s is empty", k.path)
	}
	old := k.key.Load()
	k.key.Store(&v)
	return old == nil || *old != v, nil
}

// cleanKey trims what editors and secret tools add around a key (a UTF-8 byte order mark,
// spaces, a final newline) and refuses what cannot be a key: several lines, or characters an
// HTTP header cannot carry. The error never contains the key.
func cleanKey(s string) (string, error) {
	s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "\uFEFF"))
	if strings.ContainsAny(s, "\r\n") {
		return "", errors.New("holds more than one line: put only the key in it")
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e {
			return "", fmt.Errorf("holds a character an HTTP header cannot carry (%U): the key is printable ASCII without spaces", c)
		}
	}
	return s, nil
}

// watch re-reads the key file on SIGHUP and every interval until ctx ends.
func (k *keySource) watch(ctx context.Context, hup <-chan os.Signal, interval time.Duration, log *slog.Logger) {
	if k.path == "" {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := "" // the error last logged: a failure is logged when it starts or changes
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
		case err != nil && err.Error() != failing:
			failing = err.Error()
			log.Warn("keeping the previous API key; logged again only when the error changes", "reason", reason, "err", err)
		case err != nil:
		case changed:
			failing = ""
			log.Info("API key reloaded", "reason", reason, "file", k.path)
		case failing != "":
			failing = ""
			log.Info("API key file readable again; key unchanged", "file", k.path)
		}
	}
}
