package migrations_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/migrations"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestMigrateCreatesTheReadModel(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, stacktest.PostgresURL(t))

	if err := migrations.Migrate(ctx, conn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	current, latest, err := migrations.Status(ctx, conn)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if current != latest || latest < 1 {
		t.Fatalf("after migrate: version %d of %d", current, latest)
	}
	for _, table := range []string{"tokens", "owner_revocations", "projection_checkpoints"} {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
			t.Fatalf("look up %s: %v", table, err)
		}
		if !exists {
			t.Errorf("table %s missing after migrate", table)
		}
	}
	// A second run is a no-op, not an error.
	if err := migrations.Migrate(ctx, conn); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
}

func TestMigrateConcurrentlyAppliesOnce(t *testing.T) {
	ctx := context.Background()
	url := stacktest.PostgresURL(t)

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		conn := connect(t, url)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- migrations.Migrate(ctx, conn)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent migrate: %v", err)
		}
	}
	conn := connect(t, url)
	current, latest, err := migrations.Status(ctx, conn)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if current != latest {
		t.Fatalf("version %d, want %d", current, latest)
	}
}

func TestSecretHashIsUniqueAndSized(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, stacktest.PostgresURL(t))
	if err := migrations.Migrate(ctx, conn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	insert := `INSERT INTO tokens (id, owner, name, scopes, kind, secret_hash, created_at, issued_seq, last_seq)
	           VALUES (gen_random_uuid(), 'o', 'n', '{}', 'api', $1, now(), 1, 1)`
	hash := make([]byte, 32)
	if _, err := conn.Exec(ctx, insert, hash); err != nil {
		t.Fatalf("first insert: %v", err)
	}
	if _, err := conn.Exec(ctx, insert, hash); err == nil {
		t.Error("a second token with the same secret hash was accepted")
	}
	if _, err := conn.Exec(ctx, insert, make([]byte, 31)); err == nil {
		t.Error("a secret hash of 31 bytes was accepted")
	}
}
