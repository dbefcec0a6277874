package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tokenledger/tokenledger/stack"
)

// process is a long-running child: a nats-server, a serve node or a
// project process. Its output goes to its log file. It runs in a process
// group of its own, so a Ctrl-C at the terminal reaches only the
// supervisor, which stops the children in order.
type process struct {
	name    string
	logFile string
	*stack.Process

	mu       sync.Mutex
	stopping bool
}

// startProcess starts bin with args and env, its output appended to
// logFile. onExit is called, on a goroutine of its own, when the process
// exits without having been asked to stop.
func startProcess(name, logFile, bin string, args, env []string, onExit func(*process, error)) (*process, error) {
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sp, err := stack.StartProcess(cmd)
	if err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, logFile: logFile, Process: sp}
	go func() {
		<-sp.Done()
		_ = log.Close()
		p.mu.Lock()
		stopping := p.stopping
		p.mu.Unlock()
		if !stopping && onExit != nil {
			onExit(p, sp.Err())
		}
	}()
	return p, nil
}

// running reports whether the process has not exited.
func (p *process) running() bool { return !p.Exited() }

// kill sends SIGKILL, as a crash would, and waits for the exit. The exit
// is not reported as unexpected.
func (p *process) kill() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	p.Signal(syscall.SIGKILL)
	<-p.Done()
}

// stop sends SIGTERM and waits for the exit until ctx ends, then sends
// SIGKILL. A process that had exited already is not an error here: its exit
// was reported when it happened.
func (p *process) stop(ctx context.Context) error {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	if !p.running() {
		return nil
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.Done():
		return nil
	case <-ctx.Done():
		p.Signal(syscall.SIGKILL)
		<-p.Done()
		return fmt.Errorf("%s did not stop in time: killed", p.name)
	}
}

// runOnce runs bin to completion with args and env and returns its
// standard output; a failure carries the last lines of its standard error.
func runOnce(ctx context.Context, logFile, bin string, args, env []string) (string, error) {
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", err
	}
	defer log.Close()
	var stdout, stderr strings.Builder
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(&stderr, log)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, lines[len(lines)-1])
	}
	return stdout.String(), nil
}

// errStopped is the error of a cluster stopped by Stop.
var errStopped = errors.New("cluster stopped")
