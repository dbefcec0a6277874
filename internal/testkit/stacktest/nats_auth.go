package stacktest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tokenledger/tokenledger/stack"
)

// TLSFiles are the PEM files a client needs to connect to a server that
// requires mutual TLS: the CA that signed the server's certificate, and a
// client certificate with its key.
type TLSFiles struct {
	CA, Cert, Key string
}

// NATSWithTLS starts an embedded JetStream server configured as cfg (its
// StoreDir defaults to a temporary directory) that requires mutual TLS with
// certificates of a CA made for the test, valid for 127.0.0.1 and
// "localhost"; it returns the server, stopped when the test ends, and the
// client's files.
func NATSWithTLS(tb testing.TB, cfg stack.NATSConfig) (*stack.NATS, TLSFiles) {
	tb.Helper()
	dir := tb.TempDir()
	ca, err := stack.NewCA("tokenledger test CA")
	if err != nil {
		tb.Fatal(err)
	}
	if err := ca.WriteFiles(dir); err != nil {
		tb.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("nats", "127.0.0.1", "localhost")
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.TLS, err = ca.ServerTLS(certPEM, keyPEM, true); err != nil {
		tb.Fatal(err)
	}
	cert, key, err := ca.IssueFiles(dir, "client")
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir = filepath.Join(dir, "store")
	}
	srv, err := stack.StartNATS(cfg)
	if err != nil {
		tb.Fatalf("start nats: %v", err)
	}
	tb.Cleanup(srv.Shutdown)
	return srv, TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: cert, Key: key}
}

// NKeyUser makes an NKey user, writes its seed to a file (mode 0600) and
// returns the file and the public key to configure the server with.
func NKeyUser(tb testing.TB) (seedFile, publicKey string) {
	tb.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		tb.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		tb.Fatal(err)
	}
	seedFile = filepath.Join(tb.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		tb.Fatal(err)
	}
	return seedFile, pub
}

// Operator is a NATS operator made for a test, with one account that may
// use JetStream without limits and a system account.
type Operator struct {
	// Config puts a server in operator mode with this trust chain.
	Config  *stack.NATSOperator
	account nkeys.KeyPair
}

// NewOperator makes an operator, its JetStream account and its system
// account.
func NewOperator(tb testing.TB) *Operator {
	tb.Helper()
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	okp, err := nkeys.CreateOperator()
	must(err)
	opub, err := okp.PublicKey()
	must(err)
	opJWT, err := jwt.NewOperatorClaims(opub).Encode(okp)
	must(err)
	account := func(js bool) (nkeys.KeyPair, string, string) {
		kp, err := nkeys.CreateAccount()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		claims := jwt.NewAccountClaims(pub)
		if js {
			claims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		enc, err := claims.Encode(okp)
		must(err)
		return kp, pub, enc
	}
	akp, _, accJWT := account(true)
	_, sysPub, sysJWT := account(false)
	return &Operator{
		Config:  &stack.NATSOperator{JWT: opJWT, Accounts: []string{accJWT, sysJWT}, SystemAccount: sysPub},
		account: akp,
	}
}

// Creds makes a user of the operator's JetStream account and writes its
// .creds file (mode 0600); it returns the file.
func (o *Operator) Creds(tb testing.TB) string {
	tb.Helper()
	ukp, err := nkeys.CreateUser()
	if err != nil {
		tb.Fatal(err)
	}
	upub, _ := ukp.PublicKey()
	userJWT, err := jwt.NewUserClaims(upub).Encode(o.account)
	if err != nil {
		tb.Fatal(err)
	}
	seed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		tb.Fatal(err)
	}
	file := filepath.Join(tb.TempDir(), "user.creds")
	if err := os.WriteFile(file, creds, 0o600); err != nil {
		tb.Fatal(err)
	}
	return file
}
