package stacktest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

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

// pgDatabaseExists reports whether the shared cluster has database name.
func pgDatabaseExists(t *testing.T, name string) bool {
	t.Helper()
	var exists bool
	conn := pgConnect(t, PostgresCluster(t).URL("postgres"))
	err := conn.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		t.Fatalf("look up database %q: %v", name, err)
	}
	return exists
}

func TestPostgresURLGivesEachTestItsOwnDatabase(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	databases := map[string]string{} // subtest → its database
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"first", "second"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				conn := pgConnect(t, PostgresURL(t))
				ctx := context.Background()
				var db string
				var tables int
				if err := conn.QueryRow(ctx, "SELECT current_database(), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')").Scan(&db, &tables); err != nil {
					t.Fatal(err)
				}
				if tables != 0 {
					t.Errorf("database %s starts with %d tables, want none", db, tables)
				}
				// Both tests create the same table: that only works in separate databases.
				if _, err := conn.Exec(ctx, "CREATE TABLE marker (test text)"); err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(ctx, "INSERT INTO marker VALUES ($1)", name); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				databases[name] = db
				mu.Unlock()
			})
		}
	})
	first, second := databases["first"], databases["second"]
	if first == "" || second == "" || first == second {
		t.Fatalf("databases of the two tests: %q and %q, want two different ones", first, second)
	}
	for _, db := range []string{first, second} {
		if pgDatabaseExists(t, db) {
			t.Errorf("database %s still exists after its test ended", db)
		}
	}
}

func TestPostgresPool(t *testing.T) {
	t.Parallel()
	var pool *pgxpool.Pool
	var db string
	t.Run("test", func(t *testing.T) {
		pool = PostgresPool(t)
		if err := pool.QueryRow(context.Background(), "SELECT current_database()").Scan(&db); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(db, "t_testpostgrespool_test_") {
			t.Errorf("database name %q does not tell which test it belongs to", db)
		}
	})
	if db == "" {
		t.FailNow()
	}
	if err := pool.Ping(context.Background()); err == nil {
		t.Error("pool still usable after its test ended")
	}
	if pgDatabaseExists(t, db) {
		t.Errorf("database %s still exists after its test ended", db)
	}
}

func TestPostgresClusterIsSharedAndHasStatStatements(t *testing.T) {
	t.Parallel()
	if a, b := PostgresCluster(t), PostgresCluster(t); a != b {
		t.Error("PostgresCluster returned two different clusters in one test binary")
	}
	conn := pgConnect(t, PostgresURL(t))
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE EXTENSION pg_stat_statements"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_statements").Scan(&n); err != nil {
		t.Fatalf("pg_stat_statements not usable (is it preloaded?): %v", err)
	}
}

func TestPostgresHelpersRequireMain(t *testing.T) {
	t.Parallel()
	p, err := sharedCluster(false)
	if p != nil || !errors.Is(err, errNoMain) {
		t.Fatalf("sharedCluster without Main = %v, %v; want errNoMain", p, err)
	}
	if want := "func TestMain(m *testing.M) { stacktest.Main(m) }"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not show the TestMain to add", err)
	}
}

func TestDatabaseName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		testName string
		seq      uint64
		want     string
	}{
		{name: "simple", testName: "TestStore", seq: 1, want: "t_teststore_1"},
		{name: "subtest punctuation", testName: "TestStore/append-twice#01", seq: 12, want: "t_teststore_append_twice_01_12"},
		{name: "non-ASCII", testName: "TestÄ", seq: 3, want: "t_test__3"},
		{name: "long name is cut to 63 bytes", testName: strings.Repeat("x", 100), seq: 123456, want: "t_" + strings.Repeat("x", 54) + "_123456"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := databaseName(tt.testName, tt.seq)
			if got != tt.want {
				t.Errorf("databaseName(%q, %d) = %q, want %q", tt.testName, tt.seq, got, tt.want)
			}
			if len(got) > 63 {
				t.Errorf("databaseName(%q, %d) is %d bytes long", tt.testName, tt.seq, len(got))
			}
		})
	}
}

// helperEnv selects what TestSharedClusterHelperProcess does in a child
// test binary.
const helperEnv = "STACKTEST_HELPER_MODE"

// TestSharedClusterHelperProcess does nothing in a normal run. The test
// below runs this test binary again with only this test selected and
// helperEnv set, to watch a whole test binary's life: it starts the shared
// cluster, reports the postmaster's pid and the data directory, then either
// returns (mode "return", so Main cleans up) or blocks until killed (mode
// "block").
func TestSharedClusterHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	p := PostgresCluster(t)
	b, err := os.ReadFile(filepath.Join(p.DataDir(), "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _, _ := strings.Cut(string(b), "\n")
	fmt.Printf("helper postmaster=%s datadir=%s\n", pid, p.DataDir())
	if mode == "block" {
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	}
}

// processRunning reports whether pid is a live, not yet exited process.
func processRunning(pid int) bool {
	if runtime.GOOS != "linux" {
		return processAlive(pid)
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name; Z and X have exited.
	i := strings.LastIndexByte(string(b), ')')
	state := strings.Fields(string(b[i+1:]))[0]
	return state != "Z" && state != "X"
}

func TestMainLeavesNoServerBehind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mode string
		kill bool
	}{
		{name: "Main stops the cluster and removes its directory", mode: "return"},
		{name: "a killed test binary's server stops and its directory is swept", mode: "block", kill: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestSharedClusterHelperProcess$", "-test.count=1", "-test.timeout=2m")
			cmd.Env = append(os.Environ(), helperEnv+"="+tt.mode)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })

			var pid int
			var dataDir string
			lines := bufio.NewScanner(stdout)
			for lines.Scan() {
				if _, err := fmt.Sscanf(lines.Text(), "helper postmaster=%d datadir=%s", &pid, &dataDir); err == nil {
					break
				}
			}
			if pid == 0 {
				_ = cmd.Wait()
				t.Fatalf("helper reported no cluster; stderr: %s", stderr.String())
			}
			if tt.kill {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
			}
			for lines.Scan() {
			}
			err = cmd.Wait()
			if !tt.kill && err != nil {
				t.Fatalf("helper test binary: %v; stderr: %s", err, stderr.String())
			}

			Eventually(t, 10*time.Second, func() bool { return !processRunning(pid) },
				"postmaster %d still running after its test binary ended", pid)
			clusterDir := filepath.Dir(dataDir)
			if tt.kill {
				if _, err := os.Stat(clusterDir); err != nil {
					t.Fatalf("the killed binary's directory is already gone (%v); the sweep below tests nothing", err)
				}
				sweepStaleClusterDirs(filepath.Dir(clusterDir))
			}
			if _, err := os.Stat(clusterDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cluster directory %s still exists: %v", clusterDir, err)
			}
		})
	}
}
