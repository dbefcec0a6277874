package projections

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenledger/tokenledger/domain"
)

// ValidatorKeep says which tokens a ValidatorSnapshot leaves out, in the
// database, so that they are never sent.
type ValidatorKeep struct {
	// ExpiredAfter: a token whose expiry is at or before it is left out,
	// unless it was rotated out. Zero keeps every expiry.
	ExpiredAfter time.Time
	// RevokedAfter: a token revoked (by itself or an owner-wide
	// revocation) is left out unless it was created after it. The zero
	// time keeps every revoked token.
	RevokedAfter time.Time
	// Limit, if positive, is the most rows sent (which ones is not
	// specified).
	Limit int
}

// ValidatorRow is one token of a ValidatorSnapshot, with what a validator
// keeps of it. Owner and Scopes alias the connection's read buffer: they
// are valid only until the callback returns (copy what is kept).
type ValidatorRow struct {
	ID    domain.TokenID
	Owner []byte
	// Scopes are the token's scopes as stored, separated by single spaces.
	Scopes     []byte
	Session    bool
	SecretHash domain.SecretHash
	// CreatedAt and ExpiresAt are Unix microseconds; HasExpiry is false
	// for a token that does not expire.
	CreatedAt, ExpiresAt int64
	HasExpiry            bool
	Revoked              bool
	// OwnerRevoked: an owner-wide revocation covers the token (its issue
	// precedes the owner's latest revocation in the stream, or it was
	// created before the revocation's "until").
	OwnerRevoked bool
	Rotated      bool
	// Family is the rotation family the token was issued into; zero if
	// none.
	Family    domain.TokenID
	IssuedSeq uint64
	// AllowedCIDRs are the networks the token may be used from, in
	// canonical form separated by single spaces; empty for any network.
	// It aliases the read buffer as Owner does.
	AllowedCIDRs []byte
}

// liveTokensSQL selects, for ValidatorSnapshot, the columns of
// ValidatorRow of the tokens (table %[1]s) that keep (ValidatorKeep) does
// not leave out, with their owner's revocation (table %[2]s). $1 is
// ExpiredAfter, $2 RevokedAfter, $3 the limit (NULL: none).
const liveTokensSQL = `SELECT t.id, t.owner, array_to_string(t.scopes, ' '), t.kind = 'session', t.secret_hash,
	t.created_at, t.expires_at, t.rotated_to IS NOT NULL, t.revoked_at IS NOT NULL, t.family, t.issued_seq,
	coalesce(t.issued_seq < o.revoked_before_seq OR t.created_at < o.until, false),
	array_to_string(t.allowed_cidrs, ' ')
FROM %[1]s AS t LEFT JOIN %[2]s AS o ON o.owner = t.owner
WHERE (t.expires_at IS NULL OR t.expires_at > $1 OR t.rotated_to IS NOT NULL)
	AND (t.created_at > $2 OR (t.revoked_at IS NULL
		AND NOT coalesce(t.issued_seq < o.revoked_before_seq OR t.created_at < o.until, false)))
LIMIT $3`

const liveTokensColumns = 13

// ValidatorSnapshot is Snapshot for a validator: it reads, in one
// consistent read-only transaction as Snapshot does, the checkpoint and
// every owner revocation, hands them to begin, then reads the tokens that
// keep does not leave out, leaving the others in the database. fn is
// called once per token, in no particular order, with a row decoded from
// the wire without allocating: it is valid until fn returns. Usage
// columns are not read. An error from fn stops the read and is returned
// wrapped.
func (s *ReadModel) ValidatorSnapshot(ctx context.Context, name string, keep ValidatorKeep, begin func(*SnapshotInfo), fn func(*ValidatorRow) error) (SnapshotInfo, error) {
	var limit any
	if keep.Limit > 0 {
		limit = int64(keep.Limit)
	}
	var r ValidatorRow
	info, err := s.readSnapshot(ctx, name, begin, s.live.liveTokens,
		[]any{pgx.QueryResultFormats{pgx.BinaryFormatCode}, keep.ExpiredAfter, keep.RevokedAfter, limit},
		func(rows pgx.Rows) error {
			if err := decodeValidatorRow(rows.RawValues(), &r); err != nil {
				return fmt.Errorf("decode token: %w", err)
			}
			if err := fn(&r); err != nil {
				return fmt.Errorf("token %s: %w", r.ID, err)
			}
			return nil
		})
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("validator snapshot of projection %q: %w", name, err)
	}
	return info, nil
}

var errBadRow = errors.New("unexpected column value")

// decodeValidatorRow decodes one row of liveTokensSQL, in binary format,
// into r.
func decodeValidatorRow(v [][]byte, r *ValidatorRow) error {
	if len(v) != liveTokensColumns || len(v[0]) != 16 || len(v[4]) != len(r.SecretHash) ||
		len(v[3]) != 1 || len(v[5]) != 8 || len(v[7]) != 1 || len(v[8]) != 1 || len(v[10]) != 8 || len(v[11]) != 1 ||
		(v[6] != nil && len(v[6]) != 8) || (v[9] != nil && len(v[9]) != 16) {
		return errBadRow
	}
	r.ID = domain.TokenID(v[0])
	r.Owner = v[1]
	r.Scopes = v[2]
	r.Session = v[3][0] != 0
	r.SecretHash = domain.SecretHash(v[4])
	r.CreatedAt = int64(binary.BigEndian.Uint64(v[5])) + pgEpochMicros
	r.HasExpiry = v[6] != nil
	r.ExpiresAt = 0
	if r.HasExpiry {
		r.ExpiresAt = int64(binary.BigEndian.Uint64(v[6])) + pgEpochMicros
	}
	r.Rotated = v[7][0] != 0
	r.Revoked = v[8][0] != 0
	r.Family = domain.TokenID{}
	if v[9] != nil {
		r.Family = domain.TokenID(v[9])
	}
	r.IssuedSeq = binary.BigEndian.Uint64(v[10])
	r.OwnerRevoked = v[11][0] != 0
	r.AllowedCIDRs = v[12]
	return nil
}
