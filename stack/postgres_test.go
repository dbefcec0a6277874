package stack_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenledger/tokenledger/stack"
)

// postgresTestDir returns a fresh directory, removed at cleanup, that the
// server's unprivileged user can traverse when the tests run as root
// (t.TempDir is mode 0700).
func postgresTestDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tokenledger-stack-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startTestPostgres starts a server for cfg and stops it at cleanup,
// failing the test if the process is still running afterwards.
func startTestPostgres(t *testing.T, cfg stack.PostgresConfig) *stack.Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := stack.StartPostgres(ctx, cfg)
	if err != nil {
		t.Fatalf("StartPostgres: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Stop(ctx) // tests that care check Stop's result themselves
		select {
		case <-p.Done():
		default:
			t.Errorf("postgres in %s still running after Stop", p.DataDir())
		}
	})
	return p
}

// pgConnect opens a connection to url that is closed at cleanup.
func pgConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// pgQueryString runs a query returning one text value.
func pgQueryString(t *testing.T, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// pgDatabaseExists reports whether the cluster behind conn has database name.
func pgDatabaseExists(t *testing.T, conn *pgx.Conn, name string) bool {
	t.Helper()
	var exists bool
	err := conn.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		t.Fatalf("look up database %q: %v", name, err)
	}
	return exists
}

// postmasterPID reads the server's pid from its lock file.
func postmasterPID(t *testing.T, dataDir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	return pid
}

// pgWaitDone fails the test unless p's process exits within timeout.
func pgWaitDone(t *testing.T, p *stack.Postgres, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.Done():
		return
	default:
	}
	select {
	case <-p.Done():
	case <-time.After(timeout):
		t.Fatalf("postgres in %s did not exit within %v", p.DataDir(), timeout)
	}
}

func TestPostgresConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     stack.PostgresConfig
		wantErr []string // substrings, one per expected problem
	}{
		{name: "only DataDir is required", cfg: stack.PostgresConfig{DataDir: "/tmp/x"}},
		{name: "everything set", cfg: stack.PostgresConfig{
			DataDir: "d", Host: "::1", Port: 5432, User: "tl_admin", Durable: true,
			Settings: map[string]string{"work_mem": "8MB", "pg_stat_statements.track": "all"},
		}},
		{name: "missing DataDir", cfg: stack.PostgresConfig{}, wantErr: []string{"DataDir is required"}},
		{name: "port out of range", cfg: stack.PostgresConfig{DataDir: "d", Port: 65536}, wantErr: []string{"Port 65536"}},
		{name: "negative port", cfg: stack.PostgresConfig{DataDir: "d", Port: -1}, wantErr: []string{"Port -1"}},
		{name: "host list", cfg: stack.PostgresConfig{DataDir: "d", Host: "127.0.0.1,::1"}, wantErr: []string{"Host"}},
		{name: "wildcard host", cfg: stack.PostgresConfig{DataDir: "d", Host: "*"}, wantErr: []string{"Host"}},
		{name: "user with a quote", cfg: stack.PostgresConfig{DataDir: "d", User: `a"b`}, wantErr: []string{"User"}},
		{name: "user starting with a digit", cfg: stack.PostgresConfig{DataDir: "d", User: "1x"}, wantErr: []string{"User"}},
		{name: "managed setting", cfg: stack.PostgresConfig{DataDir: "d", Settings: map[string]string{"Port": "1"}}, wantErr: []string{"Port is set by StartPostgres"}},
		{name: "bad setting name", cfg: stack.PostgresConfig{DataDir: "d", Settings: map[string]string{"a=b": "1"}}, wantErr: []string{"not a setting name"}},
		{name: "all problems at once", cfg: stack.PostgresConfig{Port: -5, User: "x y", Settings: map[string]string{"unix_socket_directories": "/tmp"}},
			wantErr: []string{"DataDir is required", "Port -5", "User", "unix_socket_directories is set by StartPostgres"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, want it to mention %q", err, want)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(tt.wantErr) {
				t.Errorf("Validate() reported %d problems, want %d: %q", n, len(tt.wantErr), err)
			}
		})
	}
}

// TestPostgresLifecycle starts a durable cluster as the tests' user (root
// here), uses it, stops it, and finds the data again after a restart.
func TestPostgresLifecycle(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(postgresTestDir(t), "nested", "data")
	cfg := stack.PostgresConfig{
		DataDir:  dataDir,
		Durable:  true,
		Settings: map[string]string{"work_mem": "8MB"},
	}

	begin := time.Now()
	p := startTestPostgres(t, cfg)
	t.Logf("first start (initdb + start): %v", time.Since(begin))
	if p.DataDir() != dataDir {
		t.Errorf("DataDir() = %q, want %q", p.DataDir(), dataDir)
	}
	if _, err := os.Stat(filepath.Join(dataDir, stack.PostgresLogFile)); err != nil {
		t.Errorf("default server log: %v", err)
	}

	conn := pgConnect(t, p.URL("postgres"))
	for setting, want := range map[string]string{
		"fsync":                    "on",
		"synchronous_commit":       "on",
		"unix_socket_directories":  "",
		"listen_addresses":         stack.DefaultPostgresHost,
		"shared_preload_libraries": "pg_stat_statements",
		"work_mem":                 "8MB",
		"max_connections":          "200",
		"server_encoding":          "UTF8",
		"lc_collate":               "C",
	} {
		if got := pgQueryString(t, conn, "SELECT current_setting($1)", setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	if got := pgQueryString(t, conn, "SELECT current_user"); got != stack.DefaultPostgresUser {
		t.Errorf("current_user = %q, want %q", got, stack.DefaultPostgresUser)
	}
	if runtime.GOOS == "linux" && os.Geteuid() == 0 {
		status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(postmasterPID(t, dataDir)), "status"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if fields := strings.Fields(line); len(fields) > 1 && fields[0] == "Uid:" && fields[1] == "0" {
				t.Errorf("postmaster runs as root: %s", line)
			}
		}
	}

	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	if err := p.CreateDatabase(ctx, "scratch"); err != nil {
		t.Fatal(err)
	}
	if got := pgQueryString(t, pgConnect(t, p.URL("scratch")), "SELECT current_database()"); got != "scratch" {
		t.Errorf("URL(scratch) reaches database %q", got)
	}
	if err := p.DropDatabase(ctx, "scratch"); err != nil {
		t.Fatal(err)
	}
	if pgDatabaseExists(t, conn, "scratch") {
		t.Error("database scratch still exists after DropDatabase")
	}

	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	begin = time.Now()
	if err := p.Stop(stopCtx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stop: %v", time.Since(begin))
	pgWaitDone(t, p, 0)
	if err := p.Stop(stopCtx); err != nil {
		t.Errorf("second Stop = %v, want the first call's nil", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("postmaster.pid after a clean stop: %v", err)
	}

	begin = time.Now()
	p2 := startTestPostgres(t, cfg)
	t.Logf("restart: %v", time.Since(begin))
	var id int
	if err := pgConnect(t, p2.URL("postgres")).QueryRow(ctx, "SELECT id FROM kept").Scan(&id); err != nil || id != 42 {
		t.Fatalf("after restart: SELECT id FROM kept = %d, %v; want 42", id, err)
	}
}

// TestPostgresDatabases checks database creation and removal on one
// non-durable cluster.
func TestPostgresDatabases(t *testing.T) {
	t.Parallel()
	p := startTestPostgres(t, stack.PostgresConfig{DataDir: filepath.Join(postgresTestDir(t), "data")})
	admin := pgConnect(t, p.URL("postgres"))
	if got := pgQueryString(t, admin, "SHOW fsync"); got != "off" {
		t.Errorf("fsync = %q on a non-durable cluster, want off", got)
	}

	t.Run("names are quoted, not folded or truncated", func(t *testing.T) {
		for _, name := range []string{"MixedCase", `we"ird; name`, "ünïcode", strings.Repeat("n", 63)} {
			ctx := context.Background()
			if err := p.CreateDatabase(ctx, name); err != nil {
				t.Fatalf("CreateDatabase(%q): %v", name, err)
			}
			if got := pgQueryString(t, pgConnect(t, p.URL(name)), "SELECT current_database()"); got != name {
				t.Errorf("URL(%q) reaches database %q", name, got)
			}
			if err := p.DropDatabase(ctx, name); err != nil {
				t.Fatalf("DropDatabase(%q): %v", name, err)
			}
			if pgDatabaseExists(t, admin, name) {
				t.Errorf("database %q exists after DropDatabase", name)
			}
		}
	})
	t.Run("invalid names are refused", func(t *testing.T) {
		for _, name := range []string{"", strings.Repeat("n", 64), "nul\x00byte"} {
			if err := p.CreateDatabase(context.Background(), name); err == nil {
				t.Errorf("CreateDatabase(%q) = nil, want an error", name)
			}
			if err := p.DropDatabase(context.Background(), name); err == nil {
				t.Errorf("DropDatabase(%q) = nil, want an error", name)
			}
		}
	})
	t.Run("creating an existing database fails", func(t *testing.T) {
		ctx := context.Background()
		if err := p.CreateDatabase(ctx, "twice"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.DropDatabase(context.Background(), "twice") })
		if err := p.CreateDatabase(ctx, "twice"); err == nil {
			t.Error("second CreateDatabase(twice) = nil, want an error")
		}
	})
	t.Run("a new database does not inherit template1", func(t *testing.T) {
		ctx := context.Background()
		tpl := pgConnect(t, p.URL("template1"))
		if _, err := tpl.Exec(ctx, "CREATE TABLE leaked (x int)"); err != nil {
			t.Fatal(err)
		}
		_ = tpl.Close(ctx) // CREATE DATABASE from template1 elsewhere would fail while connected
		if err := p.CreateDatabase(ctx, "pristine"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.DropDatabase(context.Background(), "pristine") })
		if got := pgQueryString(t, pgConnect(t, p.URL("pristine")), "SELECT count(*)::text FROM pg_tables WHERE tablename = 'leaked'"); got != "0" {
			t.Error("database created from template1 instead of template0")
		}
	})
	t.Run("drop terminates open sessions and tolerates a missing database", func(t *testing.T) {
		ctx := context.Background()
		if err := p.CreateDatabase(ctx, "busy"); err != nil {
			t.Fatal(err)
		}
		busy := pgConnect(t, p.URL("busy"))
		if err := p.DropDatabase(ctx, "busy"); err != nil {
			t.Fatalf("DropDatabase with an open session: %v", err)
		}
		if err := busy.Ping(ctx); err == nil {
			t.Error("session on the dropped database still works")
		}
		if err := p.DropDatabase(ctx, "busy"); err != nil {
			t.Errorf("DropDatabase of a missing database = %v, want nil", err)
		}
	})
}

// TestPostgresStalePidFile restarts a cluster whose postmaster.pid was left
// behind or names a process that is not its server. The cases run in turn
// on one data directory.
func TestPostgresStalePidFile(t *testing.T) {
	t.Parallel()
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	other := startTestPostgres(t, stack.PostgresConfig{DataDir: filepath.Join(postgresTestDir(t), "other")})
	tests := []struct {
		name string
		// leave stops or kills p and leaves a postmaster.pid behind.
		leave func(t *testing.T, p *stack.Postgres)
	}{
		{name: "postmaster killed with SIGKILL", leave: func(t *testing.T, p *stack.Postgres) {
			if err := syscall.Kill(postmasterPID(t, p.DataDir()), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			pgWaitDone(t, p, 10*time.Second)
		}},
		{name: "pid of an exited process", leave: func(t *testing.T, p *stack.Postgres) {
			stopAndWritePid(t, p, strconv.Itoa(exited.ProcessState.Pid()))
		}},
		{name: "pid of a live process of another user", leave: func(t *testing.T, p *stack.Postgres) {
			stopAndWritePid(t, p, strconv.Itoa(os.Getppid()))
		}},
		{name: "pid reused by another cluster's postmaster", leave: func(t *testing.T, p *stack.Postgres) {
			// A live process of the server's own user: the server itself
			// would refuse to start.
			stopAndWritePid(t, p, strconv.Itoa(postmasterPID(t, other.DataDir())))
		}},
		{name: "garbage", leave: func(t *testing.T, p *stack.Postgres) {
			stopAndWritePid(t, p, "not a pid")
		}},
	}
	cfg := stack.PostgresConfig{DataDir: filepath.Join(postgresTestDir(t), "data")}
	p := startTestPostgres(t, cfg)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.leave(t, p)
			if _, err := os.Stat(filepath.Join(cfg.DataDir, "postmaster.pid")); err != nil {
				t.Fatalf("setup left no postmaster.pid: %v", err)
			}
			p = startTestPostgres(t, cfg)
			if got := pgQueryString(t, pgConnect(t, p.URL("postgres")), "SELECT 'up'"); got != "up" {
				t.Errorf("restarted server answered %q", got)
			}
		})
		if t.Failed() {
			return
		}
	}
}

// stopAndWritePid stops p cleanly and writes a postmaster.pid whose first
// line, the pid, is first.
func stopAndWritePid(t *testing.T, p *stack.Postgres, first string) {
	t.Helper()
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	content := first + "\n" + p.DataDir() + "\n1700000000\n5432\n\n127.0.0.1\n  5432001         0\nready   \n"
	path := filepath.Join(p.DataDir(), "postmaster.pid")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// Owned like a lock file the server wrote itself.
	fi, err := os.Stat(p.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if err := os.Chown(path, int(st.Uid), int(st.Gid)); err != nil {
		t.Fatal(err)
	}
}

func TestPostgresDataDirInUse(t *testing.T) {
	t.Parallel()
	cfg := stack.PostgresConfig{DataDir: filepath.Join(postgresTestDir(t), "data")}
	p := startTestPostgres(t, cfg)
	_, err := stack.StartPostgres(context.Background(), cfg)
	if !errors.Is(err, stack.ErrDataDirInUse) {
		t.Fatalf("second StartPostgres on a running data directory = %v, want ErrDataDirInUse", err)
	}
	if got := pgQueryString(t, pgConnect(t, p.URL("postgres")), "SELECT 'still up'"); got != "still up" {
		t.Errorf("first server answered %q", got)
	}
}

func TestPostgresPort(t *testing.T) {
	t.Parallel()
	t.Run("a taken preferred port is replaced", func(t *testing.T) {
		t.Parallel()
		held, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		heldPort := held.Addr().(*net.TCPAddr).Port
		p := startTestPostgres(t, stack.PostgresConfig{DataDir: filepath.Join(postgresTestDir(t), "data"), Port: heldPort})
		if p.Port() == heldPort {
			t.Fatalf("Port() = %d, the port held by another listener", heldPort)
		}
		if !strings.Contains(p.URL("postgres"), ":"+strconv.Itoa(p.Port())+"/") {
			t.Errorf("URL %q does not use Port() %d", p.URL("postgres"), p.Port())
		}
		if got := pgQueryString(t, pgConnect(t, p.URL("postgres")), "SELECT 'up'"); got != "up" {
			t.Errorf("server answered %q", got)
		}
	})
	t.Run("a free preferred port is used", func(t *testing.T) {
		t.Parallel()
		host := portTestHost()
		port, err := stack.FreePort(host)
		if err != nil {
			t.Fatal(err)
		}
		p := startTestPostgres(t, stack.PostgresConfig{DataDir: filepath.Join(postgresTestDir(t), "data"), Host: host, Port: port})
		if p.Port() != port {
			t.Errorf("Port() = %d, want the free preferred port %d", p.Port(), port)
		}
		if got := pgQueryString(t, pgConnect(t, p.URL("postgres")), "SELECT current_setting('listen_addresses')"); got != host {
			t.Errorf("listen_addresses = %q, want %q", got, host)
		}
	})
}

// TestPostgresStopEscalates stops with a context that is already done: the
// server must still be gone, and the cluster must recover at the next start.
func TestPostgresStopEscalates(t *testing.T) {
	t.Parallel()
	cfg := stack.PostgresConfig{DataDir: filepath.Join(postgresTestDir(t), "data")}
	p := startTestPostgres(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	begin := time.Now()
	err := p.Stop(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Stop with a canceled context = %v, want an error wrapping context.Canceled", err)
	}
	if elapsed := time.Since(begin); elapsed > 5*time.Second {
		t.Errorf("Stop took %v", elapsed)
	}
	pgWaitDone(t, p, 0)
	p2 := startTestPostgres(t, cfg)
	if got := pgQueryString(t, pgConnect(t, p2.URL("postgres")), "SELECT 'recovered'"); got != "recovered" {
		t.Errorf("server answered %q", got)
	}
}

func TestPostgresStartErrors(t *testing.T) {
	t.Parallel()
	t.Run("missing binaries say what to install", func(t *testing.T) {
		t.Parallel()
		onlyInitdb := t.TempDir()
		if err := os.WriteFile(filepath.Join(onlyInitdb, "initdb"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, binDir := range map[string]string{"empty": t.TempDir(), "initdb only": onlyInitdb} {
			dataDir := filepath.Join(t.TempDir(), "data")
			_, err := stack.StartPostgres(context.Background(), stack.PostgresConfig{DataDir: dataDir, BinDir: binDir})
			if !errors.Is(err, stack.ErrPostgresNotFound) {
				t.Fatalf("%s: StartPostgres = %v, want ErrPostgresNotFound", name, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "apt-get install postgresql-15") || !strings.Contains(msg, binDir) || strings.Contains(msg, "\n") {
				t.Errorf("%s: error %q should be one line naming %s and what to install", name, msg, binDir)
			}
			if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: data directory created although the binaries are missing", name)
			}
		}
	})
	t.Run("a directory that is not a cluster is left alone", func(t *testing.T) {
		t.Parallel()
		dataDir := filepath.Join(postgresTestDir(t), "data")
		if err := os.Mkdir(dataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		precious := filepath.Join(dataDir, "precious.txt")
		if err := os.WriteFile(precious, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := stack.StartPostgres(context.Background(), stack.PostgresConfig{DataDir: dataDir})
		if err == nil || !strings.Contains(err.Error(), "neither empty nor a PostgreSQL cluster") {
			t.Fatalf("StartPostgres = %v, want a not-a-cluster error", err)
		}
		entries, _ := os.ReadDir(dataDir)
		if len(entries) != 1 {
			t.Errorf("data directory changed: %d entries", len(entries))
		}
	})
	t.Run("invalid config", func(t *testing.T) {
		t.Parallel()
		_, err := stack.StartPostgres(context.Background(), stack.PostgresConfig{})
		if err == nil || !strings.Contains(err.Error(), "DataDir is required") {
			t.Errorf("StartPostgres(zero config) = %v, want the validation error", err)
		}
	})
}

// TestPostgresUntraversableParent checks the root case: a data directory
// below a root-only directory cannot be used by the server's user, and
// StartPostgres says so instead of changing the directory's permissions.
func TestPostgresUntraversableParent(t *testing.T) {
	t.Parallel()
	parent := filepath.Join(postgresTestDir(t), "private")
	if err := os.Mkdir(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(parent, "data")
	p, err := stack.StartPostgres(context.Background(), stack.PostgresConfig{DataDir: dataDir})
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		// The server runs as the tests' user, who owns parent.
		if err != nil {
			t.Fatalf("StartPostgres as the directory's owner: %v", err)
		}
		if err := p.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err == nil {
		_ = p.Stop(context.Background())
		t.Fatal("StartPostgres below a root-only directory succeeded, want an error")
	}
	if !strings.Contains(err.Error(), "directory "+parent+" (mode 0700") || !strings.Contains(err.Error(), "not traversable") {
		t.Errorf("StartPostgres = %q, want it to name %s as not traversable", err, parent)
	}
	fi, statErr := os.Stat(parent)
	if statErr != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("parent permissions changed: %v %v", fi.Mode(), statErr)
	}
}
