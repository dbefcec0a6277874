package validator_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/migrations"
	"github.com/tokenledger/tokenledger/natsconn"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/stack"
	"github.com/tokenledger/tokenledger/validator"
)

// deployedValidatorPermissions returns the permissions of the validator
// user of deploy/nats/nats-server.conf.
func deployedValidatorPermissions(t *testing.T) *server.Permissions {
	t.Helper()
	for _, v := range []string{"NATS_OPERATOR_PASSWORD", "NATS_API_PASSWORD", "NATS_WORKER_PASSWORD", "NATS_VALIDATOR_PASSWORD"} {
		t.Setenv(v, "unused")
	}
	t.Setenv("NATS_SERVER_NAME", "nats-1")
	opts, err := server.ProcessConfigFile("../deploy/nats/nats-server.conf")
	if err != nil {
		t.Fatalf("parse nats-server.conf: %v", err)
	}
	for _, u := range opts.Users {
		if u.Username == "validator" {
			return u.Permissions
		}
	}
	t.Fatal("nats-server.conf has no validator user")
	return nil
}

// TestConnectRunsWithTheDeployedValidatorPermissions embeds a validator
// the way ExampleConnect does, as the validator user of the deployment's
// NATS configuration and with a PostgreSQL URL: it answers at once, sees
// a revocation, and publishes the uses it counted when closed.
func TestConnectRunsWithTheDeployedValidatorPermissions(t *testing.T) {
	const operatorPassword, validatorPassword = "operator-secret", "validator-secret"
	srv, err := stack.StartNATS(stack.NATSConfig{StoreDir: t.TempDir(), ServerName: "test", Users: []stack.NATSUser{
		{Name: "operator", Password: operatorPassword},
		{Name: "validator", Password: validatorPassword, Permissions: deployedValidatorPermissions(t)},
	}})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	e := &env{srv: srv, opts: []nats.Option{nats.UserInfo("operator", operatorPassword)}, reg: domain.NewDefaultRegistry()}
	e.store = e.openStore(t) // creates the streams, as streams init does
	postgresURL := stacktest.PostgresURL(t)
	pool, err := pgxpool.New(context.Background(), postgresURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := migrations.Migrate(context.Background(), conn.Conn()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	conn.Release()
	e.read = projections.New(pool)

	now := time.Now()
	secret, tok := e.issue(t, "alice", now.Add(-time.Hour), nil)
	e.project(t)
	passwordFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(passwordFile, []byte(validatorPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := validator.Connect(ctx, validator.Embed{
		NATSURL:     srv.ClientURL(),
		NATSAuth:    natsconn.Auth{User: "validator", PasswordFile: passwordFile},
		PostgresURL: postgresURL,
		Config:      validator.Config{Logger: slog.New(slog.DiscardHandler)},
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = v.Close(context.Background())
		}
	})
	p, err := v.Validate(ctx, secret)
	if err != nil || p.Owner != "alice" {
		t.Fatalf("validate: %+v, %v; want alice's token", p, err)
	}
	uses := uint64(1)
	e.revoke(t, tok, now)
	stacktest.Eventually(t, 10*time.Second, func() bool {
		_, err := v.Validate(ctx, secret)
		if err == nil {
			uses++ // the revocation has not arrived yet
		}
		return errors.Is(err, validator.ErrRevoked)
	}, "the embedded validator sees the revocation")

	if err := v.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	closed = true
	if got := e.readUsage(t).counts[tok.ID()]; got != uses {
		t.Errorf("usage of the token: %d uses, want %d", got, uses)
	}
	if _, err := v.Validate(ctx, secret); !errors.Is(err, validator.ErrClosed) {
		t.Errorf("validate after close: %v, want ErrClosed", err)
	}
}

// TestConnectNeverCreatesStreams: an embedded validator opens the streams
// as they are; where set-up has not created them it fails and leaves the
// server without streams.
func TestConnectNeverCreatesStreams(t *testing.T) {
	srv := stacktest.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := validator.Connect(ctx, validator.Embed{NATSURL: srv.ClientURL(), PostgresURL: stacktest.PostgresURL(t)})
	if !errors.Is(err, eventstore.ErrStreamMissing) {
		t.Fatalf("connect: %v, want ErrStreamMissing", err)
	}
	nc := stacktest.Conn(t, srv)
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	for name := range js.StreamNames() {
		t.Errorf("stream %s exists after a failed Connect", name)
	}
}

// TestEmbedValidateReportsEveryProblem: a configuration missing both URLs
// and giving two kinds of NATS credentials is refused with every problem
// named, before anything connects.
func TestEmbedValidateReportsEveryProblem(t *testing.T) {
	err := validator.Embed{
		NATSAuth: natsconn.Auth{User: "validator", NKeyFile: "/nonexistent"},
		Config:   validator.Config{FlushInterval: -time.Second},
	}.Validate()
	for _, want := range []string{"nats url must be set", "postgres url must be set", "use one kind", "--nats-password-file", "flush interval"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v, want it to mention %q", err, want)
		}
	}
}
