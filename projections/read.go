package projections

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenledger/tokenledger/domain"
)

// List limits.
const (
	DefaultListLimit = 50
	MaxListLimit     = 1000
)

// ListFilter selects the tokens List returns. Zero fields do not filter.
type ListFilter struct {
	// Owner keeps only this owner's tokens.
	Owner *domain.OwnerID
	// Status keeps only tokens with this status at Now: domain.StatusActive,
	// StatusExpired or StatusRevoked; empty keeps all.
	Status domain.TokenStatus
	// UnusedFor keeps tokens not used for at least this long before Now,
	// never used ones included. Uses count wherever they are recorded: in
	// the token's row or in its usage row (see ApplyUsageBatch).
	UnusedFor time.Duration
	// ExpiringWithin keeps active tokens whose expiry is at most this long
	// after Now.
	ExpiringWithin time.Duration
	// Limit is the page size: DefaultListLimit when zero, at most
	// MaxListLimit (larger values are lowered to it).
	Limit int
	// Cursor continues a listing: the NextCursor of the previous page, with
	// the same filter. Empty starts at the first token.
	Cursor string
	// Now is the instant statuses and durations are evaluated at; zero
	// means the ReadModel's clock.
	Now time.Time
}

// Page is one page of a listing, in id order (the order tokens were
// issued).
type Page struct {
	Items []TokenRow
	// NextCursor continues the listing; empty when this page is the last.
	NextCursor string
}

// Get returns token id's row, with its status as of the ReadModel's clock and
// its usage combined from both places it is recorded (see TokenRow). The
// error wraps domain.ErrNotFound if the projection has no such token; a
// token with usage but no row yet is not found.
func (s *ReadModel) Get(ctx context.Context, id domain.TokenID) (TokenRow, error) {
	rows, err := s.pool.Query(ctx, s.live.selectToken, uuidArg(id))
	if err != nil {
		return TokenRow{}, fmt.Errorf("get token %s: %w", id, err)
	}
	defer rows.Close()
	sc := newTokenScan(true)
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return TokenRow{}, fmt.Errorf("get token %s: %w", id, err)
		}
		return TokenRow{}, fmt.Errorf("get token %s: %w", id, domain.ErrNotFound)
	}
	if err := sc.scan(rows); err != nil {
		return TokenRow{}, fmt.Errorf("get token %s: %w", id, err)
	}
	r := sc.row()
	owner, err := sc.ownerOfScan(&r)
	if err != nil {
		return TokenRow{}, fmt.Errorf("get token %s: %w", id, err)
	}
	r.resolveStatus(owner, domain.NormalizeTime(s.clock.Now()))
	rows.Close()
	if err := rows.Err(); err != nil {
		return TokenRow{}, fmt.Errorf("get token %s: %w", id, err)
	}
	return r, nil
}

// GetOwnerRevocation returns owner's revocation row; the error wraps
// domain.ErrNotFound if the owner's tokens were never revoked.
func (s *ReadModel) GetOwnerRevocation(ctx context.Context, owner domain.OwnerID) (OwnerRevocationRow, error) {
	o, err := scanOwner(s.pool.QueryRow(ctx, s.live.selectOwner, string(owner)))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return OwnerRevocationRow{}, fmt.Errorf("get revocation of owner %q: %w", owner, domain.ErrNotFound)
	case err != nil:
		return OwnerRevocationRow{}, fmt.Errorf("get revocation of owner %q: %w", owner, err)
	}
	return o, nil
}

// A token's usage is recorded in two places: the columns of tokens t, fed
// by token.used events of the lifecycle stream, and its row of token_usage
// u, fed by the usage stream (see ApplyUsageBatch), which may exist before
// the token's row or without one. Reads join u to t and combine them: the
// later of the two last uses (GREATEST ignores a NULL), and the sum of the
// counts, saturating at the largest bigint as each count does.
const (
	usageJoinSQL        = `LEFT JOIN ` + UsageTable + ` AS u ON u.token_id = t.id`
	combinedLastUsedSQL = `GREATEST(t.last_used_at, u.last_used_at)`
	combinedUseCountSQL = `CASE WHEN u.use_count > 9223372036854775807 - t.use_count THEN 9223372036854775807 ` +
		`ELSE t.use_count + coalesce(u.use_count, 0) END`
)

// unusedSinceSQL keeps the tokens used nowhere at or after the instant
// placeholder p: never used at all, or last used before it in both places.
func unusedSinceSQL(p string) string {
	return "(t.last_used_at IS NULL OR t.last_used_at < " + p + ") AND (u.last_used_at IS NULL OR u.last_used_at < " + p + ")"
}

// The status of a row of tokens t joined with its owner's revocation o, in
// SQL; resolveStatus is the same rule in Go.
const (
	revokedSQL = `(t.revoked_at IS NOT NULL OR (o.owner IS NOT NULL AND ` +
		`(t.issued_seq < o.revoked_before_seq OR (o.until IS NOT NULL AND t.created_at < o.until))))`
	notRevokedSQL = `NOT ` + revokedSQL
)

// List returns a page of tokens matching f, ordered by id, with usage
// combined as Get combines it. Errors wrap
// domain.ErrInvalidArgument for a malformed cursor, an unknown status or a
// negative limit or duration.
func (s *ReadModel) List(ctx context.Context, f ListFilter) (Page, error) {
	query, args, limit, err := s.listQuery(f)
	if err != nil {
		return Page{}, fmt.Errorf("list tokens: %w", err)
	}
	now := args[0].(time.Time)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return Page{}, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	page := Page{Items: make([]TokenRow, 0, min(limit, 64))}
	sc := newTokenScan(true)
	more := false
	for rows.Next() {
		if len(page.Items) == limit {
			more = true
			break
		}
		if err := sc.scan(rows); err != nil {
			return Page{}, fmt.Errorf("list tokens: %w", err)
		}
		r := sc.row()
		owner, err := sc.ownerOfScan(&r)
		if err != nil {
			return Page{}, fmt.Errorf("list tokens: %w", err)
		}
		r.resolveStatus(owner, now)
		page.Items = append(page.Items, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("list tokens: %w", err)
	}
	if more {
		page.NextCursor = encodeCursor(page.Items[len(page.Items)-1].ID)
	}
	return page, nil
}

// listQuery builds List's statement. Only the conditions f uses are in it,
// so each combination gets a plan that can use its index.
func (s *ReadModel) listQuery(f ListFilter) (query string, args []any, limit int, err error) {
	switch {
	case f.Limit < 0:
		return "", nil, 0, fmt.Errorf("%w: limit %d is negative", domain.ErrInvalidArgument, f.Limit)
	case f.Limit == 0:
		limit = DefaultListLimit
	default:
		limit = min(f.Limit, MaxListLimit)
	}
	if f.UnusedFor < 0 || f.ExpiringWithin < 0 {
		return "", nil, 0, fmt.Errorf("%w: negative duration", domain.ErrInvalidArgument)
	}
	now := f.Now
	if now.IsZero() {
		now = s.clock.Now()
	}
	now = domain.NormalizeTime(now)

	args = []any{now}
	var where []string
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Cursor != "" {
		after, err := decodeCursor(f.Cursor)
		if err != nil {
			return "", nil, 0, err
		}
		where = append(where, "t.id > "+arg(uuidArg(after)))
	}
	if f.Owner != nil {
		where = append(where, "t.owner = "+arg(string(*f.Owner)))
	}
	switch f.Status {
	case "":
	case domain.StatusRevoked:
		where = append(where, revokedSQL)
	case domain.StatusExpired:
		where = append(where, notRevokedSQL, "t.expires_at <= $1")
	case domain.StatusActive:
		where = append(where, notRevokedSQL, "(t.expires_at IS NULL OR t.expires_at > $1)")
	default:
		return "", nil, 0, fmt.Errorf("%w: unknown status %q", domain.ErrInvalidArgument, f.Status)
	}
	if f.UnusedFor > 0 {
		where = append(where, unusedSinceSQL(arg(now.Add(-f.UnusedFor))))
	}
	if f.ExpiringWithin > 0 {
		where = append(where, notRevokedSQL, "t.expires_at > $1", "t.expires_at <= "+arg(now.Add(f.ExpiringWithin)))
	}
	var b strings.Builder
	b.WriteString(s.live.listTokens)
	// $1 is referenced even when no condition needs it, so that its type
	// is always known.
	b.WriteString("\nWHERE $1::timestamptz IS NOT NULL")
	for _, w := range where {
		b.WriteString("\n  AND ")
		b.WriteString(w)
	}
	b.WriteString("\nORDER BY t.id LIMIT ")
	b.WriteString(arg(int64(limit + 1)))
	return b.String(), args, limit, nil
}

var cursorEncoding = base64.RawURLEncoding

func encodeCursor(id domain.TokenID) string { return cursorEncoding.EncodeToString(id[:]) }

func decodeCursor(c string) (domain.TokenID, error) {
	b, err := cursorEncoding.DecodeString(c)
	if err != nil || len(b) != len(domain.TokenID{}) {
		return domain.TokenID{}, fmt.Errorf("%w: malformed cursor", domain.ErrInvalidArgument)
	}
	return domain.TokenID(b), nil
}
