//go:build cluster

package clustertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/stack"
)

// composeFile is deploy/compose.yaml, relative to this package.
const composeFile = "../../deploy/compose.yaml"

// The NATS nodes, as compose names them. The partition tests always cut
// off cutNode; the majority-side API nodes and the projectors are kept off
// it (see overrideYAML).
var natsNodes = []string{"nats-1", "nats-2", "nats-3"}

const cutNode = "nats-1"

// edgeService is an API node of the test's own on the cut-off side of a
// partition: it shares a network of its own, edge, with cutNode only.
const edgeService = "serve-edge"

// overrideYAML adapts compose.yaml for the fault tests. The API nodes and
// the projectors connect to nats-2 and nats-3 only, so that a partition
// of cutNode leaves them on the majority side at once (a client finds out
// that its server was cut off only from its pings). serve-edge is on the
// network edge, with nats-1 and nobody else: when nats-1 is cut off the
// main network, serve-edge and nats-1 are the minority side, as clients in
// the same partition as a server are; serve-edge cannot fail over to the
// servers the cluster told it about, because it cannot reach them.
const overrideYAML = `
services:
  nats-1:
    networks: [tokenledger, edge]
  serve-1:
    environment:
      TOKENLEDGER_NATS_URL: nats://api:${NATS_API_PASSWORD}@nats-2:4222,nats://api:${NATS_API_PASSWORD}@nats-3:4222
  serve-2:
    environment:
      TOKENLEDGER_NATS_URL: nats://api:${NATS_API_PASSWORD}@nats-2:4222,nats://api:${NATS_API_PASSWORD}@nats-3:4222
  project-1:
    environment:
      TOKENLEDGER_NATS_URL: nats://worker:${NATS_WORKER_PASSWORD}@nats-2:4222,nats://worker:${NATS_WORKER_PASSWORD}@nats-3:4222
  project-2:
    environment:
      TOKENLEDGER_NATS_URL: nats://worker:${NATS_WORKER_PASSWORD}@nats-2:4222,nats://worker:${NATS_WORKER_PASSWORD}@nats-3:4222
  serve-edge:
    image: ${TOKENLEDGER_IMAGE:-tokenledger:dev}
    command: ["serve"]
    networks: [edge]
    extra_hosts: ["host.docker.internal:host-gateway"]
    environment:
      TOKENLEDGER_LOG_FORMAT: json
      TOKENLEDGER_NATS_URL: nats://api:${NATS_API_PASSWORD}@nats-1:4222
      TOKENLEDGER_POSTGRES_URL: ${TOKENLEDGER_POSTGRES_URL}
      TOKENLEDGER_HTTP_ADDR: 0.0.0.0:8080
    ports: ["127.0.0.1::8080"]
    depends_on:
      streams-init: {condition: service_completed_successfully}
      migrate: {condition: service_completed_successfully}
networks:
  edge: {}
`

// cluster is one running compose project.
type cluster struct {
	t       *testing.T
	project string
	env     []string
	files   []string
	network string

	operatorPassword string
	adminToken       string
	serve            map[string]string // service -> base URL on the host
	nc               *nats.Conn        // the operator, through every node's published port
	js               jetstream.JetStream
	pgURL            string // the read model, from the host
}

// on returns c bound to t, a subtest's: its helpers fail t, from t's own
// goroutine, not the parent test's (whose FailNow a subtest may not call).
func (c *cluster) on(t *testing.T) *cluster {
	sub := *c
	sub.t = t
	return &sub
}

// startCluster builds nothing: the images must exist (make images). It
// starts PostgreSQL on the Docker host's bridge address, the compose
// topology under a project name of its own, and waits until every API node
// is ready.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Fatalf("no Docker engine answers (docker info: %v: %s)", err, bytes.TrimSpace(out))
	}
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatalf("docker-compose not found: %v", err)
	}
	for _, img := range []string{imageName("TOKENLEDGER_IMAGE", "tokenledger:dev"), imageName("NATS_IMAGE", "tokenledger-nats:dev")} {
		if out, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", img).CombinedOutput(); err != nil {
			t.Fatalf("image %s missing (build it with make images): %s", img, bytes.TrimSpace(out))
		}
	}

	c := &cluster{t: t, project: "tltest" + randomHex(4), serve: map[string]string{}}
	c.network = c.project + "_tokenledger"
	pgHost := bridgeAddress(t)
	pg := startPostgres(t, pgHost)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pg.CreateDatabase(ctx, "tokenledger"); err != nil {
		t.Fatal(err)
	}
	c.pgURL = pg.URL("tokenledger")

	dir := t.TempDir()
	override := filepath.Join(dir, "override.yaml")
	if err := os.WriteFile(override, []byte(overrideYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	c.files = []string{composeFile, override}
	c.operatorPassword = randomHex(16)
	c.env = append(os.Environ(),
		"COMPOSE_PROJECT_NAME="+c.project,
		"NATS_OPERATOR_PASSWORD="+c.operatorPassword,
		"NATS_API_PASSWORD="+randomHex(16),
		"NATS_WORKER_PASSWORD="+randomHex(16),
		"NATS_VALIDATOR_PASSWORD="+randomHex(16),
		fmt.Sprintf("TOKENLEDGER_POSTGRES_URL=postgres://postgres@host.docker.internal:%d/tokenledger?sslmode=disable", pg.Port()),
	)
	t.Cleanup(c.down)

	start := time.Now()
	c.compose("up", "-d")
	t.Logf("compose up in %s", time.Since(start).Round(time.Millisecond))

	urls := make([]string, 0, len(natsNodes))
	for _, n := range natsNodes {
		urls = append(urls, fmt.Sprintf("nats://operator:%s@%s", c.operatorPassword, c.port(n, 4222)))
	}
	var err error
	c.nc, err = nats.Connect(strings.Join(urls, ","), nats.Name("clustertest"), nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.nc.Close)
	if c.js, err = jetstream.New(c.nc); err != nil {
		t.Fatal(err)
	}

	for _, s := range []string{"serve-1", "serve-2", edgeService} {
		base := "http://" + c.port(s, 8080)
		c.serve[s] = base
		stacktest.Eventually(t, 2*time.Minute, func() bool { return httpStatus(base+"/readyz") == http.StatusOK },
			"%s ready; logs:\n%s", s, c.logsFunc(s))
	}
	var token string
	stacktest.Eventually(t, time.Minute, func() bool {
		token = regexp.MustCompile(`tlk_[A-Za-z0-9_]+`).FindString(c.logs("bootstrap"))
		return token != ""
	}, "bootstrap prints the admin token")
	c.adminToken = token
	c.waitConverged()
	t.Logf("cluster %s up in %s; stream leader %s", c.project, time.Since(start).Round(time.Millisecond), c.leader())
	return c
}

// down removes every container, network and volume of the project, after
// logging the services' last lines when the test failed.
// With CLUSTERTEST_LOGS set to a directory, every service's whole log is
// kept there too, in a file named after the project.
func (c *cluster) down() {
	if c.t.Failed() {
		c.t.Logf("logs (last lines):\n%s", c.logsTail(60))
		if dir := os.Getenv("CLUSTERTEST_LOGS"); dir != "" {
			out, _ := c.command("logs", "--no-color", "--timestamps").CombinedOutput()
			file := filepath.Join(dir, c.project+".log")
			if err := os.WriteFile(file, out, 0o644); err != nil {
				c.t.Errorf("keeping the logs: %v", err)
			} else {
				c.t.Logf("every service's log: %s", file)
			}
		}
	}
	cmd := c.command("down", "-v", "--remove-orphans", "-t", "5")
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Errorf("docker-compose down: %v: %s", err, out)
	}
}

func (c *cluster) command(args ...string) *exec.Cmd {
	full := []string{"--ansi", "never"}
	for _, f := range c.files {
		full = append(full, "-f", f)
	}
	cmd := exec.Command("docker-compose", append(full, args...)...)
	cmd.Env = c.env
	return cmd
}

// compose runs docker-compose and fails the test if it fails.
func (c *cluster) compose(args ...string) string {
	c.t.Helper()
	var stderr bytes.Buffer
	cmd := c.command(args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("docker-compose %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// docker runs the docker command and fails the test if it fails.
func (c *cluster) docker(args ...string) string {
	c.t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// container returns the id of service's container.
func (c *cluster) container(service string) string {
	c.t.Helper()
	id := strings.TrimSpace(c.compose("ps", "-q", service))
	if id == "" {
		c.t.Fatalf("no container for %s", service)
	}
	return id
}

// port returns the host address of service's published port.
func (c *cluster) port(service string, port int) string {
	c.t.Helper()
	addr := strings.TrimSpace(c.compose("port", service, fmt.Sprint(port)))
	if _, _, err := net.SplitHostPort(addr); err != nil {
		c.t.Fatalf("port %d of %s: %q", port, service, addr)
	}
	return addr
}

func (c *cluster) logs(service string) string {
	out, _ := c.command("logs", "--no-color", service).CombinedOutput()
	return string(out)
}

func (c *cluster) logsFunc(service string) fmt.Stringer {
	return stringer(func() string { return c.logs(service) })
}

func (c *cluster) logsTail(n int) string {
	out, _ := c.command("logs", "--no-color", "--tail", fmt.Sprint(n)).CombinedOutput()
	return string(out)
}

// kill sends SIGKILL to service's container; start starts it again.
func (c *cluster) kill(service string)  { c.docker("kill", "--signal", "KILL", c.container(service)) }
func (c *cluster) start(service string) { c.docker("start", c.container(service)) }

// restart stops service gracefully (SIGTERM, 30 s) and starts it again.
func (c *cluster) restart(service string) { c.docker("restart", "-t", "30", c.container(service)) }

// disconnect cuts service off the private network; connect puts it back
// under its service name, which the routes and clients dial.
// Both are checked by inspecting the container afterwards and asked again
// when the daemon failed (a busy daemon may fail or half-do either).
func (c *cluster) disconnect(service string) {
	c.t.Helper()
	id := c.container(service)
	c.networkChange(id, false, "network", "disconnect", c.network, id)
}

func (c *cluster) connect(service string) {
	c.t.Helper()
	id := c.container(service)
	c.networkChange(id, true, "network", "connect", "--alias", service, c.network, id)
}

// networkChange runs the docker command args until container id is (want)
// or is not (!want) on the project's network, at most three times.
func (c *cluster) networkChange(id string, want bool, args ...string) {
	c.t.Helper()
	var errs []string
	for range 3 {
		out, err := exec.Command("docker", args...).CombinedOutput()
		if c.onNetwork(id) == want {
			return
		}
		errs = append(errs, fmt.Sprintf("%v: %s", err, bytes.TrimSpace(out)))
	}
	c.t.Fatalf("docker %s: the container is still %s the network: %s", strings.Join(args, " "),
		map[bool]string{true: "off", false: "on"}[want], strings.Join(errs, "; "))
}

// onNetwork reports whether container id is attached to the project's
// network.
func (c *cluster) onNetwork(id string) bool {
	c.t.Helper()
	nets := c.docker("inspect", "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", id)
	return slices.Contains(strings.Fields(nets), c.network)
}

// streamInfo reads the lifecycle stream's state, from whichever node
// answers.
func (c *cluster) streamInfo() (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := c.js.Stream(ctx, eventstore.DefaultStream)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// leader returns the lifecycle stream's leader, "" while there is none.
func (c *cluster) leader() string {
	info, err := c.streamInfo()
	if err != nil || info.Cluster == nil {
		return ""
	}
	return info.Cluster.Leader
}

// waitConverged waits until the lifecycle stream has a leader and both
// other replicas are current, caught up and online.
func (c *cluster) waitConverged() {
	c.t.Helper()
	var last string
	stacktest.Eventually(c.t, 2*time.Minute, func() bool {
		info, err := c.streamInfo()
		if err != nil {
			last = err.Error()
			return false
		}
		cl := info.Cluster
		if cl == nil || cl.Leader == "" || len(cl.Replicas) != len(natsNodes)-1 {
			last = fmt.Sprintf("%+v", cl)
			return false
		}
		for _, r := range cl.Replicas {
			if !r.Current || r.Offline || r.Lag != 0 {
				last = fmt.Sprintf("replica %s current %v offline %v lag %d", r.Name, r.Current, r.Offline, r.Lag)
				return false
			}
		}
		return true
	}, "the lifecycle stream's replicas converge: %s", stringer(func() string { return last }))
}

// moveLeader steps the lifecycle stream's leader down until want(leader)
// holds.
func (c *cluster) moveLeader(want func(leader string) bool) string {
	c.t.Helper()
	for range 10 {
		leader := c.leader()
		if leader != "" && want(leader) {
			return leader
		}
		if leader != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = c.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+eventstore.DefaultStream, nil)
			cancel()
		}
		stacktest.Eventually(c.t, 30*time.Second, func() bool { l := c.leader(); return l != "" && l != leader },
			"a new leader after %s stepped down", leader)
		c.waitConverged()
	}
	c.t.Fatalf("could not move the stream leader (now %s)", c.leader())
	return ""
}

// bridgeAddress is the Docker host's address on the default bridge, which
// the containers reach as host.docker.internal (host-gateway).
func bridgeAddress(t *testing.T) string {
	t.Helper()
	iface, err := net.InterfaceByName("docker0")
	if err != nil {
		t.Fatalf("the Docker bridge docker0: %v", err)
	}
	addrs, err := iface.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	t.Fatalf("docker0 has no IPv4 address")
	return ""
}

// startPostgres runs a PostgreSQL cluster listening on host only, open to
// the machine's own subnets (the compose network's among them), and stops
// it when the test ends.
func startPostgres(t *testing.T, host string) *stack.Postgres {
	t.Helper()
	// Traversable by the unprivileged server user when the test runs as
	// root (see package stack).
	parent, err := os.MkdirTemp("", "tokenledger-clustertest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The first start, on loopback, initialises the cluster; the second
	// listens on host, once pg_hba.conf lets the containers in (and the
	// test itself, whose connections to host come from the machine's own
	// address).
	cfg := stack.PostgresConfig{DataDir: filepath.Join(parent, "pg")}
	pg, err := stack.StartPostgres(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(pg.DataDir(), "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("host all all samenet trust\n")
	if err = errors.Join(err, f.Close()); err != nil {
		t.Fatal(err)
	}
	cfg.Host = host
	if pg, err = stack.StartPostgres(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })
	return pg
}

func imageName(env, def string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func httpStatus(url string) int {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// stringer defers building a failure message until it is printed.
type stringer func() string

func (s stringer) String() string { return s() }
