package stack_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/stack"
)

func TestNATSConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  stack.NATSConfig
		want []string
	}{
		{"store dir only is valid", stack.NATSConfig{StoreDir: "/tmp/x"}, nil},
		{"missing store dir", stack.NATSConfig{}, []string{"store dir is required"}},
		{"port out of range", stack.NATSConfig{StoreDir: "d", Port: 70000}, []string{"port 70000"}},
		{"negative durations and limits", stack.NATSConfig{StoreDir: "d", SyncInterval: -1, ReadyTimeout: -1, MaxPayload: -1, MaxStore: -1},
			[]string{"sync interval", "ready timeout", "max payload", "storage limits"}},
		{"users without names, twice, unknown no-auth user", stack.NATSConfig{StoreDir: "d",
			Users: []stack.NATSUser{{Name: ""}, {Name: "a"}, {Name: "a"}}, NoAuthUser: "b"},
			[]string{"has no name", `"a" is listed twice`, `no-auth user "b"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %q", err, w)
				}
			}
		})
	}
}

func startNATS(t *testing.T, cfg stack.NATSConfig) *stack.NATS {
	t.Helper()
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	srv, err := stack.StartNATS(cfg)
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func urlPort(t *testing.T, raw string) int {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("client url %q has no port: %v", raw, err)
	}
	return p
}

// publishToStream creates a stream (retrying while a cluster settles) and
// stores one message in it through nc.
func publishToStream(t *testing.T, nc *nats.Conn, replicas int) *jetstream.PubAck {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Replicas: replicas, Storage: jetstream.FileStorage})
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	ack, err := js.Publish(ctx, "s.1", []byte("hello"))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return ack
}

func TestStartNATS(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, stack.NATSConfig{ServerName: "solo"})
	if port := urlPort(t, srv.ClientURL()); port <= 0 {
		t.Fatalf("client url %q", srv.ClientURL())
	}
	if srv.Server().Name() != "solo" || !srv.Server().JetStreamEnabled() {
		t.Fatalf("server %q, JetStream %v", srv.Server().Name(), srv.Server().JetStreamEnabled())
	}
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if ack := publishToStream(t, nc, 1); ack.Sequence != 1 {
		t.Fatalf("ack %+v", ack)
	}
	srv.Shutdown()
	srv.Shutdown()
	if _, err := srv.Connect(nats.MaxReconnects(0)); err == nil {
		t.Fatal("connected to a server that was shut down")
	}
}

func TestStartNATSPort(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	taken := l.Addr().(*net.TCPAddr).Port
	// Closed after the parallel subtests, which run once this function
	// has returned.
	t.Cleanup(func() { l.Close() })

	t.Run("a free preferred port is used", func(t *testing.T) {
		t.Parallel()
		probe, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		free := probe.Addr().(*net.TCPAddr).Port
		probe.Close()
		srv := startNATS(t, stack.NATSConfig{Port: free})
		if got := urlPort(t, srv.ClientURL()); got != free {
			t.Fatalf("port %d, want the preferred %d", got, free)
		}
	})
	t.Run("a taken preferred port is replaced", func(t *testing.T) {
		t.Parallel()
		srv := startNATS(t, stack.NATSConfig{Port: taken})
		if got := urlPort(t, srv.ClientURL()); got == taken || got <= 0 {
			t.Fatalf("port %d, want a free one other than %d", got, taken)
		}
		nc, err := srv.Connect()
		if err != nil {
			t.Fatal(err)
		}
		nc.Close()
	})
}

func TestStartNATSUsers(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, stack.NATSConfig{
		Users: []stack.NATSUser{
			{Name: "admin", Password: "pw"},
			{Name: "app", Password: "pw", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Deny: []string{"forbidden.>"}},
			}},
		},
		NoAuthUser: "app",
	})
	if _, err := srv.Connect(nats.UserInfo("admin", "wrong"), nats.MaxReconnects(0)); err == nil {
		t.Fatal("connected with a wrong password")
	}
	violations := make(chan error, 1)
	nc, err := srv.Connect(nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case violations <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatalf("connect as the no-auth user: %v", err)
	}
	defer nc.Close()
	if err := nc.Publish("forbidden.x", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("async error %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publishing to a denied subject was not refused")
	}
}

func TestStartNATSCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := stack.StartNATSCluster(dir, 3)
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	defer c.Shutdown()

	servers := c.Servers()
	if len(servers) != 3 || len(c.ClientURLs()) != 3 {
		t.Fatalf("%d servers, %d urls", len(servers), len(c.ClientURLs()))
	}
	leaders := 0
	for i, s := range servers {
		srv := s.Server()
		if want := "n" + strconv.Itoa(i+1); srv.Name() != want {
			t.Errorf("server %d is %q, want %q", i, srv.Name(), want)
		}
		if got := srv.JetStreamConfig().StoreDir; !strings.HasPrefix(got, dir) {
			t.Errorf("server %s stores in %q, outside %q", srv.Name(), got, dir)
		}
		if srv.NumRoutes() < 2 {
			t.Errorf("server %s has %d routes", srv.Name(), srv.NumRoutes())
		}
		if srv.JetStreamIsLeader() {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d meta leaders, want 1", leaders)
	}

	nc, err := c.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	publishToStream(t, nc, 3)

	// With one server down, the other two still form a majority.
	var down *stack.NATS
	for _, s := range servers {
		if s.ClientURL() != nc.ConnectedUrl() {
			down = s
			break
		}
	}
	down.Shutdown()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// The server shut down may have led the stream: a publish then waits
	// out the election, retried with the same id as any writer would.
	var perr error
	stacktest.Eventually(t, 20*time.Second, func() bool {
		_, perr = js.Publish(ctx, "s.2", []byte("still replicated"), jetstream.WithMsgID("still-replicated"))
		return perr == nil
	}, "publish with one server down: %v", stacktest.Lazy(func() string { return fmt.Sprint(perr) }))
	c.Shutdown()
	c.Shutdown()
}

func TestStartNATSClusterRefusesBadInput(t *testing.T) {
	t.Parallel()
	if _, err := stack.StartNATSCluster("", 3); err == nil {
		t.Error("empty base dir accepted")
	}
	if _, err := stack.StartNATSCluster(t.TempDir(), 0); err == nil {
		t.Error("zero servers accepted")
	}
	if _, err := stack.StartNATSCluster(t.TempDir(), 3, stack.NATSUser{}); err == nil {
		t.Error("user without a name accepted")
	}
}
