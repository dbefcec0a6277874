package stacktest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/stack"
)

const (
	// clusterDirPrefix starts the name of every shared cluster's directory,
	// followed by the owning test binary's pid and a dash.
	clusterDirPrefix = "tokenledger-stacktest-"
	// clusterStartTimeout bounds the first start, initdb included.
	clusterStartTimeout = 2 * time.Minute
	// clusterStopTimeout bounds the fast shutdown in Main.
	clusterStopTimeout = 30 * time.Second
	// databaseTimeout bounds creating or dropping one test database.
	databaseTimeout = time.Minute
	// poolCloseTimeout is how long a test's pool may take to close before
	// the test is failed for holding a connection.
	poolCloseTimeout = 5 * time.Second
)

// errNoMain is the failure of a PostgreSQL helper in a test binary whose
// TestMain does not call Main.
var errNoMain = errors.New("the PostgreSQL helpers need the package's tests to call stacktest.Main: add `func TestMain(m *testing.M) { stacktest.Main(m) }` to a _test.go file of this package")

// shared is the test binary's PostgreSQL cluster, started on first use.
var shared struct {
	mu      sync.Mutex
	cluster *stack.Postgres
	dir     string
	err     error // a failed start is not retried
}

// databaseSeq numbers the databases of one test binary.
var databaseSeq atomic.Uint64

// PostgresCluster returns the test binary's shared PostgreSQL cluster,
// starting it on first use. Use it for what needs the superuser or the
// whole cluster (pg_stat_statements, roles, several databases); use
// PostgresURL or PostgresPool for a database of the test's own. Do not stop
// the cluster: Main does.
//
// It fails the test if the package's TestMain does not call Main, or if the
// cluster cannot start (for example because the PostgreSQL binaries are not
// installed; the message says what to install).
func PostgresCluster(tb testing.TB) *stack.Postgres {
	tb.Helper()
	p, err := sharedCluster(mainCalled.Load())
	if err != nil {
		tb.Fatalf("stacktest: %v", err)
	}
	return p
}

// PostgresURL creates an empty database for the test on the shared cluster
// and returns its URL (superuser, no TLS). The database has a name unique in
// the test binary and is dropped, sessions and all, when the test and its
// subtests end. Safe for parallel tests.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	p := PostgresCluster(tb)
	name := databaseName(tb.Name(), databaseSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), databaseTimeout)
	defer cancel()
	if err := p.CreateDatabase(ctx, name); err != nil {
		tb.Fatalf("stacktest: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), databaseTimeout)
		defer cancel()
		if err := p.DropDatabase(ctx, name); err != nil {
			tb.Errorf("stacktest: %v", err)
		}
	})
	return p.URL(name)
}

// PostgresPool returns a connection pool on a new database of the test's
// own (see PostgresURL). The pool is closed, then the database dropped, when
// the test ends; a connection still acquired five seconds into the close
// fails the test.
func PostgresPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	url := PostgresURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), databaseTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		tb.Fatalf("stacktest: pool for %s: %v", url, err)
	}
	tb.Cleanup(func() {
		closed := make(chan struct{})
		go func() {
			pool.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(poolCloseTimeout):
			tb.Errorf("stacktest: pool for %s not closed after %v: a connection is still acquired (release every conn, close every Rows)", url, poolCloseTimeout)
		}
	})
	if err := pool.Ping(ctx); err != nil {
		tb.Fatalf("stacktest: ping %s: %v", url, err)
	}
	return pool
}

// sharedCluster returns the shared cluster, starting it if needed; it
// refuses to start one unless Main will stop it.
func sharedCluster(underMain bool) (*stack.Postgres, error) {
	if !underMain {
		return nil, errNoMain
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster != nil || shared.err != nil {
		return shared.cluster, shared.err
	}
	shared.cluster, shared.dir, shared.err = startCluster()
	if shared.err == nil {
		atExit(stopCluster)
	}
	return shared.cluster, shared.err
}

// startCluster starts a non-durable cluster in a new directory under the
// preferred base directory, after removing directories left by test
// binaries that died.
func startCluster() (*stack.Postgres, string, error) {
	base := clusterBaseDir()
	sweepStaleClusterDirs(base, os.TempDir())
	dir, err := os.MkdirTemp(base, clusterDirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, "", fmt.Errorf("PostgreSQL cluster directory: %w", err)
	}
	// The server may run as another user (when the tests run as root), who
	// must be able to traverse this directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", fmt.Errorf("PostgreSQL cluster directory: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterStartTimeout)
	defer cancel()
	p, err := stack.StartPostgres(ctx, stack.PostgresConfig{
		DataDir: filepath.Join(dir, "data"),
		// Bounds the WAL kept between checkpoints, which costs memory when
		// the cluster lives in /dev/shm; checkpoints are cheap without fsync.
		Settings: map[string]string{"max_wal_size": "256MB"},
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	return p, dir, nil
}

// stopCluster stops the shared cluster and removes its directory.
func stopCluster() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), clusterStopTimeout)
	defer cancel()
	err := shared.cluster.Stop(ctx)
	if rmErr := os.RemoveAll(shared.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("remove PostgreSQL cluster directory: %w", rmErr))
	}
	return err
}

// sweepStaleClusterDirs removes cluster directories in bases whose owning
// test binary is no longer running. A directory whose pid is alive is kept,
// even when the pid has been reused by another process.
func sweepStaleClusterDirs(bases ...string) {
	for _, base := range bases {
		matches, _ := filepath.Glob(filepath.Join(base, clusterDirPrefix+"*"))
		for _, dir := range matches {
			rest := strings.TrimPrefix(filepath.Base(dir), clusterDirPrefix)
			pidText, _, ok := strings.Cut(rest, "-")
			pid, err := strconv.Atoi(pidText)
			if !ok || err != nil || pid == os.Getpid() || processAlive(pid) {
				continue
			}
			_ = os.RemoveAll(dir)
		}
	}
}

// processAlive reports whether a process with the given pid exists; when
// unsure it answers true.
func processAlive(pid int) bool {
	proc, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = proc.Signal(syscall.Signal(0))
	return !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, syscall.ESRCH)
}

// databaseName derives a database name from a test name and a sequence
// number: "t_", the test name in lower case with anything but letters and
// digits replaced by "_", cut to fit, then "_" and seq. It is unique per
// sequence number and at most 63 bytes long.
func databaseName(testName string, seq uint64) string {
	suffix := "_" + strconv.FormatUint(seq, 10)
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(testName) {
		if b.Len()+len(suffix) >= 63 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String() + suffix
}
