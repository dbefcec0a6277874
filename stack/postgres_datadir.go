package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ErrDataDirInUse is returned (wrapped) by StartPostgres when a PostgreSQL
// server is already running on the data directory.
var ErrDataDirInUse = errors.New("PostgreSQL data directory is in use by a running server")

// prepareDataDir makes dataDir a cluster owned by runAs (nil: the caller),
// running initdb if it holds none yet, and returns initdb's output.
//
// initdb writes into a fresh sibling directory whose entries are then moved
// into dataDir with PG_VERSION last, so an initdb killed halfway never
// leaves something that looks like a cluster.
func prepareDataDir(ctx context.Context, dataDir string, bins pgBinaries, runAs *osUser, cfg PostgresConfig) ([]byte, error) {
	parent := filepath.Dir(dataDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("create parent directory: %w", err)
	}
	if runAs != nil {
		if err := checkTraversable(parent, runAs); err != nil {
			return nil, err
		}
	}
	fi, err := os.Stat(dataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("data directory: %w", err)
	case !fi.IsDir():
		return nil, errors.New("data directory path is not a directory")
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err == nil {
		return nil, chownTree(dataDir, runAs)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if len(entries) > 0 {
		return nil, errors.New("data directory is neither empty nor a PostgreSQL cluster (no PG_VERSION): empty it or choose another DataDir")
	}

	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dataDir)+".initdb-")
	if err != nil {
		return nil, fmt.Errorf("initdb: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if err := chownTree(tmp, runAs); err != nil {
		return nil, fmt.Errorf("initdb: %w", err)
	}
	args := []string{"-D", tmp, "-A", "trust", "-E", "UTF8", "--no-locale", "-U", cfg.User}
	if !cfg.Durable {
		args = append(args, "--no-sync")
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bins.initdb, args...)
	cmd.Dir = tmp
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = procAttr(runAs)
	proc, err := StartProcess(cmd)
	if err != nil {
		return nil, fmt.Errorf("initdb: %w", err)
	}
	<-proc.done
	if err := proc.exitError(); err != nil {
		return nil, fmt.Errorf("initdb: %w%s", err, summarize(out.Bytes()))
	}

	entries, err = os.ReadDir(tmp)
	if err != nil {
		return nil, fmt.Errorf("initdb: %w", err)
	}
	slices.SortStableFunc(entries, func(a, b fs.DirEntry) int {
		return boolCompare(a.Name() == "PG_VERSION", b.Name() == "PG_VERSION")
	})
	for _, e := range entries {
		if err := os.Rename(filepath.Join(tmp, e.Name()), filepath.Join(dataDir, e.Name())); err != nil {
			return nil, fmt.Errorf("initdb: move cluster into place: %w", err)
		}
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("initdb: %w", err)
	}
	if err := chownTree(dataDir, runAs); err != nil {
		return nil, fmt.Errorf("initdb: %w", err)
	}
	return out.Bytes(), nil
}

// readMajorVersion returns the major version recorded in the cluster.
func readMajorVersion(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return 0, fmt.Errorf("read cluster version: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read cluster version: PG_VERSION holds %q", b)
	}
	return v, nil
}

// removeStalePidFile removes dataDir/postmaster.pid unless the process it
// names is a server running on dataDir. The server itself would refuse to
// start whenever any process has the recorded pid, which after a reboot or
// in a container is often an unrelated one.
func removeStalePidFile(dataDir string) error {
	path := filepath.Join(dataDir, "postmaster.pid")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && pid > 0 {
		running, known := postmasterRunning(pid, dataDir)
		if running {
			return fmt.Errorf("%w: postmaster PID %d (from %s)", ErrDataDirInUse, pid, path)
		}
		if !known {
			return nil
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", path, err)
	}
	return nil
}

// openServerLog returns the writer for server output and a function that
// releases it: w itself, or PostgresLogFile in dataDir when w is nil. The
// returned writer never reports an error, because a failed write would stop
// the copying from the server's pipe and block the server.
func openServerLog(w io.Writer, dataDir string, runAs *osUser) (io.Writer, func() error, error) {
	if w != nil {
		return lenientWriter{w}, func() error { return nil }, nil
	}
	path := filepath.Join(dataDir, PostgresLogFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open server log: %w", err)
	}
	if runAs != nil {
		if err := f.Chown(int(runAs.uid), int(runAs.gid)); err != nil {
			_ = f.Close()
			return nil, nil, fmt.Errorf("open server log: %w", err)
		}
	}
	var once sync.Once
	var closeErr error
	return lenientWriter{f}, func() error {
		once.Do(func() { closeErr = f.Close() })
		return closeErr
	}, nil
}

// boolCompare orders false before true.
func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	default:
		return -1
	}
}
