//go:build !unix

package collector

// lockSupported: flock(2) does not exist here, so two exporters on one state file are not kept
// apart; New says so at start-up.
const lockSupported = false

// lockFile is a no-op where flock(2) does not exist.
func lockFile(string, string) (func(), error) { return func() {}, nil }
