//go:build !linux

package stack

import (
	"os"
	"syscall"
)

// procAttr returns no special process attributes: there is no parent-death
// signal outside Linux, so the caller must stop the server, and the server
// shares the caller's process group, so a Ctrl-C in the terminal reaches it
// too.
func procAttr(*osUser) *syscall.SysProcAttr { return nil }

// rootSupported reports whether StartPostgres can run the server as another
// user when the caller is root.
const rootSupported = false

// checkTraversable is only needed when running as root, which is supported
// on Linux only.
func checkTraversable(string, *osUser) error { return nil }

// ownerUID is only needed when running as root, which is supported on Linux
// only.
func ownerUID(os.FileInfo) (uint32, bool) { return 0, false }

// postmasterRunning cannot inspect processes here, so the decision about a
// leftover postmaster.pid is left to the server itself.
func postmasterRunning(int, string) (running, known bool) { return false, false }
