package stack

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DefaultClusterFormTimeout bounds how long StartNATSCluster waits for the
// servers to route to each other and elect a JetStream meta leader.
const DefaultClusterFormTimeout = 30 * time.Second

// clusterName is the NATS cluster name of every in-process cluster.
const clusterName = "tokenledger"

// NATSCluster is n embedded JetStream servers in this process, routed into
// one cluster, for exercising replicated (R3) streams without separate
// processes. Its methods are safe for concurrent use.
type NATSCluster struct {
	servers []*NATS
	once    sync.Once
}

// StartNATSCluster starts n JetStream servers on loopback, each with its
// own name (n1..nN) and store directory under baseDir, routed to each
// other on free ports. It returns once a meta leader is elected and every
// server is routed to the others and sees the same leader, so streams can
// be created right away (the first creation may still need a retry while
// the meta group settles). users, if any, are required on every server as
// for NATSConfig.Users. The caller must call Shutdown.
func StartNATSCluster(baseDir string, n int, users ...NATSUser) (*NATSCluster, error) {
	if baseDir == "" {
		return nil, errors.New("nats cluster: base dir is required")
	}
	if n < 1 {
		return nil, fmt.Errorf("nats cluster: %d servers requested, need at least 1", n)
	}
	if errs := validateUsers(users, ""); len(errs) > 0 {
		return nil, fmt.Errorf("nats cluster: %w", errors.Join(errs...))
	}
	// Every server must know every route port before any starts, so the
	// ports are chosen up front by binding them all at once (which makes
	// them distinct) and releasing them just before the servers bind.
	ports, err := freePorts(DefaultNATSHost, n)
	if err != nil {
		return nil, fmt.Errorf("nats cluster: pick cluster ports: %w", err)
	}
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = "nats-route://" + net.JoinHostPort(DefaultNATSHost, strconv.Itoa(p))
	}
	c := &NATSCluster{}
	type started struct {
		i   int
		srv *server.Server
		err error
	}
	results := make(chan started, n)
	for i := range n {
		name := "n" + strconv.Itoa(i+1)
		opts := &server.Options{
			ServerName: name,
			Host:       DefaultNATSHost,
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   filepath.Join(baseDir, name),
			Cluster: server.ClusterOpts{
				Name: clusterName,
				Host: DefaultNATSHost,
				Port: ports[i],
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
			Users:  serverUsers(users),
			Nkeys:  serverNkeys(users),
			NoSigs: true,
			NoLog:  true,
		}
		// Started concurrently: a JetStream server in a cluster waits for
		// its peers before it reports ready.
		go func() {
			srv, err := startServer(opts, nil, DefaultNATSReadyTimeout)
			results <- started{i, srv, err}
		}()
	}
	var errs []error
	servers := make([]*NATS, n)
	for range n {
		r := <-results
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		servers[r.i] = &NATS{srv: r.srv}
	}
	for _, s := range servers {
		if s != nil {
			c.servers = append(c.servers, s)
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.Shutdown()
		return nil, fmt.Errorf("nats cluster: %w", err)
	}
	if err := c.waitFormed(DefaultClusterFormTimeout); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// waitFormed polls until the cluster is usable or timeout passes.
func (c *NATSCluster) waitFormed(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		problem := c.notFormed()
		if problem == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats cluster: not formed within %s: %s", timeout, problem)
		}
		<-tick.C
	}
}

// notFormed describes why the cluster is not usable yet, or returns "".
func (c *NATSCluster) notFormed() string {
	n := len(c.servers)
	var leader *server.Server
	for _, s := range c.servers {
		srv := s.srv
		if got := srv.NumRoutes(); got < n-1 {
			return fmt.Sprintf("%s has %d routes, want %d", srv.Name(), got, n-1)
		}
		if n > 1 && !srv.JetStreamIsClustered() {
			return fmt.Sprintf("%s: JetStream not clustered yet", srv.Name())
		}
		if srv.JetStreamIsLeader() {
			leader = srv
		}
	}
	if n == 1 {
		return ""
	}
	if leader == nil {
		return "no meta leader"
	}
	if peers := leader.JetStreamClusterPeers(); len(peers) != n {
		return fmt.Sprintf("meta leader %s sees %d peers %v, want %d", leader.Name(), len(peers), peers, n)
	}
	for _, s := range c.servers {
		jsz, err := s.srv.Jsz(nil)
		if err != nil {
			return fmt.Sprintf("%s: %v", s.srv.Name(), err)
		}
		if jsz.Meta == nil || jsz.Meta.Leader != leader.Name() {
			return fmt.Sprintf("%s does not see %s as meta leader yet", s.srv.Name(), leader.Name())
		}
		if jsz.Meta.Size != n {
			return fmt.Sprintf("%s sees a meta group of %d, want %d", s.srv.Name(), jsz.Meta.Size, n)
		}
		if s.srv != leader {
			continue
		}
		if len(jsz.Meta.Replicas) != n-1 {
			return fmt.Sprintf("meta leader %s has %d followers, want %d", leader.Name(), len(jsz.Meta.Replicas), n-1)
		}
		for _, p := range jsz.Meta.Replicas {
			if !p.Current || p.Offline {
				return fmt.Sprintf("meta follower %s is not current", p.Name)
			}
		}
	}
	return ""
}

// freePorts binds n distinct free TCP ports on host and releases them.
func freePorts(host string, n int) ([]int, error) {
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ClientURLs lists every server's client URL.
func (c *NATSCluster) ClientURLs() []string {
	urls := make([]string, len(c.servers))
	for i, s := range c.servers {
		urls[i] = s.ClientURL()
	}
	return urls
}

// Servers returns the cluster's servers in name order (n1, n2, ...).
func (c *NATSCluster) Servers() []*NATS {
	return append([]*NATS(nil), c.servers...)
}

// Connect opens a TCP client connection that knows every server's URL, so
// it fails over when the server it is connected to stops. The caller
// closes it.
func (c *NATSCluster) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return connect(c.ClientURLs(), opts)
}

// Shutdown stops every server and waits until they are down. It is
// idempotent and safe to call concurrently.
func (c *NATSCluster) Shutdown() {
	c.once.Do(func() {
		var wg sync.WaitGroup
		for _, s := range c.servers {
			wg.Go(s.Shutdown)
		}
		wg.Wait()
	})
}
