package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/stack"
)

// proc is a child process started in a process group of its own, so that
// stopping it stops everything it started in that group, and so that a
// Ctrl-C in the terminal reaches only this program, which then stops its
// children in order.
type proc struct {
	name string
	sp   *stack.Process
	// done is closed once the process was reaped and its output closed.
	done chan struct{}

	// lines receives stdout line by line when the process was started
	// with watch; it is closed at end of output.
	lines chan string
}

// procs keeps every process this program started, so that all of them are
// stopped whatever happens.
type procs struct {
	logDir string
	mu     sync.Mutex
	list   []*proc
}

func newProcs(logDir string) *procs { return &procs{logDir: logDir} }

// start runs argv in dir with env added to the environment. Its stderr goes
// to <logDir>/<name>.log; its stdout too, and with watch also to p.lines.
// The process gets its own process group and, should this program die,
// SIGTERM from the kernel.
func (ps *procs) start(name, dir string, env []string, watch bool, argv ...string) (*proc, error) {
	return ps.startOut(name, dir, env, watch, nil, argv...)
}

// startOut is start with stdout also copied to out, if not nil (and watch
// false).
func (ps *procs) startOut(name, dir string, env []string, watch bool, out io.Writer, argv ...string) (*proc, error) {
	logFile, err := os.Create(filepath.Join(ps.logDir, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logFile
	p := &proc{name: name, done: make(chan struct{})}
	var lw *lineWriter
	switch {
	case watch:
		p.lines = make(chan string, 1024)
		lw = &lineWriter{log: logFile, lines: p.lines}
		cmd.Stdout = lw
	case out != nil:
		cmd.Stdout = io.MultiWriter(logFile, out)
	default:
		cmd.Stdout = logFile
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	// A grandchild that keeps stdout open must not keep Wait waiting.
	cmd.WaitDelay = 5 * time.Second

	if p.sp, err = stack.StartProcess(cmd); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(argv, " "), err)
	}
	go func() {
		<-p.sp.Done()
		if lw != nil {
			lw.close()
		}
		logFile.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// lineWriter copies a process's output to its log, secrets redacted, and
// hands every complete line to a channel, dropping lines nobody reads.
type lineWriter struct {
	log     io.Writer
	lines   chan string
	partial []byte
}

// Write implements io.Writer.
func (w *lineWriter) Write(b []byte) (int, error) {
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.emit(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
}

// emit logs a line, with any secret in it redacted, and hands it on.
func (w *lineWriter) emit(line string) {
	fmt.Fprintln(w.log, redact(line))
	select {
	case w.lines <- line:
	default:
	}
}

func (w *lineWriter) close() {
	if len(w.partial) > 0 {
		w.emit(string(w.partial))
	}
	close(w.lines)
}

// secretPattern matches a token secret, which never goes into a log.
var secretPattern = regexp.MustCompile(regexp.QuoteMeta(domain.SecretPrefix) + `[0-9A-Za-z_]+`)

// redact replaces every secret in s.
func redact(s string) string {
	return secretPattern.ReplaceAllString(s, domain.SecretPrefix+"[redacted]")
}

// logTail returns the last lines of the process's log, for error messages.
func (ps *procs) logTail(p *proc, n int) string {
	b, err := os.ReadFile(filepath.Join(ps.logDir, p.name+".log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop sends sig to the process group, waits up to grace for the process
// to end, then kills the group (stack.Process.StopGroup). It is a no-op on
// a process that ended.
func (ps *procs) stop(p *proc, sig syscall.Signal, grace time.Duration) {
	defer ps.forget(p)
	if p.sp.StopGroup(sig, grace) {
		logf("%s did not stop within %s after %s: killed its process group", p.name, grace, sig)
	}
	<-p.done
}

func (ps *procs) forget(p *proc) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for i, q := range ps.list {
		if q == p {
			ps.list = append(ps.list[:i], ps.list[i+1:]...)
			return
		}
	}
}

// stopAll stops every process still running, the last started first.
func (ps *procs) stopAll() {
	for {
		ps.mu.Lock()
		if len(ps.list) == 0 {
			ps.mu.Unlock()
			return
		}
		p := ps.list[len(ps.list)-1]
		ps.mu.Unlock()
		ps.stop(p, syscall.SIGINT, 30*time.Second)
	}
}

// waitLine reads p's stdout until match returns true for a line, and
// returns that line. It fails when the process ends first, or after
// timeout.
func (ps *procs) waitLine(ctx context.Context, p *proc, timeout time.Duration, match func(string) bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				<-p.done
				return "", fmt.Errorf("%s exited (%v) before it was ready; its log ends with:\n%s", p.name, p.sp.Err(), ps.logTail(p, 20))
			}
			if match(line) {
				return line, nil
			}
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return "", fmt.Errorf("%s not ready after %s; its log ends with:\n%s", p.name, timeout, ps.logTail(p, 20))
			}
			return "", ctx.Err()
		}
	}
}

// runCmd runs argv to completion in dir, with its output going to
// <logDir>/<name>.log, and returns its stdout. A non-zero exit is an error
// quoting the end of the output.
func (ps *procs) runCmd(ctx context.Context, name, dir string, env []string, argv ...string) (string, error) {
	var out strings.Builder
	p, err := ps.startOut(name, dir, env, false, &out, argv...)
	if err != nil {
		return "", err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		ps.stop(p, syscall.SIGTERM, 30*time.Second)
		return out.String(), ctx.Err()
	}
	ps.forget(p)
	if err := p.sp.Err(); err != nil {
		return out.String(), fmt.Errorf("%s failed (%v); its output ends with:\n%s", strings.Join(argv, " "), err, ps.logTail(p, 30))
	}
	return out.String(), nil
}

// logf prints a progress line on stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
