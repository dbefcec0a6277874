package projections

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tokenledger/tokenledger/domain"
)

// The live tables, and the shadow tables a Rebuild fills.
const (
	TokensTable                  = "tokens"
	OwnerRevocationsTable        = "owner_revocations"
	TokensRebuildTable           = "tokens_rebuild"
	OwnerRevocationsRebuildTable = "owner_revocations_rebuild"
)

// tokenColumns are the columns of tokens, in the order rows are written
// and scanned.
var tokenColumns = []string{
	"id", "owner", "name", "scopes", "kind", "secret_hash", "created_at", "expires_at",
	"idle_timeout_seconds", "absolute_expires_at", "rotated_from", "rotated_to",
	"revoked_at", "revoked_reason", "revoked_by", "last_used_at", "use_count",
	"issued_seq", "last_seq", "family", "allowed_cidrs",
}

var ownerColumns = []string{"owner", "revoked_before", "revoked_before_seq", "until", "reason", "last_seq", "revocations"}

// tableSet is one pair of tables a projection is kept in, with the
// statements that read and write them. Table names are quoted with
// pgx.Identifier, never spliced from input.
type tableSet struct {
	tokens, owners pgx.Identifier
	// createCheckpoint: ApplyBatch creates a missing checkpoint row (at
	// zero). The shadow tables' row is created by Rebuild.Load only.
	createCheckpoint bool

	lockTokens   string
	lockOwners   string
	insertToken  string
	updateTokens string
	upsertOwners string
	selectToken  string // by id, joined with its owner's revocation
	listTokens   string // prefix of List's query, without WHERE
	selectOwner  string
	allOwners    string
	allTokens    string
	// liveTokens is ValidatorSnapshot's query (snapshot_validator.go).
	liveTokens string
}

func newTableSet(tokens, owners string, createCheckpoint bool) *tableSet {
	ts := &tableSet{tokens: pgx.Identifier{tokens}, owners: pgx.Identifier{owners}, createCheckpoint: createCheckpoint}
	tq, oq := ts.tokens.Sanitize(), ts.owners.Sanitize()
	cols := strings.Join(tokenColumns, ", ")
	rcols := readColumns()
	ocols := strings.Join(ownerColumns, ", ")

	// The rows of the batch's tokens ($1) and of every member of the
	// families it revokes ($2: the first token by its id, the others by
	// their family).
	ts.lockTokens = fmt.Sprintf(`SELECT %s FROM %s
WHERE id = ANY($1::uuid[]) OR id = ANY($2::uuid[]) OR family = ANY($2::uuid[]) ORDER BY id FOR UPDATE`, cols, tq)
	ts.lockOwners = fmt.Sprintf(`SELECT %s FROM %s WHERE owner = ANY($1::text[]) ORDER BY owner FOR UPDATE`, ocols, oq)
	ts.insertToken = fmt.Sprintf(`INSERT INTO %s (%s) VALUES (%s)`, tq, cols, placeholders(len(tokenColumns)))
	ts.updateTokens = fmt.Sprintf(`UPDATE %s AS t SET
	expires_at = u.expires_at, rotated_to = u.rotated_to, revoked_at = u.revoked_at,
	revoked_reason = u.revoked_reason, revoked_by = u.revoked_by, last_used_at = u.last_used_at,
	use_count = u.use_count, last_seq = u.last_seq,
	allowed_cidrs = CASE WHEN u.allowed_cidrs = '' THEN NULL ELSE string_to_array(u.allowed_cidrs, ' ') END
FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[], $4::timestamptz[], $5::text[], $6::text[],
            $7::timestamptz[], $8::int8[], $9::int8[], $10::text[])
	AS u(id, expires_at, rotated_to, revoked_at, revoked_reason, revoked_by, last_used_at, use_count, last_seq, allowed_cidrs)
WHERE t.id = u.id`, tq)
	ts.upsertOwners = fmt.Sprintf(`INSERT INTO %s (%s)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int8[], $4::timestamptz[], $5::text[], $6::int8[], $7::jsonb[])
ON CONFLICT (owner) DO UPDATE SET
	revoked_before = excluded.revoked_before, revoked_before_seq = excluded.revoked_before_seq,
	until = excluded.until, reason = excluded.reason, last_seq = excluded.last_seq,
	revocations = excluded.revocations`, oq, ocols)
	joined := fmt.Sprintf(`SELECT %s, o.owner IS NOT NULL, o.revoked_before_seq, o.until, o.revocations
FROM %s AS t LEFT JOIN %s AS o ON o.owner = t.owner %s`, rcols, tq, oq, usageJoinSQL)
	ts.selectToken = joined + ` WHERE t.id = $1`
	ts.listTokens = joined
	ts.selectOwner = fmt.Sprintf(`SELECT %s FROM %s WHERE owner = $1`, ocols, oq)
	ts.allOwners = fmt.Sprintf(`SELECT %s FROM %s ORDER BY owner`, ocols, oq)
	ts.allTokens = fmt.Sprintf(`SELECT %s FROM %s AS t %s`, rcols, tq, usageJoinSQL)
	ts.liveTokens = fmt.Sprintf(liveTokensSQL, tq, oq)
	return ts
}

// readColumns is the select list of reads, in tokenColumns order, on
// tokens t joined with usageJoinSQL: the usage columns combine both
// tables, every other column is t's.
func readColumns() string {
	cols := make([]string, len(tokenColumns))
	for i, c := range tokenColumns {
		switch c {
		case "last_used_at":
			cols[i] = combinedLastUsedSQL
		case "use_count":
			cols[i] = combinedUseCountSQL
		default:
			cols[i] = "t." + c
		}
	}
	return strings.Join(cols, ", ")
}

func placeholders(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", i)
	}
	return b.String()
}

// Checkpoint statements. The insert makes sure a row exists to lock, so
// two first batches of a projection cannot both start from zero.
const (
	insertCheckpointSQL = `INSERT INTO projection_checkpoints (name, last_seq) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING`
	lockCheckpointSQL   = `SELECT last_seq FROM projection_checkpoints WHERE name = $1 FOR UPDATE`
	saveCheckpointSQL   = `UPDATE projection_checkpoints SET last_seq = $2, updated_at = now() WHERE name = $1`
	readCheckpointSQL   = `SELECT last_seq FROM projection_checkpoints WHERE name = $1`
	deleteCheckpointSQL = `DELETE FROM projection_checkpoints WHERE name = $1`
)

// tokenScan receives one scanned tokens row.
type tokenScan struct {
	id, rotatedFrom, rotatedTo, family                  pgtype.UUID
	owner, name, kind                                   string
	scopes, cidrs                                       []string
	hash                                                []byte
	createdAt                                           time.Time
	expiresAt, absoluteExpiresAt, revokedAt, lastUsedAt pgtype.Timestamptz
	idleSeconds                                         pgtype.Int8
	revokedReason, revokedBy                            pgtype.Text
	useCount, issuedSeq, lastSeq                        int64
	hasOwnerRow                                         bool
	ownerSeq                                            pgtype.Int8
	ownerUntil                                          pgtype.Timestamptz
	ownerRevocations                                    []byte
	dst                                                 []any
}

func newTokenScan(withOwner bool) *tokenScan {
	s := &tokenScan{}
	s.dst = []any{&s.id, &s.owner, &s.name, &s.scopes, &s.kind, &s.hash, &s.createdAt, &s.expiresAt,
		&s.idleSeconds, &s.absoluteExpiresAt, &s.rotatedFrom, &s.rotatedTo,
		&s.revokedAt, &s.revokedReason, &s.revokedBy, &s.lastUsedAt, &s.useCount,
		&s.issuedSeq, &s.lastSeq, &s.family, &s.cidrs}
	if withOwner {
		s.dst = append(s.dst, &s.hasOwnerRow, &s.ownerSeq, &s.ownerUntil, &s.ownerRevocations)
	}
	return s
}

func (s *tokenScan) scan(rows pgx.Rows) error {
	s.scopes, s.cidrs = nil, nil
	return rows.Scan(s.dst...)
}

func (s *tokenScan) row() TokenRow {
	r := TokenRow{
		ID:                domain.TokenID(s.id.Bytes),
		Owner:             domain.OwnerID(s.owner),
		Name:              s.name,
		Scopes:            s.scopes,
		Kind:              domain.TokenKind(s.kind),
		CreatedAt:         s.createdAt.UTC(),
		ExpiresAt:         fromTimestamptz(s.expiresAt),
		IdleTimeout:       time.Duration(s.idleSeconds.Int64) * time.Second,
		AbsoluteExpiresAt: fromTimestamptz(s.absoluteExpiresAt),
		RevokedAt:         fromTimestamptz(s.revokedAt),
		RevokedReason:     s.revokedReason.String,
		RevokedBy:         s.revokedBy.String,
		LastUsedAt:        fromTimestamptz(s.lastUsedAt),
		UseCount:          uint64(s.useCount),
		IssuedSeq:         uint64(s.issuedSeq),
		LastSeq:           uint64(s.lastSeq),
		AllowedCIDRs:      s.cidrs,
	}
	if r.Scopes == nil {
		r.Scopes = []string{}
	}
	copy(r.SecretHash[:], s.hash)
	if s.rotatedFrom.Valid {
		r.RotatedFrom = domain.TokenID(s.rotatedFrom.Bytes)
	}
	if s.rotatedTo.Valid {
		r.RotatedTo = domain.TokenID(s.rotatedTo.Bytes)
	}
	if s.family.Valid {
		r.Family = domain.TokenID(s.family.Bytes)
	}
	return r
}

// ownerOfScan returns the owner revocation joined to the scanned token, nil
// if its owner has none. Only what status needs is filled in: the list of
// revocations only when the owner's revocations cover the token.
func (s *tokenScan) ownerOfScan(r *TokenRow) (*OwnerRevocationRow, error) {
	if !s.hasOwnerRow {
		return nil, nil
	}
	o := &OwnerRevocationRow{Owner: r.Owner, RevokedBeforeSeq: uint64(s.ownerSeq.Int64), Until: fromTimestamptz(s.ownerUntil)}
	if o.Covers(r) {
		revs, err := decodeRevocations(s.ownerRevocations)
		if err != nil {
			return nil, fmt.Errorf("revocations of owner %q: %w", r.Owner, err)
		}
		o.Revocations = revs
	}
	return o, nil
}

// tokenValues returns the values of r in tokenColumns order, ready to be
// encoded as query arguments or copied. It reuses dst.
func tokenValues(dst []any, r *TokenRow) []any {
	return append(dst[:0],
		uuidArg(r.ID), string(r.Owner), r.Name, scopesArg(r.Scopes), string(r.Kind), r.SecretHash[:],
		r.CreatedAt, timestamptzArg(r.ExpiresAt), idleArg(r.IdleTimeout), timestamptzArg(r.AbsoluteExpiresAt),
		uuidArg(r.RotatedFrom), uuidArg(r.RotatedTo), timestamptzArg(r.RevokedAt), textArg(r.RevokedReason),
		textArg(r.RevokedBy), timestamptzArg(r.LastUsedAt), int64(r.UseCount), int64(r.IssuedSeq), int64(r.LastSeq),
		uuidArg(r.Family), cidrsArg(r.AllowedCIDRs))
}

// cidrsArg is a token's allowed networks as a text[] argument: NULL for
// none (any network).
func cidrsArg(cidrs []string) []string {
	if len(cidrs) == 0 {
		return nil
	}
	return cidrs
}

func ownerValues(dst []any, o *OwnerRevocationRow) []any {
	return append(dst[:0], string(o.Owner), o.RevokedBefore, int64(o.RevokedBeforeSeq),
		timestamptzArg(o.Until), textArg(o.Reason), int64(o.LastSeq), revocationsArg(o.Revocations))
}

// decodeRevocations reads the revocations column: nil when empty, times in
// UTC.
func decodeRevocations(b []byte) ([]RevocationEntry, error) {
	var revs []RevocationEntry
	if err := json.Unmarshal(b, &revs); err != nil {
		return nil, err
	}
	if len(revs) == 0 {
		return nil, nil
	}
	for i := range revs {
		revs[i].At = revs[i].At.UTC()
		if !revs[i].Until.IsZero() {
			revs[i].Until = revs[i].Until.UTC()
		}
	}
	return revs, nil
}

// revocationsArg is the revocations column of a row: a JSON array, never
// null.
func revocationsArg(revs []RevocationEntry) []byte {
	if len(revs) == 0 {
		return []byte("[]")
	}
	b, err := json.Marshal(revs)
	if err != nil {
		// Times in the range the domain accepts, text and integers
		// always marshal.
		panic(fmt.Sprintf("projections: encode revocations: %v", err))
	}
	return b
}

func scanOwner(row pgx.Row) (OwnerRevocationRow, error) {
	var (
		o          OwnerRevocationRow
		owner      string
		until      pgtype.Timestamptz
		reason     pgtype.Text
		seq, lastQ int64
		revs       []byte
	)
	err := row.Scan(&owner, &o.RevokedBefore, &seq, &until, &reason, &lastQ, &revs)
	if err != nil {
		return OwnerRevocationRow{}, err
	}
	if o.Revocations, err = decodeRevocations(revs); err != nil {
		return OwnerRevocationRow{}, fmt.Errorf("revocations of owner %q: %w", owner, err)
	}
	o.Owner = domain.OwnerID(owner)
	o.RevokedBefore = o.RevokedBefore.UTC()
	o.RevokedBeforeSeq = uint64(seq)
	o.Until = fromTimestamptz(until)
	o.Reason = reason.String
	o.LastSeq = uint64(lastQ)
	return o, nil
}

func uuidArg(id domain.TokenID) pgtype.UUID {
	return pgtype.UUID{Bytes: [16]byte(id), Valid: !id.IsZero()}
}

func timestamptzArg(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

func textArg(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

func idleArg(d time.Duration) pgtype.Int8 {
	s := int64(d / time.Second)
	return pgtype.Int8{Int64: s, Valid: s != 0}
}

func scopesArg(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func fromTimestamptz(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}
