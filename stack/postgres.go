package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	// defaultStartTimeout bounds StartPostgres when its context has no
	// deadline.
	defaultStartTimeout = time.Minute
	// defaultStopTimeout bounds the fast shutdown in Stop when its context
	// has no deadline.
	defaultStopTimeout = 10 * time.Second
	// killGrace is how long an immediate shutdown (SIGQUIT) may take before
	// the postmaster is killed.
	killGrace = 2 * time.Second
	// startAttempts is how many ports StartPostgres tries when the chosen
	// port is taken between choosing and binding it.
	startAttempts = 3
	// readyPollInterval is the pause between connection attempts while the
	// server starts.
	readyPollInterval = 20 * time.Millisecond
	// serverMaxConnections leaves room for many parallel tests, each with
	// its own pool.
	serverMaxConnections = 200
	// maxIdentifierLen is PostgreSQL's NAMEDATALEN-1: longer names are
	// silently truncated by the server, so they are refused here.
	maxIdentifierLen = 63
)

// Postgres is a running PostgreSQL server started by StartPostgres. Its
// methods are safe for concurrent use.
type Postgres struct {
	host    string
	user    string
	port    int
	dataDir string
	major   int

	proc     *Process
	admin    *pgxpool.Pool
	closeLog func() error

	stopOnce sync.Once
	stopErr  error
}

// StartPostgres initialises cfg.DataDir if it holds no cluster yet, starts
// the server and returns once it accepts connections. The server keeps
// running after ctx ends; ctx only bounds the start (one minute when it has
// no deadline). Call Stop to shut it down.
//
// A postmaster.pid left behind by a killed server is removed; if a server is
// still running on the data directory the error wraps ErrDataDirInUse. If
// the binaries are missing, the error wraps ErrPostgresNotFound and says what
// to install. When the caller is root the server runs as an unprivileged user
// (see the package documentation).
func StartPostgres(ctx context.Context, cfg PostgresConfig) (*Postgres, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("start postgres: invalid config: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: data directory %s: %w", cfg.DataDir, err)
	}
	bins, err := findPostgresBinaries(cfg.BinDir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	runAs, err := serverUser()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	initOutput, err := prepareDataDir(ctx, dataDir, bins, runAs, cfg)
	if err != nil {
		return nil, fmt.Errorf("start postgres in %s: %w", dataDir, err)
	}
	major, err := readMajorVersion(dataDir)
	if err != nil {
		return nil, fmt.Errorf("start postgres in %s: %w", dataDir, err)
	}
	if err := removeStalePidFile(dataDir); err != nil {
		return nil, fmt.Errorf("start postgres in %s: %w", dataDir, err)
	}
	logw, closeLog, err := openServerLog(cfg.Log, dataDir, runAs)
	if err != nil {
		return nil, fmt.Errorf("start postgres in %s: %w", dataDir, err)
	}
	_, _ = logw.Write(initOutput)

	p := &Postgres{host: cfg.Host, user: cfg.User, dataDir: dataDir, major: major, closeLog: closeLog}
	tail := &tailBuffer{max: 8 << 10}
	out := io.MultiWriter(tail, logw)
	port := cfg.Port
	for attempt := 1; ; attempt++ {
		if port, err = PortOrFree(cfg.Host, port); err != nil {
			_ = closeLog()
			return nil, fmt.Errorf("start postgres in %s: %w", dataDir, err)
		}
		p.port = port
		cmd := exec.Command(bins.postgres, serverArgs(dataDir, port, cfg)...)
		cmd.Dir = dataDir
		cmd.Env = serverEnv()
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = procAttr(runAs)
		cmd.WaitDelay = time.Second
		proc, err := StartProcess(cmd)
		if err != nil {
			_ = closeLog()
			return nil, fmt.Errorf("start postgres in %s: %w", dataDir, err)
		}
		err = waitReady(ctx, p.URL("postgres"), dataDir, proc)
		if err == nil {
			p.proc = proc
			break
		}
		proc.Stop(syscall.SIGQUIT, killGrace)
		if errors.Is(err, errExitedEarly) && attempt < startAttempts && portInUse(cfg.Host, port) {
			port = 0
			continue
		}
		_ = closeLog()
		return nil, fmt.Errorf("start postgres in %s on port %d: %w%s", dataDir, port, err, tail.summary())
	}

	poolCfg, err := pgxpool.ParseConfig(p.URL("postgres"))
	if err != nil {
		_ = p.Stop(context.Background())
		return nil, fmt.Errorf("start postgres: admin pool: %w", err)
	}
	poolCfg.MaxConns = 4
	if p.admin, err = pgxpool.NewWithConfig(ctx, poolCfg); err != nil {
		_ = p.Stop(context.Background())
		return nil, fmt.Errorf("start postgres: admin pool: %w", err)
	}
	return p, nil
}

// URL returns a connection URL for database db on this server, as the
// superuser, without TLS: postgres://user@host:port/db?sslmode=disable.
func (p *Postgres) URL(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(p.user),
		Host:     net.JoinHostPort(p.host, strconv.Itoa(p.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port returns the TCP port the server listens on.
func (p *Postgres) Port() int { return p.port }

// DataDir returns the absolute path of the server's data directory.
func (p *Postgres) DataDir() string { return p.dataDir }

// Done returns a channel that is closed when the server process has exited,
// whether through Stop or on its own.
func (p *Postgres) Done() <-chan struct{} { return p.proc.done }

// CreateDatabase creates an empty database named name (1 to 63 bytes, any
// characters but NUL; it is quoted, so case and punctuation are kept) from
// template0, so it never inherits objects added to template1. An existing
// database of that name is an error. It is safe to call concurrently.
//
// From PostgreSQL 15 on the files are copied (STRATEGY FILE_COPY) instead of
// being written through the WAL: that costs two checkpoints, which are cheap
// on a small local cluster, and is several times faster when fsync is off.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) error {
	if err := validateDatabaseName(name); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE template0"
	if p.major >= 15 {
		stmt += " STRATEGY FILE_COPY"
	}
	if _, err := p.admin.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// DropDatabase drops database name, terminating its sessions first (DROP
// DATABASE ... WITH (FORCE)). Dropping a database that does not exist is not
// an error.
func (p *Postgres) DropDatabase(ctx context.Context, name string) error {
	if err := validateDatabaseName(name); err != nil {
		return fmt.Errorf("drop database: %w", err)
	}
	stmt := "DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"
	if _, err := p.admin.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("drop database %q: %w", name, err)
	}
	return nil
}

// Stop shuts the server down and returns once its process has exited. It
// asks for a fast shutdown (SIGINT: sessions are terminated, the data is
// checkpointed); if that has not finished when ctx ends (after ten seconds
// when ctx has no deadline), it sends SIGQUIT (immediate shutdown, crash
// recovery at the next start) and then SIGKILL, and returns an error that
// wraps the context's error. A server that had already exited on its own is
// reported as an error too.
//
// Stop is idempotent: later calls return the first call's result.
func (p *Postgres) Stop(ctx context.Context) error {
	p.stopOnce.Do(func() { p.stopErr = p.stop(ctx) })
	return p.stopErr
}

// stop is Stop without the idempotence.
func (p *Postgres) stop(ctx context.Context) error {
	if p.admin != nil {
		p.admin.Close()
	}
	defer func() { _ = p.closeLog() }()
	select {
	case <-p.proc.done:
		return fmt.Errorf("stop postgres in %s: server had already exited: %w", p.dataDir, p.proc.exitError())
	default:
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStopTimeout)
		defer cancel()
	}
	p.proc.Signal(os.Interrupt)
	select {
	case <-p.proc.done:
		if err := p.proc.exitError(); err != nil {
			return fmt.Errorf("stop postgres in %s: %w", p.dataDir, err)
		}
		return nil
	case <-ctx.Done():
	}
	p.proc.Stop(syscall.SIGQUIT, killGrace)
	return fmt.Errorf("stop postgres in %s: fast shutdown unfinished, server killed: %w", p.dataDir, context.Cause(ctx))
}

// errExitedEarly marks a server process that exited before accepting
// connections.
var errExitedEarly = errors.New("postgres exited during startup")

// waitReady polls until a connection to url reaches the server running in
// dataDir, proc exits, or ctx ends.
func waitReady(ctx context.Context, url, dataDir string, proc *Process) error {
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	for {
		if serving(ctx, url, dataDir) {
			return nil
		}
		select {
		case <-proc.done:
			return fmt.Errorf("%w: %w", errExitedEarly, proc.exitError())
		case <-ctx.Done():
			return fmt.Errorf("wait for postgres to accept connections: %w", context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// serving reports whether url reaches a server whose data directory is
// dataDir. Checking the directory keeps a foreign server that took the port
// in a race from being mistaken for ours.
func serving(ctx context.Context, url, dataDir string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var dir string
	if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&dir); err != nil {
		return false
	}
	a, errA := os.Stat(dir)
	b, errB := os.Stat(dataDir)
	return errA == nil && errB == nil && os.SameFile(a, b)
}

// serverArgs returns the postgres command line for dataDir and port.
func serverArgs(dataDir string, port int, cfg PostgresConfig) []string {
	args := []string{
		"-D", dataDir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=" + cfg.Host,
		"-c", "unix_socket_directories=",
		"-c", "shared_preload_libraries=pg_stat_statements",
		"-c", "max_connections=" + strconv.Itoa(serverMaxConnections),
	}
	if !cfg.Durable {
		args = append(args,
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
		)
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Settings)) {
		args = append(args, "-c", name+"="+cfg.Settings[name])
	}
	return args
}

// serverEnv is the environment for initdb and postgres: the caller's,
// without PG* variables, which would otherwise change defaults such as the
// data directory or port behind the explicit arguments.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}
