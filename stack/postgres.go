package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults applied to a zero PostgresConfig field.
const (
	// DefaultPostgresHost is the address the server listens on when
	// PostgresConfig.Host is empty.
	DefaultPostgresHost = "127.0.0.1"
	// DefaultPostgresUser is the superuser role created by initdb when
	// PostgresConfig.User is empty.
	DefaultPostgresUser = "postgres"
	// PostgresLogFile is the file inside the data directory that receives
	// the server's output when PostgresConfig.Log is nil.
	PostgresLogFile = "postgres.log"
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

// installHint tells the reader of ErrPostgresNotFound what to do.
const installHint = "install them (Debian: apt-get install postgresql-15)"

// ErrPostgresNotFound is returned (wrapped) by StartPostgres when the
// PostgreSQL server binaries cannot be found. The error's text names where
// they were looked for and what to install.
var ErrPostgresNotFound = errors.New("PostgreSQL server binaries (initdb, postgres) not found")

// ErrDataDirInUse is returned (wrapped) by StartPostgres when a PostgreSQL
// server is already running on the data directory.
var ErrDataDirInUse = errors.New("PostgreSQL data directory is in use by a running server")

// managedSettings are server settings StartPostgres sets itself and that
// PostgresConfig.Settings may not override, because the returned URL and
// the TCP-only contract depend on them.
var managedSettings = map[string]bool{
	"port":                    true,
	"listen_addresses":        true,
	"unix_socket_directories": true,
	"data_directory":          true,
}

// PostgresConfig describes a local PostgreSQL cluster for StartPostgres. The
// zero value of every field except DataDir has a usable default.
type PostgresConfig struct {
	// DataDir is the cluster's data directory (required). A missing or empty
	// directory is initialised with initdb; an existing cluster is reused.
	// Relative paths are resolved against the working directory.
	DataDir string
	// Host is the one address the server listens on (default
	// DefaultPostgresHost). The server never opens a Unix socket.
	Host string
	// Port is the preferred TCP port. 0 means any free port; a preferred
	// port that is taken is replaced by a free one. (*Postgres).Port reports
	// the port actually used.
	Port int
	// BinDir is the directory holding initdb and postgres. Empty means: the
	// directory of initdb found on PATH (also after resolving symlinks),
	// then /usr/lib/postgresql/<version>/bin, newest version first.
	BinDir string
	// Durable selects crash-safe settings. False (for tests) turns off
	// fsync, synchronous_commit and full_page_writes, and initdb skips its
	// final sync: fast, but an OS crash or power loss may corrupt the
	// cluster. True (for dev) keeps PostgreSQL's durable defaults.
	Durable bool
	// Settings are extra server settings passed as -c name=value after the
	// ones StartPostgres sets (shared_preload_libraries=pg_stat_statements,
	// max_connections=200 and, unless Durable, the settings above), so they
	// override them. port, listen_addresses, unix_socket_directories and
	// data_directory are refused.
	Settings map[string]string
	// Log receives the output of initdb and of the server. Write errors are
	// ignored so a failing writer never blocks the server. Nil means the
	// file PostgresLogFile inside the data directory, appended to across
	// restarts and never rotated.
	Log io.Writer
	// User is the superuser role created by initdb and used in URLs
	// (default DefaultPostgresUser). Authentication is "trust": anyone who
	// can reach the port may connect as any role, so keep Host on loopback.
	// Only ASCII letters, digits and underscores are accepted.
	User string
}

// withDefaults returns c with every empty optional field set to its default.
func (c PostgresConfig) withDefaults() PostgresConfig {
	if c.Host == "" {
		c.Host = DefaultPostgresHost
	}
	if c.User == "" {
		c.User = DefaultPostgresUser
	}
	return c
}

// Validate reports every problem of c, after defaults are applied, joined
// with errors.Join; nil means StartPostgres will accept c.
func (c PostgresConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("DataDir is required"))
	}
	if c.Host == "*" || strings.ContainsAny(c.Host, ", \t\r\n") {
		errs = append(errs, fmt.Errorf("Host %q must be a single host name or IP address", c.Host))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("Port %d is outside 0..65535", c.Port))
	}
	if !validRoleName(c.User) {
		errs = append(errs, fmt.Errorf("User %q must be 1..%d ASCII letters, digits or underscores, not starting with a digit", c.User, maxIdentifierLen))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Settings)) {
		switch {
		case !validSettingName(name):
			errs = append(errs, fmt.Errorf("Settings: %q is not a setting name", name))
		case managedSettings[strings.ToLower(name)]:
			errs = append(errs, fmt.Errorf("Settings: %s is set by StartPostgres and cannot be overridden", name))
		case strings.ContainsRune(c.Settings[name], 0):
			errs = append(errs, fmt.Errorf("Settings: value of %s contains a NUL byte", name))
		}
	}
	return errors.Join(errs...)
}

// Postgres is a running PostgreSQL server started by StartPostgres. Its
// methods are safe for concurrent use.
type Postgres struct {
	host    string
	user    string
	port    int
	dataDir string
	major   int

	proc     *process
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
		proc, err := startProcess(cmd)
		if err != nil {
			_ = closeLog()
			return nil, fmt.Errorf("start postgres in %s: %w", dataDir, err)
		}
		err = waitReady(ctx, p.URL("postgres"), dataDir, proc)
		if err == nil {
			p.proc = proc
			break
		}
		proc.kill()
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
	p.proc.signal(os.Interrupt)
	select {
	case <-p.proc.done:
		if err := p.proc.exitError(); err != nil {
			return fmt.Errorf("stop postgres in %s: %w", p.dataDir, err)
		}
		return nil
	case <-ctx.Done():
	}
	p.proc.kill()
	return fmt.Errorf("stop postgres in %s: fast shutdown unfinished, server killed: %w", p.dataDir, context.Cause(ctx))
}

// errExitedEarly marks a server process that exited before accepting
// connections.
var errExitedEarly = errors.New("postgres exited during startup")

// waitReady polls until a connection to url reaches the server running in
// dataDir, proc exits, or ctx ends.
func waitReady(ctx context.Context, url, dataDir string, proc *process) error {
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

// pgBinaries are the paths of the server programs, taken from one directory
// so that their versions match.
type pgBinaries struct {
	initdb   string
	postgres string
}

// findPostgresBinaries locates initdb and postgres as PostgresConfig.BinDir
// describes.
func findPostgresBinaries(binDir string) (pgBinaries, error) {
	if binDir != "" {
		if b, ok := binariesIn(binDir); ok {
			return b, nil
		}
		return pgBinaries{}, fmt.Errorf("%w in %s: %s", ErrPostgresNotFound, binDir, installHint)
	}
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
		if r, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(r))
		}
	}
	dirs = append(dirs, versionedBinDirs("/usr/lib/postgresql")...)
	for _, d := range dirs {
		if b, ok := binariesIn(d); ok {
			return b, nil
		}
	}
	return pgBinaries{}, fmt.Errorf("%w on PATH or in /usr/lib/postgresql/*/bin: %s", ErrPostgresNotFound, installHint)
}

// versionedBinDirs returns root/<version>/bin directories, newest version
// first (Debian's layout).
func versionedBinDirs(root string) []string {
	matches, _ := filepath.Glob(filepath.Join(root, "*", "bin"))
	version := func(dir string) []int {
		var v []int
		for _, part := range strings.Split(filepath.Base(filepath.Dir(dir)), ".") {
			n, err := strconv.Atoi(part)
			if err != nil {
				return nil
			}
			v = append(v, n)
		}
		return v
	}
	slices.SortFunc(matches, func(a, b string) int { return slices.Compare(version(b), version(a)) })
	return matches
}

// binariesIn returns the server programs in dir if both are there and
// executable.
func binariesIn(dir string) (pgBinaries, bool) {
	b := pgBinaries{initdb: filepath.Join(dir, "initdb"), postgres: filepath.Join(dir, "postgres")}
	for _, p := range []string{b.initdb, b.postgres} {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return pgBinaries{}, false
		}
	}
	return b, true
}

// osUser is the unprivileged account the server runs as when the caller is
// root.
type osUser struct {
	name     string
	uid, gid uint32
}

// serverUser returns the account to run initdb and postgres as: nil (the
// caller itself) unless the caller is root, then "postgres" if that user
// exists, otherwise "nobody".
func serverUser() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if !rootSupported {
		return nil, errors.New("PostgreSQL refuses to run as root, and running it as another user is supported on Linux only: run as an unprivileged user")
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			var unknown user.UnknownUserError
			if errors.As(err, &unknown) {
				continue
			}
			return nil, fmt.Errorf("look up user %s: %w", name, err)
		}
		uid, errU := strconv.ParseUint(u.Uid, 10, 32)
		gid, errG := strconv.ParseUint(u.Gid, 10, 32)
		if errU != nil || errG != nil {
			return nil, fmt.Errorf("user %s has a non-numeric uid %q or gid %q", name, u.Uid, u.Gid)
		}
		return &osUser{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, errors.New("PostgreSQL refuses to run as root and neither user postgres nor nobody exists: create a postgres user")
}

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
	proc, err := startProcess(cmd)
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

// chownTree gives dir and everything below it to u, unless u is nil or dir
// already belongs to u (a cluster is owned by one user throughout, so the
// top directory stands for the tree).
func chownTree(dir string, u *osUser) error {
	if u == nil {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("chown %s: %w", dir, err)
	}
	if uid, ok := ownerUID(fi); ok && uid == u.uid {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, int(u.uid), int(u.gid)); err != nil {
			return fmt.Errorf("chown %s to %s: %w", path, u.name, err)
		}
		return nil
	})
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

// process is a started child whose exit is awaited by a goroutine that stays
// locked to the OS thread that started it.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the result of cmd.Wait, set before done is closed
}

// startProcess starts cmd and returns once it runs.
//
// The kernel delivers the parent-death signal (procAttr) when the thread
// that forked the child exits, not when the process does, and the Go
// runtime ends a thread whenever a goroutine locked to it exits. Forking
// from a goroutine that stays locked to its thread until the child has been
// reaped keeps that thread alive exactly as long as the child, so the signal
// fires only when this process dies.
func startProcess(cmd *exec.Cmd) (*process, error) {
	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("run %s: %w", filepath.Base(cmd.Path), err)
	}
	return p, nil
}

// exitError returns the process's exit status as an error (nil for a clean
// exit); it must only be called after done is closed.
func (p *process) exitError() error {
	if p.err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(p.cmd.Path), p.err)
	}
	return nil
}

// signal sends sig to the process unless it has already exited.
func (p *process) signal(sig os.Signal) {
	// The only possible error is that the process is gone, which is the goal.
	_ = p.cmd.Process.Signal(sig)
}

// kill ends the process: immediate shutdown (SIGQUIT), then SIGKILL if it
// has not exited within killGrace. It returns once the process is reaped.
func (p *process) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.signal(syscall.SIGQUIT)
	t := time.NewTimer(killGrace)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	p.signal(os.Kill)
	<-p.done
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

// Write implements io.Writer; it never fails.
func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

// summary returns the last lines written, for an error message.
func (t *tailBuffer) summary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return summarize(t.buf)
}

// summarize returns the last few non-empty lines of out on one line, led by
// "; output: ", or "" when there are none.
func summarize(out []byte) string {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return "; output: " + strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// lenientWriter passes writes on and always reports success.
type lenientWriter struct{ w io.Writer }

// Write implements io.Writer.
func (l lenientWriter) Write(b []byte) (int, error) {
	_, _ = l.w.Write(b)
	return len(b), nil
}

// validRoleName reports whether s is a role name this package accepts.
func validRoleName(s string) bool {
	if s == "" || len(s) > maxIdentifierLen || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// validSettingName reports whether s looks like a server setting name,
// including extension settings such as pg_stat_statements.track.
func validSettingName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// validateDatabaseName rejects names the server would truncate or refuse.
func validateDatabaseName(name string) error {
	if name == "" || len(name) > maxIdentifierLen || strings.ContainsRune(name, 0) {
		return fmt.Errorf("database name %q must be 1..%d bytes without NUL", name, maxIdentifierLen)
	}
	return nil
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
