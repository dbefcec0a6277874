package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

// buildBinary compiles tokenledger once per test binary.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tokenledger-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "tokenledger")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", &buildError{out: string(out), err: err}
	}
	return bin, nil
})

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + e.out }

// devRun is one `tokenledger dev` process whose stdout is read line by line.
type devRun struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr syncBuffer
}

// syncBuffer is a bytes.Buffer safe to read while the process writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startDev(t *testing.T, dataDir string) *devRun {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatalf("build tokenledger: %v", err)
	}
	r := &devRun{lines: make(chan string, 100)}
	r.cmd = exec.Command(bin, "dev", "--nats-port", "0", "--postgres-port", "0")
	r.cmd.Env = append(os.Environ(), "TOKENLEDGER_DATA_DIR="+dataDir)
	r.cmd.Stderr = &r.stderr
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start dev: %v", err)
	}
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
	}()
	return r
}

// waitBanner reads stdout up to the banner's ready line and returns it.
func (r *devRun) waitBanner(t *testing.T) string {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	var banner []string
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				t.Fatalf("dev exited before it was ready; stderr:\n%s", r.stderr.String())
			}
			banner = append(banner, line)
			if line == readyLine {
				return strings.Join(banner, "\n")
			}
		case <-deadline:
			t.Fatalf("not ready within 2 minutes; stdout so far:\n%s\nstderr:\n%s", strings.Join(banner, "\n"), r.stderr.String())
		}
	}
}

// interrupt sends SIGINT and waits for a clean exit.
func (r *devRun) interrupt(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev exited with %v after SIGINT; stderr:\n%s", err, r.stderr.String())
		}
	case <-time.After(stopTimeout + 5*time.Second):
		_ = r.cmd.Process.Kill()
		t.Fatalf("dev did not stop within %v of SIGINT", stopTimeout+5*time.Second)
	}
	return time.Since(start)
}

var eventsLine = regexp.MustCompile(`event stream\s+\S+: (\d+) events?`)

func eventCount(t *testing.T, banner string) int {
	t.Helper()
	m := eventsLine.FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("banner has no event count:\n%s", banner)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestDevRestartKeepsEvents(t *testing.T) {
	// The local PostgreSQL runs as an unprivileged user when the tests run
	// as root, so the data directory must be reachable by it.
	dataDir := filepath.Join(stacktest.TraversableDir(t), "data")

	first := startDev(t, dataDir)
	banner := first.waitBanner(t)
	for _, want := range []string{"NATS (JetStream)  nats://127.0.0.1:", "PostgreSQL        postgres://", "First start"} {
		if !strings.Contains(banner, want) {
			t.Errorf("first banner lacks %q:\n%s", want, banner)
		}
	}
	secretRE := regexp.MustCompile(domain.SecretPattern)
	adminToken := secretRE.FindString(banner)
	if adminToken == "" {
		t.Fatalf("first start printed no admin token:\n%s", banner)
	}
	if _, err := domain.ParseSecret(adminToken); err != nil {
		t.Fatalf("printed admin token does not parse: %v", err)
	}
	if n := eventCount(t, banner); n < 1 {
		t.Fatalf("first start: %d events, want the bootstrap event", n)
	}
	// The banner says which instance the CLI must call: its ports change
	// when the default ones are taken.
	api := regexp.MustCompile(`(?m)^  API +(http://\S+)`).FindStringSubmatch(banner)
	if api == nil {
		t.Fatalf("banner names no API URL:\n%s", banner)
	}
	for _, want := range []string{"\n  export TOKENLEDGER_SERVER=" + api[1] + "\n", "\n  export TOKENLEDGER_TOKEN=" + adminToken + "\n"} {
		if !strings.Contains(banner, want) {
			t.Errorf("first banner lacks %q:\n%s", want, banner)
		}
	}
	if r := runBinary(t, []string{"TOKENLEDGER_SERVER=" + api[1], "TOKENLEDGER_TOKEN=" + adminToken}, "token", "list"); r.code != 0 {
		t.Errorf("token list with the banner's exports: exit code %d, stderr %q", r.code, r.stderr)
	}
	took := first.interrupt(t)
	t.Logf("first run stopped %v after SIGINT", took)
	if strings.Contains(first.stderr.String(), adminToken) {
		t.Error("the admin token appears in the logs")
	}

	second := startDev(t, dataDir)
	banner2 := second.waitBanner(t)
	if n, want := eventCount(t, banner2), eventCount(t, banner); n != want {
		t.Errorf("second start sees %d events, the first appended %d", n, want)
	}
	if !regexp.MustCompile(`\n  export TOKENLEDGER_SERVER=http://127\.0\.0\.1:\d+\n`).MatchString(banner2) {
		t.Errorf("second banner lacks the export of TOKENLEDGER_SERVER:\n%s", banner2)
	}
	if strings.Contains(banner2, "First start") || secretRE.MatchString(banner2) {
		t.Errorf("second start printed an admin token again:\n%s", banner2)
	}
	second.interrupt(t)
}

func TestEnvironmentSetsFlags(t *testing.T) {
	t.Setenv("TOKENLEDGER_NATS_PORT", "not-a-number")
	cmd := newRootCommand()
	cmd.SetArgs([]string{"dev"})
	cmd.SetOut(io.Discard)
	err := cmd.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "TOKENLEDGER_NATS_PORT") {
		t.Fatalf("a bad TOKENLEDGER_NATS_PORT gave %v, want an error naming it", err)
	}
}
