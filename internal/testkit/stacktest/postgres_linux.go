//go:build linux

package stacktest

import (
	"os"
	"syscall"
)

// minShmFree is the free space /dev/shm needs before the shared cluster is
// put there.
const minShmFree = 2 << 30

// clusterBaseDir returns /dev/shm if it is a writable directory with at
// least minShmFree bytes available (container defaults are often 64 MiB),
// otherwise os.TempDir().
func clusterBaseDir() string {
	const shm = "/dev/shm"
	var st syscall.Statfs_t
	if err := syscall.Statfs(shm, &st); err != nil || uint64(st.Bavail)*uint64(st.Bsize) < minShmFree {
		return os.TempDir()
	}
	if syscall.Access(shm, 0o2|0o1) != nil {
		return os.TempDir()
	}
	return shm
}
