//go:build unix

package collector

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockSupported: the state file is locked with flock(2).
const lockSupported = true

// lockFile takes an exclusive advisory lock on lock (lockPath of the state file at path), so two
// exporters never write one state file. The lock lasts until release is called or the process
// ends.
func lockFile(path, lock string) (release func(), err error) {
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking state file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state file %s is in use by another exporter (lock %s held)", path, lock)
		}
		return nil, fmt.Errorf("locking state file %s: %w", path, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
