// Package testkit holds what the tests of several packages share: a log sink safe to read while
// it is written, free loopback ports, the lookup of external tools (promtool, prometheus), a
// manual clock and polling for a condition. It is imported by tests only.
package testkit

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// LockedBuffer is an io.Writer safe for concurrent writes (a process's two pipes, a logger) and
// for reading while it is written.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// FreePort returns a loopback address with a port free at the time of the call.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// RequireTool finds a command on PATH or in the repository's .tools/bin (found from the test's
// working directory upwards). Without it the test is skipped on a developer's machine and fails
// when CI is set: CI installs it (make tools), so a missing tool there is a defect, not a skip.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if dir, err := os.Getwd(); err == nil {
		for d := dir; ; d = filepath.Dir(d) {
			p := filepath.Join(d, ".tools", "bin", name)
			if _, err := os.Stat(p); err == nil {
				return p
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required under CI but not installed (make tools installs it)", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// Clock is a manual clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// WaitFor polls ok every 5 ms until it holds, and fails the test after d.
func WaitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
