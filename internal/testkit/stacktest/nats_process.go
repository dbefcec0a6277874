package stacktest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildNATSServer compiles nats-server, at the version this module
// requires, once per test binary.
var buildNATSServer = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tokenledger-nats-server-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "nats-server")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build nats-server: %w: %s", err, out)
	}
	return bin, nil
})

// NATSServerBinary returns the path of a nats-server binary built from
// the module's own nats-server version, once per test binary.
func NATSServerBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := buildNATSServer()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// TokenledgerBinary returns the path of the tokenledger binary built from
// this module, once per test binary.
func TokenledgerBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := buildTokenledger()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

var buildTokenledger = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tokenledger-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "tokenledger")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/tokenledger/tokenledger/cmd/tokenledger").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build tokenledger: %w: %s", err, out)
	}
	return bin, nil
})

// NATSProcess runs nats-server with JetStream in a process of its own, as
// it is deployed, on a random loopback port with its store in a temporary
// directory, and returns its client URL; the server is stopped when the
// test ends. Use it where the server must not share the test's process: a
// test that kills the processes under test, or a benchmark whose garbage
// collector or race detector would otherwise slow the server down. The
// binary is built from the module's own nats-server version, once per test
// binary.
func NATSProcess(tb testing.TB) string {
	tb.Helper()
	bin, err := buildNATSServer()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	cmd := exec.Command(bin, "-js", "-sd", filepath.Join(dir, "store"), "-a", "127.0.0.1", "-p", "-1",
		"--ports_file_dir", dir, "-n", "test")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start nats-server: %v", err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	var ports struct {
		Nats []string `json:"nats"`
	}
	portsFile := filepath.Join(dir, fmt.Sprintf("nats-server_%d.ports", cmd.Process.Pid))
	Eventually(tb, time.Minute, func() bool {
		raw, err := os.ReadFile(portsFile)
		return err == nil && json.Unmarshal(raw, &ports) == nil && len(ports.Nats) > 0
	}, "nats-server writes its ports file; log:\n%s", logs)
	return ports.Nats[0]
}

// syncBuffer collects a process's output; safe to read while it writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// String returns what was written so far.
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
