package projectionstest

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema describes the read model's tables, indexes and constraints,
// names included, and lists any table left from a rebuild.
func Schema(tb testing.TB, pool *pgxpool.Pool) string {
	tb.Helper()
	rows, err := pool.Query(context.Background(), `
SELECT 'index ' || indexdef FROM pg_indexes WHERE tablename IN ('tokens', 'owner_revocations')
UNION ALL
SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE conrelid IN ('tokens'::regclass, 'owner_revocations'::regclass)
UNION ALL
SELECT 'table ' || relname FROM pg_class WHERE relname LIKE '%rebuild%'
ORDER BY 1`)
	if err != nil {
		tb.Fatalf("schema: %v", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("schema: %v", err)
	}
	return strings.Join(lines, "\n")
}
