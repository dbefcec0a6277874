//go:build linux

package stack

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// procAttr returns the process attributes for initdb and postgres. The child
// gets its own process group, so a Ctrl-C in the terminal reaches only the
// parent, which then stops the server in order; Pdeathsig makes the kernel
// send SIGQUIT (immediate shutdown) to the child when the thread that started
// it exits, which StartProcess ties to the child's lifetime.
func procAttr(u *osUser) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if u != nil {
		attr.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}
	}
	return attr
}

// rootSupported reports whether StartPostgres can run the server as another
// user when the caller is root.
const rootSupported = true

// checkTraversable returns an error naming the first directory from / down
// to dir that u may not search, judged by owner, group and mode bits (access
// granted only by an ACL is not seen).
func checkTraversable(dir string, u *osUser) error {
	var chain []string
	for d := dir; ; d = filepath.Dir(d) {
		chain = append(chain, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		fi, err := os.Stat(chain[i])
		if err != nil {
			return fmt.Errorf("check %s: %w", chain[i], err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			continue
		}
		perm := fi.Mode().Perm()
		var bit os.FileMode
		switch {
		case st.Uid == u.uid:
			bit = 0o100
		case st.Gid == u.gid:
			bit = 0o010
		default:
			bit = 0o001
		}
		if perm&bit == 0 {
			return fmt.Errorf("directory %s (mode %04o, owner uid %d) is not traversable by user %s (uid %d), which runs PostgreSQL because this process is root: put the data directory under a directory with mode 0755 or 0711",
				chain[i], perm, st.Uid, u.name, u.uid)
		}
	}
	return nil
}

// ownerUID returns the owner of the file described by fi.
func ownerUID(fi os.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}

// postmasterRunning reports whether pid is a live process whose working
// directory is dataDir; a postmaster always runs inside its data directory,
// so this tells a live server apart from an unrelated process that reuses
// the pid recorded in a stale postmaster.pid. known is false when the answer
// cannot be determined.
func postmasterRunning(pid int, dataDir string) (running, known bool) {
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	if _, err := os.Stat(proc); err != nil {
		return false, os.IsNotExist(err)
	}
	cwd, err := os.Readlink(filepath.Join(proc, "cwd"))
	if err != nil {
		// A process we may not inspect does not run as us or as the user we
		// run the server as, so it cannot own this data directory.
		return false, os.IsPermission(err)
	}
	a, errA := os.Stat(cwd)
	b, errB := os.Stat(dataDir)
	if errA != nil || errB != nil {
		return cwd == dataDir, true
	}
	return os.SameFile(a, b), true
}
