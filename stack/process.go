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

// Process is a started child process whose exit is awaited by a goroutine
// that stays locked to the OS thread that started it, so that a
// parent-death signal set in its SysProcAttr (Pdeathsig, Linux) fires when
// this process dies, and only then. The local stack's servers, the test
// harnesses' and the benchmark's children all run through it.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the result of cmd.Wait, set before done is closed
}

// StartProcess starts cmd and returns once it runs.
//
// The kernel delivers the parent-death signal when the thread that forked
// the child exits, not when the process does, and the Go runtime ends a
// thread whenever a goroutine locked to it exits. Forking from a goroutine
// that stays locked to its thread until the child has been reaped keeps
// that thread alive exactly as long as the child, so the signal fires only
// when this process dies.
func StartProcess(cmd *exec.Cmd) (*Process, error) {
	p := &Process{cmd: cmd, done: make(chan struct{})}
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

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns how the process ended, as exec.Cmd.Wait reports it: nil for
// a clean exit. Call it only once Done is closed.
func (p *Process) Err() error { return p.err }

// Signal sends sig to the process unless it has already exited.
func (p *Process) Signal(sig os.Signal) {
	// The only possible error is that the process is gone, which is the goal.
	_ = p.cmd.Process.Signal(sig)
}

// Stop sends sig to the process, waits up to grace for it to exit, then
// sends SIGKILL; it returns once the process is reaped, and reports whether
// it had to kill it. A process that exited already is left as it is.
func (p *Process) Stop(sig os.Signal, grace time.Duration) (killed bool) {
	return p.stop(func(s os.Signal) { p.Signal(s) }, sig, grace)
}

// StopGroup is Stop for the process and everything it started in its
// process group: the child must lead one (SysProcAttr.Setpgid).
func (p *Process) StopGroup(sig syscall.Signal, grace time.Duration) (killed bool) {
	pgid := p.cmd.Process.Pid
	return p.stop(func(s os.Signal) { _ = syscall.Kill(-pgid, s.(syscall.Signal)) }, sig, grace)
}

func (p *Process) stop(send func(os.Signal), sig os.Signal, grace time.Duration) bool {
	if p.Exited() {
		return false
	}
	send(sig)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return false
	case <-t.C:
	}
	send(syscall.SIGKILL)
	<-p.done
	return true
}

// exitError returns the process's exit status as an error naming the
// program (nil for a clean exit); call it only once Done is closed.
func (p *Process) exitError() error {
	if p.err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(p.cmd.Path), p.err)
	}
	return nil
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
