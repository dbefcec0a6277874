package projections

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// Permanent reports whether a write of the read model failed in a way that
// retrying the same events cannot fix: the events are out of order
// (ErrOutOfOrder) or not what the write takes (ErrUsageEvent), or
// PostgreSQL refused a value (a data exception, SQLSTATE class 22) or a
// constraint (class 23). Every other failure (a lost connection, a
// timeout, a serialization failure, PostgreSQL shutting down) is
// transient: the workers retry it. ErrGap is neither: the caller reads
// again from the checkpoint.
func Permanent(err error) bool {
	if errors.Is(err, ErrOutOfOrder) || errors.Is(err, ErrUsageEvent) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) >= 2 {
		switch pgErr.Code[:2] {
		case "22", "23": // data exception, integrity constraint violation
			return true
		}
	}
	return false
}
