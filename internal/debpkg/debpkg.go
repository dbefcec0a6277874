//go:build linux

// Package debpkg installs the Debian packages a test harness needs (nginx,
// Python libraries), as the harnesses under internal do when a program they
// drive is missing: with apt-get, once per machine, serialised between test
// processes by a lock file, with package services kept from starting while
// it runs. A test that cannot get its package fails saying what to install;
// it never skips.
//
// The package is for tests only.
package debpkg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// installTimeout bounds one Install, lock wait and package-list refresh
// included.
const installTimeout = 10 * time.Minute

// lockPath serialises installs between test processes (go test runs several
// packages' binaries at once).
var lockPath = filepath.Join(os.TempDir(), "tokenledger-debpkg-install.lock")

// Install installs packages with apt-get unless present reports, once this
// process holds the install lock, that another process already did. When
// the install fails it refreshes the package lists (apt-get update) and
// tries once more. The error names the packages and says how to install
// them by hand.
func Install(present func() bool, packages ...string) error {
	what := "apt-get install " + strings.Join(packages, " ")
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("apt-get is not available; install the Debian packages by hand (%s)", what)
	}
	if err := install(present, packages); err != nil {
		return fmt.Errorf("installing %s failed (%w); install them by hand (%s)", strings.Join(packages, ", "), err, what)
	}
	if !present() {
		return fmt.Errorf("apt-get installed %s but they still cannot be found; install them by hand (%s)", strings.Join(packages, ", "), what)
	}
	return nil
}

func install(present func() bool, packages []string) (err error) {
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open the install lock: %w", err)
	}
	defer lock.Close() // releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("take the install lock %s: %w", lockPath, err)
	}
	if present() {
		return nil
	}
	restore, err := denyServiceStarts(policyRC)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := restore(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	args := append([]string{"install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300"}, packages...)
	if err := aptGet(ctx, args...); err != nil {
		// The package lists may be missing or stale: refresh them once.
		if uerr := aptGet(ctx, "update", "-o", "DPkg::Lock::Timeout=300"); uerr != nil {
			return errors.Join(err, uerr)
		}
		return aptGet(ctx, args...)
	}
	return nil
}

// aptGet runs apt-get non-interactively; its error carries the last line of
// apt-get's output.
func aptGet(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get %s: %w: %s", args[0], err, lastLine(out))
	}
	return nil
}

// lastLine returns the last non-empty line of out.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// policyRC is the file invoke-rc.d asks whether a package may start its
// service.
const policyRC = "/usr/sbin/policy-rc.d"

// denyServiceStarts makes the policy-rc.d at path refuse every service
// start (exit 101) and returns the function that puts the previous file
// back, or removes it if there was none. A package such as nginx would
// otherwise start a system service on port 80.
func denyServiceStarts(path string) (restore func() error, err error) {
	old, err := os.ReadFile(path)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var mode fs.FileMode = 0o755
	if existed {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", path, err)
		}
		mode = fi.Mode().Perm()
	}
	const deny = "#!/bin/sh\n# Written by tokenledger's test harness while it installs packages; removed afterwards.\nexit 101\n"
	if err := os.WriteFile(path, []byte(deny), 0o755); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	// WriteFile keeps the mode of an existing file, and invoke-rc.d ignores a
	// policy it cannot execute.
	if err := os.Chmod(path, 0o755); err != nil {
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return func() error {
		if !existed {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("remove %s: %w", path, err)
			}
			return nil
		}
		if err := os.WriteFile(path, old, mode); err != nil {
			return fmt.Errorf("restore %s: %w", path, err)
		}
		return os.Chmod(path, mode)
	}, nil
}
