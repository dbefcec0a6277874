package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/cluster"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/natsconn"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/stack"
	"github.com/tokenledger/tokenledger/webhooks"
)

// Validate names every problem at once, each with its flag, and never the
// content of a secret file.
func TestNATSAuthValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := "s3cret-password-value"
	passwordFile := filepath.Join(dir, "password")
	if err := os.WriteFile(passwordFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	err := natsconn.Auth{
		NKeyFile:     garbage,
		PasswordFile: passwordFile,
		CAFile:       missing,
		CertFile:     garbage,
	}.Validate("nats://user:" + secret + "@127.0.0.1:4222")
	if err == nil {
		t.Fatal("Validate accepted a configuration full of problems")
	}
	msg := err.Error()
	for _, want := range []string{
		"--nats-nkey and --nats-user/--nats-password-file and user@ in --nats-url given at once",
		"--nats-password-file is set without --nats-user",
		"--nats-cert is set without --nats-key",
		"--nats-nkey " + garbage + ": no NKey seed",
		"--nats-ca " + missing + ": open",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Validate's error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, secret) {
		t.Errorf("Validate's error shows a secret:\n%s", msg)
	}

	if err := (natsconn.Auth{}).Validate("nats://127.0.0.1:4222"); err != nil {
		t.Errorf("no credentials, no TLS: %v", err)
	}
}

// Each kind of credentials connects, over mutual TLS, to a server
// configured for it; without its credentials or its client certificate a
// process is refused.
func TestNATSAuthConnectsWithEachCredentialKind(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	passwordFile := filepath.Join(dir, "operator-password")
	if err := os.WriteFile(passwordFile, []byte("operator-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nkeyFile, nkeyPub := stacktest.NKeyUser(t)
	store := eventstore.DefaultConfig()
	srv, files := stacktest.NATSWithTLS(t, stack.NATSConfig{Users: []stack.NATSUser{
		{Name: "operator", Password: "operator-secret"},
		{NKey: nkeyPub, Permissions: cluster.APINodePermissions(store)},
	}})
	op := stacktest.NewOperator(t)
	jwtSrv, jwtFiles := stacktest.NATSWithTLS(t, stack.NATSConfig{Operator: op.Config})
	tlsAuth := func(f stacktest.TLSFiles) natsconn.Auth {
		return natsconn.Auth{CAFile: f.CA, CertFile: f.Cert, KeyFile: f.Key, ServerName: "localhost"}
	}
	with := func(a natsconn.Auth, set func(*natsconn.Auth)) natsconn.Auth { set(&a); return a }

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range []struct {
		name string
		url  string
		auth natsconn.Auth
	}{
		// The operator sets up the streams; the others open them as they are.
		{"user and password file", srv.ClientURL(), with(tlsAuth(files), func(a *natsconn.Auth) { a.User, a.PasswordFile = "operator", passwordFile })},
		{"nkey seed file", srv.ClientURL(), with(tlsAuth(files), func(a *natsconn.Auth) { a.NKeyFile = nkeyFile })},
		{"creds file", jwtSrv.ClientURL(), with(tlsAuth(jwtFiles), func(a *natsconn.Auth) { a.CredsFile = op.Creds(t) })},
	} {
		n, err := app.InitStreams(ctx, app.StreamsConfig{NATSURL: c.url, NATSAuth: c.auth, Store: store})
		if err != nil || n != 0 {
			t.Errorf("%s: streams init: %d events, %v", c.name, n, err)
		}
	}

	for _, c := range []struct {
		name string
		auth natsconn.Auth
		want string
	}{
		{"no credentials", tlsAuth(files), "Authorization Violation"},
		{"wrong password", with(tlsAuth(files), func(a *natsconn.Auth) { a.User, a.PasswordFile = "operator", nkeyFile }), "Authorization Violation"},
		{"no client certificate", natsconn.Auth{CAFile: files.CA, User: "operator", PasswordFile: passwordFile}, "connect to nats"},
	} {
		_, err := app.InitStreams(ctx, app.StreamsConfig{NATSURL: srv.ClientURL(), NATSAuth: c.auth, Store: store})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: streams init: %v; want an error with %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "operator-secret") {
			t.Errorf("%s: the error shows the password: %v", c.name, err)
		}
	}
}

// A server whose certificate another CA signed is refused, and the error
// names the certificate problem.
func TestNATSAuthRefusesAServerCertificateOfAnotherCA(t *testing.T) {
	t.Parallel()
	srv, files := stacktest.NATSWithTLS(t, stack.NATSConfig{})
	other, err := stack.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := other.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = app.InitStreams(ctx, app.StreamsConfig{NATSURL: srv.ClientURL(), Store: eventstore.DefaultConfig(),
		NATSAuth: natsconn.Auth{CAFile: filepath.Join(dir, "ca.pem"), CertFile: files.Cert, KeyFile: files.Key}})
	if err == nil || !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") {
		t.Fatalf("streams init against a server of another CA: %v; want x509: certificate signed by unknown authority", err)
	}
}

// The API nodes' credentials (APINodePermissions) cannot delete, purge or
// update a stream, nor delete or reconfigure the workers' durable
// consumers; the workers' credentials can manage those consumers.
func TestAPINodeCredentialsCannotRemoveHistoryOrConsumers(t *testing.T) {
	t.Parallel()
	apiSeed, apiPub := stacktest.NKeyUser(t)
	workerSeed, workerPub := stacktest.NKeyUser(t)
	store := eventstore.DefaultConfig()
	srv, files := stacktest.NATSWithTLS(t, stack.NATSConfig{Users: []stack.NATSUser{
		{Name: "operator", Password: "operator-secret"},
		{NKey: apiPub, Permissions: cluster.APINodePermissions(store)},
		{NKey: workerPub, Permissions: cluster.WorkerPermissions(store)},
	}})
	tlsAuth := natsconn.Auth{CAFile: files.CA, CertFile: files.Cert, KeyFile: files.Key}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	connect := func(seed string) jetstream.JetStream {
		auth := tlsAuth
		auth.NKeyFile = seed
		nc, err := natsconn.Connect(srv.ClientURL(), auth)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	operatorAuth := tlsAuth
	operatorAuth.User, operatorAuth.PasswordFile = "operator", filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(operatorAuth.PasswordFile, []byte("operator-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := app.InitStreams(ctx, app.StreamsConfig{NATSURL: srv.ClientURL(), NATSAuth: operatorAuth, Store: store}); err != nil {
		t.Fatal(err)
	}
	worker, api := connect(workerSeed), connect(apiSeed)
	durables := []struct{ stream, name string }{
		{store.Stream, projections.LifecycleName},
		{store.UsageStream, projections.UsageName},
		{store.Stream, webhooks.DefaultConsumer},
	}
	for _, d := range durables {
		if _, err := worker.CreateOrUpdateConsumer(ctx, d.stream, jetstream.ConsumerConfig{Durable: d.name, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatalf("the workers' user cannot create consumer %s: %v", d.name, err)
		}
	}

	refused := func(what string, do func(context.Context) error) {
		t.Helper()
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := do(short); err == nil {
			t.Errorf("the API node's user could %s", what)
		}
	}
	for _, name := range []string{store.Stream, store.UsageStream} {
		stream, err := api.Stream(ctx, name)
		if err != nil {
			t.Fatalf("the API node's user cannot read stream %s: %v", name, err)
		}
		before := stream.CachedInfo().Config
		refused("delete stream "+name, func(ctx context.Context) error { return api.DeleteStream(ctx, name) })
		refused("purge stream "+name, func(ctx context.Context) error { return stream.Purge(ctx) })
		refused("update stream "+name, func(ctx context.Context) error {
			changed := before
			changed.MaxAge = time.Hour
			_, err := api.UpdateStream(ctx, changed)
			return err
		})
		after, err := worker.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s after the refused attempts: %v", name, err)
		}
		if got := after.CachedInfo().Config; got.MaxAge != before.MaxAge {
			t.Errorf("stream %s: max age %v, was %v", name, got.MaxAge, before.MaxAge)
		}
	}
	for _, d := range durables {
		refused("delete consumer "+d.name, func(ctx context.Context) error { return api.DeleteConsumer(ctx, d.stream, d.name) })
		refused("reconfigure consumer "+d.name, func(ctx context.Context) error {
			_, err := api.CreateOrUpdateConsumer(ctx, d.stream, jetstream.ConsumerConfig{Durable: d.name, AckPolicy: jetstream.AckNonePolicy})
			return err
		})
		if _, err := worker.Consumer(ctx, d.stream, d.name); err != nil {
			t.Errorf("consumer %s after the refused attempts: %v", d.name, err)
		}
	}
	// The workers may not remove history either.
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if err := worker.DeleteStream(short, store.UsageStream); err == nil {
		t.Error("the workers' user could delete the usage stream")
	}
}
