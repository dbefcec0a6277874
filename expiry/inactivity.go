package expiry

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/tokenledger/tokenledger/domain"
)

// inactiveSQL selects, after token $4 in id order, the live tokens whose
// last activity (the latest use the read model knows, or the issue) is at
// or before $2 (now - inactivity + the longest lead time): those whose
// warning or revocation may be due. $1 is now.
const inactiveSQL = `SELECT t.id, GREATEST(t.created_at, t.last_used_at, u.last_used_at) FROM tokens t
LEFT JOIN token_usage u ON u.token_id = t.id
WHERE t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $1)
  AND GREATEST(t.created_at, t.last_used_at, u.last_used_at) <= $2 AND t.id > $4
ORDER BY t.id
LIMIT $3`

// inactiveToken is a token and the instant the policy revokes it at.
type inactiveToken struct {
	id  domain.TokenID
	due time.Time
}

// inactivityPass applies the inactivity policy to every live token whose
// warning or revocation may be due: the ledger decides, from the token's
// history, whether one is and whether it is recorded already. A use the
// read model has not seen yet (within the usage flush) is not counted.
func (s *Scheduler) inactivityPass(ctx context.Context, now time.Time) (Pass, error) {
	var p Pass
	// Only lead times shorter than the policy's period warn: a longer one
	// would fall due at the last use itself.
	var leads []time.Duration
	for _, l := range s.cfg.Leads {
		if l < s.cfg.Inactivity {
			leads = append(leads, l)
		}
	}
	horizon := now.Add(-s.cfg.Inactivity)
	if len(leads) > 0 {
		horizon = horizon.Add(slices.Max(leads))
	}
	var after [16]byte
	var failed error
	for {
		rows, err := s.pool.Query(ctx, inactiveSQL, now, horizon, s.cfg.PageSize, after)
		if err != nil {
			return p, fmt.Errorf("read the inactive tokens: %w", err)
		}
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (inactiveToken, error) {
			var id [16]byte
			var last time.Time
			if err := r.Scan(&id, &last); err != nil {
				return inactiveToken{}, err
			}
			return inactiveToken{id: domain.TokenID(ulid.ULID(id)), due: last.Add(s.cfg.Inactivity)}, nil
		})
		if err != nil {
			return p, fmt.Errorf("read the inactive tokens: %w", err)
		}
		for _, d := range page {
			p.Checked++
			ok, err := s.ann.EnforceInactivity(ctx, d.id, d.due, leads)
			if err != nil {
				if ctx.Err() != nil {
					return p, ctx.Err()
				}
				s.log.Warn("inactivity policy: nothing recorded; trying again at the next pass", "token", d.id.String(), "error", err)
				failed = err
				continue
			}
			if ok {
				p.Recorded++
			}
		}
		if len(page) < s.cfg.PageSize {
			return p, failed
		}
		after = [16]byte(page[len(page)-1].id)
	}
}
