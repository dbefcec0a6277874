package natsconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Auth is how a process proves who it is to NATS and secures its
// connection: at most one kind of credentials (a .creds file, an NKey
// seed file, or a user with a password file) and TLS. The zero value
// connects without credentials and without TLS (or with a user:password@
// in the URL). Every command that connects to NATS takes it from the same
// flags (see the README's configuration table).
//
// Secrets are read from files when connecting, never taken as values, so
// they appear in no command line, environment, log or error.
type Auth struct {
	// CredsFile is a NATS .creds file: a user JWT and its NKey seed
	// (--nats-creds).
	CredsFile string
	// NKeyFile holds an NKey user seed (--nats-nkey).
	NKeyFile string
	// User and PasswordFile name a user and the file holding its password
	// (--nats-user, --nats-password-file); both or neither.
	User         string
	PasswordFile string
	// CAFile holds the PEM certificates that verify the server's
	// certificate (--nats-ca); empty uses the system's roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and its key in PEM,
	// for servers that require mutual TLS (--nats-cert, --nats-key); both
	// or neither.
	CertFile string
	KeyFile  string
	// ServerName is the name the server's certificate must carry
	// (--nats-server-name); empty uses the host of the URL.
	ServerName string
}

// TLS reports whether a connects with TLS: any TLS setting asks for it (a
// tls:// URL does too, with the system's roots).
func (a Auth) TLS() bool {
	return a.CAFile != "" || a.CertFile != "" || a.KeyFile != "" || a.ServerName != ""
}

// Validate reports every problem with a at once, together with what is
// wrong with natsURL's credentials in combination with a: more than one
// kind of credentials, a user without a password file (or the reverse), a
// certificate without its key, and files that cannot be read or parsed.
// Each problem names its flag; no message carries a secret.
func (a Auth) Validate(natsURL string) error {
	var errs []error
	var kinds []string
	if a.CredsFile != "" {
		kinds = append(kinds, "--nats-creds")
	}
	if a.NKeyFile != "" {
		kinds = append(kinds, "--nats-nkey")
	}
	if a.User != "" || a.PasswordFile != "" {
		kinds = append(kinds, "--nats-user/--nats-password-file")
	}
	if urlHasUser(natsURL) {
		kinds = append(kinds, "user@ in --nats-url")
	}
	if len(kinds) > 1 {
		errs = append(errs, fmt.Errorf("nats credentials: %s given at once; use one kind", strings.Join(kinds, " and ")))
	}
	if a.User == "" && a.PasswordFile != "" {
		errs = append(errs, errors.New("--nats-password-file is set without --nats-user"))
	}
	if a.User != "" && a.PasswordFile == "" {
		errs = append(errs, errors.New("--nats-user is set without --nats-password-file"))
	}
	if a.CertFile != "" && a.KeyFile == "" {
		errs = append(errs, errors.New("--nats-cert is set without --nats-key"))
	}
	if a.KeyFile != "" && a.CertFile == "" {
		errs = append(errs, errors.New("--nats-key is set without --nats-cert"))
	}
	if a.CredsFile != "" {
		if err := checkCreds(a.CredsFile); err != nil {
			errs = append(errs, fmt.Errorf("--nats-creds %s: %w", a.CredsFile, err))
		}
	}
	if a.NKeyFile != "" {
		if _, err := nkeySeed(a.NKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("--nats-nkey %s: %w", a.NKeyFile, err))
		}
	}
	if a.PasswordFile != "" {
		if _, err := readPassword(a.PasswordFile); err != nil {
			errs = append(errs, fmt.Errorf("--nats-password-file %s: %w", a.PasswordFile, err))
		}
	}
	if a.CAFile != "" {
		if _, err := certPool(a.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("--nats-ca %s: %w", a.CAFile, err))
		}
	}
	if a.CertFile != "" && a.KeyFile != "" {
		if _, err := tls.LoadX509KeyPair(a.CertFile, a.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("--nats-cert %s / --nats-key %s: %w", a.CertFile, a.KeyFile, scrubKeyError(err)))
		}
	}
	return errors.Join(errs...)
}

// Options returns the nats.Options that connect with a's credentials and
// TLS. It reads the files now (the .creds file is read again at every
// reconnect, so a rotated file takes effect without a restart).
func (a Auth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case a.CredsFile != "":
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(a.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--nats-nkey %s: %w", a.NKeyFile, err)
		}
		opts = append(opts, opt)
	case a.User != "":
		password, err := readPassword(a.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--nats-password-file %s: %w", a.PasswordFile, err)
		}
		opts = append(opts, nats.UserInfo(a.User, password))
	}
	if a.TLS() {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: a.ServerName}
		if a.CAFile != "" {
			pool, err := certPool(a.CAFile)
			if err != nil {
				return nil, fmt.Errorf("--nats-ca %s: %w", a.CAFile, err)
			}
			cfg.RootCAs = pool
		}
		if a.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(a.CertFile, a.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("--nats-cert %s / --nats-key %s: %w", a.CertFile, a.KeyFile, scrubKeyError(err))
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		opts = append(opts, nats.Secure(cfg))
	}
	return opts, nil
}

// Connect connects to natsURL with auth's credentials and TLS, then
// opts (nats.Name, reconnect settings, ...). Its errors name the problem
// (a refused certificate, an authorization violation) without a secret.
// The caller closes the connection.
//
// The connection pings its server every PingInterval and gives it up
// after MaxPingsOut unanswered pings, so a server that stopped answering
// without closing the connection (cut off by a partition, or back with
// another address) is left within about 20 s and the client reconnects,
// where nats.go's defaults (2 minutes, 2 pings) leave it waiting for
// minutes. opts may set other values.
func Connect(natsURL string, auth Auth, opts ...nats.Option) (*nats.Conn, error) {
	all, err := auth.Options()
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	all = append(all, nats.PingInterval(PingInterval), nats.MaxPingsOutstanding(MaxPingsOut))
	nc, err := nats.Connect(natsURL, append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	return nc, nil
}

// urlHasUser reports whether any URL of the comma-separated list carries
// user information.
func urlHasUser(s string) bool {
	for part := range strings.SplitSeq(s, ",") {
		if u, err := url.Parse(strings.TrimSpace(part)); err == nil && u.User != nil {
			return true
		}
	}
	return false
}

// checkCreds checks that path holds a user JWT and an NKey seed.
func checkCreds(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	defer wipe(raw)
	if _, err := nkeys.ParseDecoratedJWT(raw); err != nil {
		return errors.New("no user JWT in the file")
	}
	kp, err := nkeys.ParseDecoratedNKey(raw)
	if err != nil {
		return errors.New("no NKey seed in the file")
	}
	kp.Wipe()
	return nil
}

// nkeySeed checks that path holds an NKey user seed and returns its
// public key.
func nkeySeed(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	defer wipe(raw)
	kp, err := nkeys.ParseDecoratedNKey(raw)
	if err != nil {
		return "", errors.New("no NKey seed in the file")
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return "", errors.New("the seed is not a user's (it must start with SU)")
	}
	return pub, nil
}

// readPassword reads a password file; one trailing newline is not part
// of the password.
func readPassword(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	password := strings.TrimSuffix(strings.TrimSuffix(string(raw), "\n"), "\r")
	if password == "" {
		return "", errors.New("the file is empty")
	}
	return password, nil
}

// certPool reads PEM certificates into a pool.
func certPool(path string) (*x509.CertPool, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, errors.New("no PEM certificate in the file")
	}
	return pool, nil
}

// scrubKeyError keeps an error of tls.LoadX509KeyPair free of key
// material: its messages describe the problem, but keep only the first
// line to be sure.
func scrubKeyError(err error) error {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return errors.New(msg)
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}

// The client's liveness check of its server (see Connect); the servers of
// deploy/nats check their clients and routes the same way.
const (
	PingInterval = 5 * time.Second
	MaxPingsOut  = 3
)
