package stack

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// NATS defaults.
const (
	// DefaultNATSHost is the interface an embedded server listens on when
	// NATSConfig.Host is empty: loopback only.
	DefaultNATSHost = "127.0.0.1"
	// DefaultNATSReadyTimeout bounds how long StartNATS waits for the
	// server to accept connections.
	DefaultNATSReadyTimeout = 10 * time.Second
)

// NATSConfig configures an embedded nats-server with JetStream. The zero
// value is not usable: StoreDir is required.
type NATSConfig struct {
	// Host is the client listen address; empty means DefaultNATSHost.
	Host string
	// Port is the preferred client port. 0 picks a free one. A non-zero
	// port that is already taken is replaced by a free one; ClientURL
	// reports the port actually used.
	Port int
	// StoreDir is where JetStream keeps its files. Required.
	StoreDir string
	// ServerName names the server (and its JetStream node); empty lets
	// the server use its generated id.
	ServerName string
	// SyncAlways makes the file store fsync every write before it is
	// acknowledged. Without it the store fsyncs on SyncInterval, so an
	// acknowledged write survives a process crash but the last interval
	// may be lost on power loss or a kernel crash.
	SyncAlways bool
	// SyncInterval overrides the file store's fsync interval (the
	// server's default is two minutes); ignored when SyncAlways is set.
	SyncInterval time.Duration
	// MaxPayload is the largest message the server accepts, in bytes; 0
	// keeps the server default (1 MiB).
	MaxPayload int32
	// MaxStore caps JetStream file storage in bytes; 0 lets the server
	// size it from the free disk space.
	MaxStore int64
	// MaxMemory caps JetStream memory storage in bytes; 0 lets the
	// server size it from the system memory.
	MaxMemory int64
	// ReadyTimeout bounds how long StartNATS waits for the server; 0
	// means DefaultNATSReadyTimeout.
	ReadyTimeout time.Duration
	// Logger receives the server's log lines; nil silences the server.
	Logger server.Logger
	// Users, when not empty, requires every client to authenticate as
	// one of them (user name and password).
	Users []NATSUser
	// NoAuthUser names the user of Users a client that sends no
	// credentials is taken to be; empty refuses such clients.
	NoAuthUser string
	// TLS, if set, makes clients connect with TLS and this server
	// configuration (its certificate, and ClientCAs with
	// tls.RequireAndVerifyClientCert for mutual TLS).
	TLS *tls.Config
	// Operator, if set, runs the server in operator (JWT) mode: clients
	// authenticate with .creds files of users of its accounts. Users must
	// then be empty.
	Operator *NATSOperator
}

// NATSOperator is the trust chain of a server in operator mode: the
// operator's JWT and the JWTs of the accounts it signed, resolved from
// memory. Accounts that use JetStream must enable it in their limits.
type NATSOperator struct {
	// JWT is the operator's JWT.
	JWT string
	// Accounts are the account JWTs the server knows.
	Accounts []string
	// SystemAccount is the public key of the system account; empty runs
	// without one.
	SystemAccount string
}

// NATSUser is a user of an embedded server.
type NATSUser struct {
	// Name and Password authenticate a user by name; NKey (a public user
	// key, "U...") instead authenticates a client that signs the server's
	// challenge with the key's seed, and then Name and Password must be
	// empty.
	Name     string
	Password string
	NKey     string
	// Permissions restricts what the user may publish and subscribe to;
	// nil allows everything. For the event store's application user,
	// deny publishing to eventstore.ProtectedAPISubjects.
	Permissions *server.Permissions
}

func validateUsers(users []NATSUser, noAuthUser string) []error {
	var errs []error
	seen := make(map[string]bool, len(users))
	for i, u := range users {
		if u.NKey != "" {
			if u.Name != "" || u.Password != "" {
				errs = append(errs, fmt.Errorf("nats: user %d has an nkey and a name or password", i))
			}
			if !nkeys.IsValidPublicUserKey(u.NKey) {
				errs = append(errs, fmt.Errorf("nats: user %d: %q is not a public user nkey", i, u.NKey))
			}
			continue
		}
		switch {
		case u.Name == "":
			errs = append(errs, fmt.Errorf("nats: user %d has no name", i))
		case seen[u.Name]:
			errs = append(errs, fmt.Errorf("nats: user %q is listed twice", u.Name))
		}
		seen[u.Name] = true
	}
	if noAuthUser != "" && !seen[noAuthUser] {
		errs = append(errs, fmt.Errorf("nats: no-auth user %q is not among the users", noAuthUser))
	}
	return errs
}

func serverUsers(users []NATSUser) []*server.User {
	var out []*server.User
	for _, u := range users {
		if u.NKey == "" {
			out = append(out, &server.User{Username: u.Name, Password: u.Password, Permissions: u.Permissions})
		}
	}
	return out
}

func serverNkeys(users []NATSUser) []*server.NkeyUser {
	var out []*server.NkeyUser
	for _, u := range users {
		if u.NKey != "" {
			out = append(out, &server.NkeyUser{Nkey: u.NKey, Permissions: u.Permissions})
		}
	}
	return out
}

// Validate reports every problem with c at once.
func (c NATSConfig) Validate() error {
	var errs []error
	if c.StoreDir == "" {
		errs = append(errs, errors.New("nats: store dir is required for JetStream"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("nats: port %d is outside 0..65535", c.Port))
	}
	if c.SyncInterval < 0 {
		errs = append(errs, fmt.Errorf("nats: sync interval %s is negative", c.SyncInterval))
	}
	if c.MaxPayload < 0 {
		errs = append(errs, fmt.Errorf("nats: max payload %d is negative", c.MaxPayload))
	}
	if c.MaxStore < 0 || c.MaxMemory < 0 {
		errs = append(errs, errors.New("nats: storage limits must not be negative"))
	}
	if c.ReadyTimeout < 0 {
		errs = append(errs, fmt.Errorf("nats: ready timeout %s is negative", c.ReadyTimeout))
	}
	errs = append(errs, validateUsers(c.Users, c.NoAuthUser)...)
	if c.Operator != nil {
		if len(c.Users) > 0 {
			errs = append(errs, errors.New("nats: users and operator mode exclude each other"))
		}
		if _, err := jwt.DecodeOperatorClaims(c.Operator.JWT); err != nil {
			errs = append(errs, fmt.Errorf("nats: operator jwt: %w", err))
		}
		for i, a := range c.Operator.Accounts {
			if _, err := jwt.DecodeAccountClaims(a); err != nil {
				errs = append(errs, fmt.Errorf("nats: account jwt %d: %w", i, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (c NATSConfig) withDefaults() NATSConfig {
	if c.Host == "" {
		c.Host = DefaultNATSHost
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultNATSReadyTimeout
	}
	return c
}

// options translates c into server options; port is the client port to
// listen on (server.RANDOM_PORT for any). c must be valid.
func (c NATSConfig) options(port int) *server.Options {
	opts := c.baseOptions(port)
	if c.TLS != nil {
		opts.TLS = true
		opts.TLSConfig = c.TLS
		opts.TLSVerify = c.TLS.ClientAuth == tls.RequireAndVerifyClientCert
		opts.TLSTimeout = 2
	}
	if op := c.Operator; op != nil {
		claims, _ := jwt.DecodeOperatorClaims(op.JWT)
		opts.TrustedOperators = []*jwt.OperatorClaims{claims}
		resolver := &server.MemAccResolver{}
		for _, a := range op.Accounts {
			claims, _ := jwt.DecodeAccountClaims(a)
			_ = resolver.Store(claims.Subject, a)
		}
		opts.AccountResolver = resolver
		opts.SystemAccount = op.SystemAccount
	}
	return opts
}

func (c NATSConfig) baseOptions(port int) *server.Options {
	return &server.Options{
		ServerName:         c.ServerName,
		Host:               c.Host,
		Port:               port,
		JetStream:          true,
		StoreDir:           c.StoreDir,
		SyncAlways:         c.SyncAlways,
		SyncInterval:       c.SyncInterval,
		MaxPayload:         c.MaxPayload,
		JetStreamMaxStore:  c.MaxStore,
		JetStreamMaxMemory: c.MaxMemory,
		Users:              serverUsers(c.Users),
		Nkeys:              serverNkeys(c.Users),
		NoAuthUser:         c.NoAuthUser,
		NoSigs:             true,
		NoLog:              c.Logger == nil,
	}
}

// NATS is an embedded nats-server with JetStream enabled, running in this
// process. Its methods are safe for concurrent use.
type NATS struct {
	srv  *server.Server
	once sync.Once
}

// StartNATS starts an embedded JetStream server and waits until it accepts
// connections. The caller must call Shutdown.
func StartNATS(cfg NATSConfig) (*NATS, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	port := server.RANDOM_PORT
	if cfg.Port != 0 && !portInUse(cfg.Host, cfg.Port) {
		port = cfg.Port
	}
	srv, err := startServer(cfg.options(port), cfg.Logger, cfg.ReadyTimeout)
	if err != nil && port != server.RANDOM_PORT {
		// The preferred port was free when probed but taken before the
		// server bound it; fall back to any port as documented.
		srv, err = startServer(cfg.options(server.RANDOM_PORT), cfg.Logger, cfg.ReadyTimeout)
	}
	if err != nil {
		return nil, err
	}
	return &NATS{srv: srv}, nil
}

func startServer(opts *server.Options, logger server.Logger, ready time.Duration) (*server.Server, error) {
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: new server: %w", err)
	}
	if logger != nil {
		srv.SetLoggerV2(logger, false, false, false)
	}
	go srv.Start()
	if !srv.ReadyForConnections(ready) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("nats: server %q not ready for connections within %s", opts.ServerName, ready)
	}
	return srv, nil
}

// ClientURL is the nats:// URL clients connect to, with the port actually
// in use.
func (n *NATS) ClientURL() string { return n.srv.ClientURL() }

// Server returns the underlying server, for tests and monitoring.
func (n *NATS) Server() *server.Server { return n.srv }

// Connect opens a client connection over TCP to the server's ClientURL.
// It deliberately does not use nats.InProcessServer: a real socket keeps
// latency and back-pressure the same as for a separate server process, so
// tests and benchmarks measure what a deployment sees. Pass
// nats.InProcessServer(n.Server()) in opts to opt in to the in-memory
// pipe. The caller closes the connection.
func (n *NATS) Connect(opts ...nats.Option) (*nats.Conn, error) {
	return connect([]string{n.ClientURL()}, opts)
}

// Shutdown stops the server and waits until it is down. It is idempotent
// and safe to call concurrently.
func (n *NATS) Shutdown() {
	n.once.Do(func() {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	})
}

func connect(urls []string, opts []nats.Option) (*nats.Conn, error) {
	all := make([]nats.Option, 0, len(opts)+1)
	all = append(all, nats.Name("tokenledger"))
	all = append(all, opts...)
	nc, err := nats.Connect(strings.Join(urls, ","), all...)
	if err != nil {
		return nil, fmt.Errorf("nats: connect %v: %w", urls, err)
	}
	return nc, nil
}
