package stack

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

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
