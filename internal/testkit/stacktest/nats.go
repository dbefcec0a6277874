package stacktest

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/stack"
)

// Connector is anything that opens NATS client connections: a *stack.NATS
// or a *stack.NATSCluster.
type Connector interface {
	Connect(opts ...nats.Option) (*nats.Conn, error)
}

// NATS starts a fresh embedded JetStream server on a free port with its
// store in a temporary directory, and shuts it down when the test ends.
func NATS(tb testing.TB) *stack.NATS {
	tb.Helper()
	srv, err := stack.StartNATS(stack.NATSConfig{StoreDir: tb.TempDir(), ServerName: "test"})
	if err != nil {
		tb.Fatalf("start nats: %v", err)
	}
	tb.Cleanup(srv.Shutdown)
	return srv
}

// NATSCluster starts n routed JetStream servers in this process, with
// their stores in a temporary directory, and shuts them down when the test
// ends.
func NATSCluster(tb testing.TB, n int) *stack.NATSCluster {
	tb.Helper()
	c, err := stack.StartNATSCluster(tb.TempDir(), n)
	if err != nil {
		tb.Fatalf("start nats cluster: %v", err)
	}
	tb.Cleanup(c.Shutdown)
	return c
}

// Conn opens a client connection to srv and closes it when the test ends.
func Conn(tb testing.TB, srv Connector, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := srv.Connect(opts...)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}
