// Package cluster runs the whole production topology on one machine, each
// part in a process of its own: three nats-server processes routed into
// one JetStream cluster (R3 streams, mutual TLS, a user per role),
// PostgreSQL, two `tokenledger serve` API nodes and `tokenledger project`.
// It is what `make cluster` (`tokenledger cluster`) runs, and what the
// fault tests start to kill and restart its parts.
//
// Everything the cluster keeps is under one directory: secrets/ (the CA,
// the certificates, the NATS credentials of each role), nats/ (the
// servers' configuration files and JetStream stores), postgres/ and logs/
// (one file per process). A second start on the same directory reuses all
// of it.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/natsconn"
	"github.com/tokenledger/tokenledger/stack"
)

// Default ports of Config.Ports: each is taken when free, and replaced by a
// free one otherwise.
var DefaultPorts = Ports{
	NATS:     [3]int{14222, 14223, 14224},
	Routes:   [3]int{16222, 16223, 16224},
	Monitor:  [3]int{18222, 18223, 18224},
	Serve:    [2]int{8081, 8082},
	Project:  [2]int{9191, 9192},
	Postgres: 15432,
}

// Ports are the preferred ports of the cluster's processes; 0 means any
// free port.
type Ports struct {
	NATS, Routes, Monitor [3]int
	Serve                 [2]int
	Project               [2]int
	Postgres              int
}

// Config configures a cluster.
type Config struct {
	// Dir holds everything the cluster keeps (required). It must be
	// traversable by PostgreSQL's unprivileged user when run as root.
	Dir string
	// Tokenledger is the tokenledger binary the processes run (required).
	Tokenledger string
	// NATSServer is the nats-server binary (required).
	NATSServer string
	// Ports are the preferred ports (see DefaultPorts).
	Ports Ports
	// Out receives the lines meant for a person: every URL, the first
	// admin token, the ready line and any process that exits on its own.
	// Nil discards them.
	Out io.Writer
	// Store names the streams; Replicas is set to 3.
	Store eventstore.Config
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("cluster dir must be set"))
	}
	for flag, bin := range map[string]string{"tokenledger binary": c.Tokenledger, "nats-server binary": c.NATSServer} {
		if bin == "" {
			errs = append(errs, fmt.Errorf("%s must be set", flag))
		} else if _, err := os.Stat(bin); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", flag, err))
		}
	}
	if err := c.Store.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	return errors.Join(errs...)
}

// host is the one interface every process listens on.
const host = "127.0.0.1"

// Cluster is a running cluster. Its methods are safe for concurrent use.
type Cluster struct {
	cfg     Config
	secrets *secrets
	nodes   []natsNode

	// NATSURLs are the servers' client URLs, in node order (n1, n2, n3).
	NATSURLs []string
	// APIURLs are the serve nodes' base URLs.
	APIURLs []string
	// ProjectHealthURLs are the project processes' health endpoints:
	// project-1, which leads the projection once started, and project-2,
	// its standby.
	ProjectHealthURLs []string
	// PostgresURL is the read model's database.
	PostgresURL string
	// AdminToken is the secret of the first admin token when this start
	// bootstrapped the ledger; empty on a later start.
	AdminToken string

	postgres *stack.Postgres
	out      io.Writer

	mu      sync.Mutex
	nats    []*process
	workers []*process // serve nodes and project processes
	stopped bool
}

// Start starts the cluster and returns once every process is ready:
// certificates and credentials made (first start), the nats-servers routed
// with a JetStream meta leader, PostgreSQL up, `streams init` (R3),
// `migrate` and `admin bootstrap` done, both serve nodes and the project
// process ready. On error everything started is stopped again.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Store.Replicas = 3
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, err
	}
	for _, sub := range []string{"", "nats", "logs"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, out: cfg.Out}
	defer func() {
		if err != nil {
			_ = c.Stop(context.WithoutCancel(ctx))
		}
	}()
	ports, err := pickPorts(cfg.Ports)
	if err != nil {
		return nil, err
	}
	for i := range 3 {
		name := "n" + strconv.Itoa(i+1)
		c.nodes = append(c.nodes, natsNode{
			name: name, clientPort: ports.NATS[i], routePort: ports.Routes[i], monitorPort: ports.Monitor[i],
			storeDir: filepath.Join(cfg.Dir, "nats", name),
			conf:     filepath.Join(cfg.Dir, "nats", name+".conf"),
			logFile:  filepath.Join(cfg.Dir, "logs", "nats-"+name+".log"),
		})
		c.NATSURLs = append(c.NATSURLs, "nats://"+net.JoinHostPort(host, strconv.Itoa(ports.NATS[i])))
	}
	if c.secrets, err = makeSecrets(filepath.Join(cfg.Dir, "secrets"), []string{"n1", "n2", "n3"}); err != nil {
		return nil, err
	}

	c.nats = make([]*process, len(c.nodes))
	for i, node := range c.nodes {
		conf, err := natsServerConfig(host, node, c.nodes, c.secrets, cfg.Store)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(node.conf, conf, 0o600); err != nil {
			return nil, err
		}
		if err := c.StartNATS(i); err != nil {
			return nil, err
		}
	}
	if err := c.waitNATS(ctx); err != nil {
		return nil, err
	}

	c.postgres, err = stack.StartPostgres(ctx, stack.PostgresConfig{
		DataDir: filepath.Join(cfg.Dir, "postgres"),
		Host:    host,
		Port:    ports.Postgres,
		Durable: true,
	})
	if err != nil {
		return nil, err
	}
	c.PostgresURL = c.postgres.URL("postgres")

	if err := c.setUp(ctx); err != nil {
		return nil, err
	}

	for i, port := range ports.Serve {
		url, err := c.startReady(ctx, "serve-"+strconv.Itoa(i+1), c.secrets.api, port, "serve", "--http-addr")
		if err != nil {
			return nil, err
		}
		c.APIURLs = append(c.APIURLs, url)
	}
	// Two project processes: project-1 starts first and leads the
	// projection; project-2 stands by and takes over when project-1 dies
	// (a PostgreSQL advisory lock decides; see `tokenledger project`).
	for i, port := range ports.Project {
		url, err := c.startReady(ctx, "project-"+strconv.Itoa(i+1), c.secrets.worker, port, "project", "--health-listen")
		if err != nil {
			return nil, err
		}
		c.ProjectHealthURLs = append(c.ProjectHealthURLs, url)
	}
	return c, nil
}

// KillWorker kills the serve or project process of that name ("serve-2",
// "project-1") with SIGKILL, as a crash would. It reports whether one
// was running.
func (c *Cluster) KillWorker(name string) bool {
	c.mu.Lock()
	var p *process
	for _, w := range c.workers {
		if w.name == name && w.running() {
			p = w
		}
	}
	c.mu.Unlock()
	if p == nil {
		return false
	}
	p.kill()
	return true
}

// Operator returns how the operator's processes connect to NATS: for
// tests that inspect the streams or need the operator's rights.
func (c *Cluster) Operator() natsconn.Auth { return c.secrets.operator }

// Dir returns the cluster's directory (absolute).
func (c *Cluster) Dir() string { return c.cfg.Dir }

// NATSNames lists the servers' names in node order.
func (c *Cluster) NATSNames() []string {
	names := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		names[i] = n.name
	}
	return names
}

// KillNATS kills server i (0-based) with SIGKILL, as a crash would; it
// stays down until StartNATS(i).
func (c *Cluster) KillNATS(i int) {
	c.mu.Lock()
	p := c.nats[i]
	c.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// StartNATS starts server i (0-based) with its configuration, if it is
// not running.
func (c *Cluster) StartNATS(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errStopped
	}
	if p := c.nats[i]; p != nil && p.running() {
		return nil
	}
	node := c.nodes[i]
	p, err := startProcess("nats-"+node.name, node.logFile, c.cfg.NATSServer, []string{"-c", node.conf}, os.Environ(), c.exited)
	if err != nil {
		return err
	}
	c.nats[i] = p
	return nil
}

// exited reports a process that exited without being asked to: nothing is
// restarted behind the operator's back.
func (c *Cluster) exited(p *process, err error) {
	fmt.Fprintf(c.out, "cluster: %s exited on its own (%v); not restarted; log: %s\n", p.name, err, p.logFile)
}

// waitNATS waits until the operator can reach JetStream through the
// cluster (a meta leader is elected).
func (c *Cluster) waitNATS(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	for {
		last = c.jetStreamAnswers(ctx)
		if last == nil {
			return nil
		}
		for _, p := range c.nats {
			if !p.running() {
				return fmt.Errorf("%s exited at start; log: %s", p.name, p.logFile)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nats cluster not ready within a minute: %w", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) jetStreamAnswers(ctx context.Context) error {
	nc, err := natsconn.Connect(strings.Join(c.NATSURLs, ","), c.secrets.operator)
	if err != nil {
		return err
	}
	defer nc.Close()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return eventstore.Available(short, nc)
}

// setUp runs the set-up commands as the operator: streams init (R3),
// migrate, and admin bootstrap on an empty ledger.
func (c *Cluster) setUp(ctx context.Context) error {
	env := c.env(c.secrets.operator)
	logFile := filepath.Join(c.cfg.Dir, "logs", "setup.log")
	if _, err := runOnce(ctx, logFile, c.cfg.Tokenledger, []string{"streams", "init"}, env); err != nil {
		return err
	}
	if _, err := runOnce(ctx, logFile, c.cfg.Tokenledger, []string{"migrate"}, env); err != nil {
		return err
	}
	out, err := runOnce(ctx, logFile, c.cfg.Tokenledger, []string{"admin", "bootstrap"}, env)
	if err != nil {
		if strings.Contains(err.Error(), "not empty") {
			return nil // bootstrapped at an earlier start
		}
		return err
	}
	for line := range strings.SplitSeq(out, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "tlk_") {
			c.AdminToken = line
		}
	}
	if c.AdminToken == "" {
		return errors.New("admin bootstrap printed no token")
	}
	return nil
}

// env is the environment of a tokenledger process connecting as auth:
// the process's own environment without any TOKENLEDGER_ setting, then
// the cluster's.
func (c *Cluster) env(auth natsconn.Auth) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKENLEDGER_") {
			env = append(env, kv)
		}
	}
	set := func(name, value string) {
		if value != "" {
			env = append(env, "TOKENLEDGER_"+name+"="+value)
		}
	}
	set("NATS_URL", strings.Join(c.NATSURLs, ","))
	set("NATS_CA", auth.CAFile)
	set("NATS_CERT", auth.CertFile)
	set("NATS_KEY", auth.KeyFile)
	set("NATS_NKEY", auth.NKeyFile)
	set("NATS_USER", auth.User)
	set("NATS_PASSWORD_FILE", auth.PasswordFile)
	set("POSTGRES_URL", c.PostgresURL)
	set("STREAM", c.cfg.Store.Stream)
	set("USAGE_STREAM", c.cfg.Store.UsageStream)
	set("SUBJECT_PREFIX", c.cfg.Store.SubjectPrefix)
	set("STREAM_REPLICAS", strconv.Itoa(c.cfg.Store.Replicas))
	set("DUPLICATE_WINDOW", c.cfg.Store.DuplicateWindow.String())
	set("USAGE_MAX_AGE", c.cfg.Store.UsageMaxAge.String())
	return env
}

// startWorker starts a long-running tokenledger process connecting as
// auth.
func (c *Cluster) startWorker(name string, auth natsconn.Auth, args ...string) (*process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, errStopped
	}
	p, err := startProcess(name, filepath.Join(c.cfg.Dir, "logs", name+".log"), c.cfg.Tokenledger, args, c.env(auth), c.exited)
	if err != nil {
		return nil, err
	}
	c.workers = append(c.workers, p)
	return p, nil
}

// waitReady polls url until it answers 200, the process exits or a
// minute passes.
func waitReady(ctx context.Context, p *process, url string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if resp, err := client.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited at start; log: %s", p.name, p.logFile)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within a minute at %s; log: %s", p.name, url, p.logFile)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop stops everything: the serve and project processes first, then the
// nats-servers, then PostgreSQL, each with SIGTERM and, past ctx's end or
// 15 seconds, SIGKILL. It is idempotent.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	workers, nats := c.workers, c.nats
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var errs []error
	stopAll := func(ps []*process) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, p := range ps {
			if p == nil {
				continue
			}
			wg.Go(func() {
				if err := p.stop(ctx); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	stopAll(workers)
	stopAll(nats)
	if c.postgres != nil {
		if err := c.postgres.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pickPorts resolves the preferred ports: a free preferred port is kept,
// any other (taken, or 0) is replaced by a free one. All are held at once
// while choosing, so they are distinct.
func pickPorts(want Ports) (Ports, error) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			_ = l.Close()
		}
	}()
	pick := func(preferred int) (int, error) {
		if preferred != 0 {
			if l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(preferred))); err == nil {
				held = append(held, l)
				return preferred, nil
			}
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		held = append(held, l)
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	got := want
	var errs []error
	for _, p := range []*int{
		&got.NATS[0], &got.NATS[1], &got.NATS[2], &got.Routes[0], &got.Routes[1], &got.Routes[2],
		&got.Monitor[0], &got.Monitor[1], &got.Monitor[2], &got.Serve[0], &got.Serve[1], &got.Project[0], &got.Project[1], &got.Postgres,
	} {
		port, err := pick(*p)
		errs = append(errs, err)
		*p = port
	}
	return got, errors.Join(errs...)
}
