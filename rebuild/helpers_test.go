package rebuild_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// discard is a logger that drops everything.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// dump renders the read model of a database as text, row by row in key
// order, every column included, and the checkpoints.
func dump(tb testing.TB, pool *pgxpool.Pool) string {
	tb.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT row_to_json(t)::text FROM tokens t ORDER BY id`,
		`SELECT row_to_json(o)::text FROM owner_revocations o ORDER BY owner`,
		`SELECT name || ' ' || last_seq FROM projection_checkpoints ORDER BY name`,
	} {
		rows, err := pool.Query(context.Background(), q)
		if err != nil {
			tb.Fatalf("dump: %v", err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			tb.Fatalf("dump: %v", err)
		}
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// firstDiff shows the first line where two dumps differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return "line " + strconv.Itoa(i+1) + ":\n got  " + g[i] + "\n want " + w[i]
		}
	}
	return fmt.Sprintf("one dump is a prefix of the other (%d and %d lines)", len(g), len(w))
}

// tableOID returns the oid of the live tokens table: a swap replaces it.
func tableOID(tb testing.TB, pool *pgxpool.Pool) uint32 {
	tb.Helper()
	var oid uint32
	if err := pool.QueryRow(context.Background(), `SELECT 'tokens'::regclass::oid`).Scan(&oid); err != nil {
		tb.Fatalf("oid of tokens: %v", err)
	}
	return oid
}
