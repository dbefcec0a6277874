package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tokenledger/tokenledger/domain"
)

// UsageTable is the table the usage projection writes: one row per token
// used, keyed by token id, apart from the tokens table (see
// ApplyUsageBatch).
const UsageTable = "token_usage"

// Usage is the use of one token, folded from usage events: one row of
// the usage table, or what a batch adds to it.
type Usage struct {
	TokenID domain.TokenID
	// Count is the number of uses, saturating at math.MaxInt64.
	Count uint64
	// FirstAt and LastAt are the first and last use.
	FirstAt, LastAt time.Time
	// ClientAddr is the client address of the latest use (by LastAt; of
	// the later event on a tie); empty if that use recorded none.
	ClientAddr string
}

// UsageResult tells what ApplyUsageBatch did.
type UsageResult struct {
	// Checkpoint is the projection's checkpoint after the call: every usage
	// event at or below it is applied. The caller may acknowledge the
	// events at or below it, and must hand back the others.
	Checkpoint uint64
	// Applied is how many events were folded into the usage table now.
	Applied int
	// Skipped is how many events were at or below the checkpoint already
	// (applied before: a redelivery) and changed nothing.
	Skipped int
	// Deferred is how many events above the checkpoint were not applied
	// because an earlier sequence was missing from the batch; see
	// ApplyUsageBatch.
	Deferred int
	// Usage is what the applied events added, one entry per token in token
	// id order: the rows of the one statement written.
	Usage []Usage
	// Hours is what the applied events added to the hourly rollups, one
	// entry per token and hour, written by the same statement.
	Hours []HourlyUsage
}

// UsedAddr is a client address a token was used from, with its last use
// from there.
type UsedAddr struct {
	Addr string    `json:"addr"`
	At   time.Time `json:"at"`
}

// MaxRecentAddrs is how many distinct client addresses the usage table
// keeps per token.
const MaxRecentAddrs = 5

// HourlyUsage is the number of uses of a token in one hour (UTC): a usage
// event's count goes to the hour of its last use.
type HourlyUsage struct {
	TokenID domain.TokenID
	Hour    time.Time
	Count   uint64
}

// ErrUsageEvent is returned (wrapped) by ApplyUsageBatch for an event that
// is neither a usage batch, a token.used event of a token nor a skip
// placeholder. Nothing is written then.
var ErrUsageEvent = errors.New("not a usage event")

// ApplyUsageBatch applies usage events read from the usage stream (usage
// batches, each expanded into its per-token uses, and token.used events), in
// strictly increasing, non-zero sequence order, to the usage table of
// projection name (the checkpoint row name in projection_checkpoints,
// which holds a usage-stream sequence), in one transaction:
//
//  1. it locks the checkpoint row (creating it at zero);
//  2. it skips the events at or below the checkpoint: they were applied
//     before, so a redelivery after a crash changes nothing;
//  3. it keeps the events that continue the checkpoint without a gap —
//     sequences checkpoint+1, checkpoint+2, … — and defers the rest: a
//     missing sequence is an event delivered elsewhere and not applied yet
//     (to a consumer that died before acknowledging it, or to another
//     instance), and advancing the checkpoint past it would lose it for
//     good. The caller hands deferred events back for redelivery;
//  4. it folds the kept events per token (counts added, the earliest
//     first use, the latest last use and its client address) and writes
//     them with ONE statement, an
//     INSERT … SELECT FROM unnest(…) ON CONFLICT DO UPDATE that adds to
//     the stored row: rows written ≤ distinct tokens in the batch;
//  5. it sets the checkpoint to the last kept sequence and commits.
//
// So each event is counted exactly once, whatever is delivered how many
// times, by how many consumers. Usage of a token the tokens table does not
// hold (yet) is kept: the usage table has no reference to it.
//
// An event with a zero ID, no Type and no Data is a placeholder: it
// occupies its sequence and changes no row (an operator's skip of an
// undecodable event). A client address that is not valid UTF-8, holds a
// NUL byte or is longer than domain.MaxClientAddrLen is not stored; the use
// is. Events out of order are refused with ErrOutOfOrder, other events
// with ErrUsageEvent, before anything is written. Concurrent calls for one
// name serialise on the checkpoint row. The call costs three round trips:
// begin and lock; write and checkpoint; commit (a batch with nothing to
// apply rolls back after the first).
func (s *ReadModel) ApplyUsageBatch(ctx context.Context, name string, events []domain.Envelope) (UsageResult, error) {
	res, err := s.applyUsage(ctx, name, events)
	if err != nil {
		return UsageResult{}, fmt.Errorf("apply usage batch of %d events to projection %q: %w", len(events), name, err)
	}
	return res, nil
}

// usageInput is one event of a usage batch, checked: its uses, one per
// token for a usage batch, one for a token.used event.
type usageInput struct {
	seq         uint64
	placeholder bool
	uses        []tokenUse
}

type tokenUse struct {
	id   domain.TokenID
	used domain.TokenUsed
}

func (s *ReadModel) applyUsage(ctx context.Context, name string, events []domain.Envelope) (UsageResult, error) {
	if err := checkOrder(events); err != nil {
		return UsageResult{}, err
	}
	in := make([]usageInput, len(events))
	for i, e := range events {
		u, err := usageOf(e)
		if err != nil {
			return UsageResult{}, fmt.Errorf("event %d at sequence %d: %w", i, e.Sequence, err)
		}
		in[i] = u
	}
	if len(in) == 0 {
		cp, err := readCheckpoint(ctx, s.pool, name)
		return UsageResult{Checkpoint: cp}, err
	}

	var checkpoint int64
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(insertCheckpointSQL, name)
	b.Queue(lockCheckpointSQL, name).QueryRow(func(row pgx.Row) error { return row.Scan(&checkpoint) })
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer func() { _ = tx.Rollback(ctx) }()
	if err := br.Close(); err != nil {
		return UsageResult{}, fmt.Errorf("lock checkpoint: %w", err)
	}

	res := UsageResult{Checkpoint: uint64(checkpoint)}
	var f usageFold
	for _, u := range in {
		switch {
		case u.seq <= res.Checkpoint:
			res.Skipped++
		case u.seq == res.Checkpoint+1 && res.Deferred == 0:
			for _, tu := range u.uses {
				f.add(tu)
			}
			res.Applied++
			res.Checkpoint = u.seq
		default:
			res.Deferred++
		}
	}
	if res.Checkpoint == uint64(checkpoint) {
		// Nothing to write: rolling back releases the lock without a
		// commit to flush.
		if err := tx.Rollback(ctx); err != nil {
			return UsageResult{}, fmt.Errorf("roll back: %w", err)
		}
		return res, nil
	}
	res.Usage = f.rows()
	res.Hours = f.hourRows()
	wb := &pgx.Batch{}
	if len(res.Usage) > 0 {
		cols := usageColumns(res.Usage, f.recentByID())
		hours := hourColumns(res.Hours)
		n := len(res.Usage)
		wb.Queue(upsertUsageSQL, cols.ids, cols.lastAt, cols.count, cols.firstAt, cols.addr, cols.recent,
			hours.ids, hours.hours, hours.count, s.rollupCutoff()).Exec(func(ct pgconn.CommandTag) error {
			if int(ct.RowsAffected()) != n {
				return fmt.Errorf("wrote %d usage rows, want %d", ct.RowsAffected(), n)
			}
			return nil
		})
	}
	wb.Queue(saveCheckpointSQL, name, int64(res.Checkpoint))
	if err := tx.SendBatch(ctx, wb).Close(); err != nil {
		return UsageResult{}, fmt.Errorf("write %d usage rows and checkpoint %d: %w", len(res.Usage), res.Checkpoint, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return UsageResult{}, fmt.Errorf("commit: %w", err)
	}
	return res, nil
}

// upsertUsageSQL is the one statement a usage batch writes: the usage
// rows ($1–$6) and, in its WITH, the hourly rollups ($7–$9) and, when a
// retention is set, the deletion of rollups of hours before $10 (a
// data-modifying WITH runs to completion whether or not it is read). The client address is the
// latest use's; the batch, being later in the stream, wins a tie. The
// recent addresses are merged: the latest use of each distinct address,
// the MaxRecentAddrs latest kept.
const upsertUsageSQL = `WITH h AS (
INSERT INTO ` + HourlyUsageTable + ` AS cur (token_id, hour, use_count)
SELECT * FROM unnest($7::uuid[], $8::timestamptz[], $9::bigint[])
ON CONFLICT (token_id, hour) DO UPDATE SET
	use_count = CASE WHEN cur.use_count > 9223372036854775807 - EXCLUDED.use_count THEN 9223372036854775807
		ELSE cur.use_count + EXCLUDED.use_count END
), pruned AS (
DELETE FROM ` + HourlyUsageTable + ` WHERE $10::timestamptz IS NOT NULL AND hour < $10::timestamptz
)
INSERT INTO ` + UsageTable + ` AS cur (token_id, last_used_at, use_count, first_used_at, last_client_addr, recent_addrs)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::bigint[], $4::timestamptz[], $5::text[], $6::jsonb[])
ON CONFLICT (token_id) DO UPDATE SET
	last_used_at = GREATEST(cur.last_used_at, EXCLUDED.last_used_at),
	use_count = CASE WHEN cur.use_count > 9223372036854775807 - EXCLUDED.use_count THEN 9223372036854775807
		ELSE cur.use_count + EXCLUDED.use_count END,
	first_used_at = LEAST(cur.first_used_at, EXCLUDED.first_used_at),
	last_client_addr = CASE WHEN EXCLUDED.last_used_at >= cur.last_used_at
		THEN EXCLUDED.last_client_addr ELSE cur.last_client_addr END,
	recent_addrs = CASE WHEN EXCLUDED.recent_addrs IS NULL THEN cur.recent_addrs ELSE (
		SELECT jsonb_agg(jsonb_build_object('addr', a, 'at', at) ORDER BY at DESC, a)
		FROM (SELECT e->>'addr' AS a, max((e->>'at')::timestamptz) AS at
			FROM jsonb_array_elements(coalesce(cur.recent_addrs, '[]'::jsonb) || EXCLUDED.recent_addrs) AS e
			GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ` + recentAddrsLimit + `) AS r) END`

const recentAddrsLimit = "5" // MaxRecentAddrs

// usageOf checks that e is a usage event (a usage batch, a token.used
// event, or a placeholder) and extracts its uses.
func usageOf(e domain.Envelope) (usageInput, error) {
	if e.ID.IsZero() && e.Type == "" && e.Data == nil {
		return usageInput{seq: e.Sequence, placeholder: true}, nil
	}
	switch e.Type {
	case domain.TypeTokenUsed:
		if _, ok := e.TokenID(); !ok {
			return usageInput{}, fmt.Errorf("%w: event %s does not belong to a token", ErrUsageEvent, e.ID)
		}
		if _, ok := domain.PayloadAs[domain.TokenUsed](e.Data); !ok {
			return usageInput{}, fmt.Errorf("%w: event %s carries no %s payload", ErrUsageEvent, e.ID, domain.TypeTokenUsed)
		}
	case domain.TypeUsageBatch:
		if _, ok := domain.PayloadAs[domain.UsageBatch](e.Data); !ok {
			return usageInput{}, fmt.Errorf("%w: event %s carries no %s payload", ErrUsageEvent, e.ID, domain.TypeUsageBatch)
		}
	default:
		return usageInput{}, fmt.Errorf("%w: event %s is %s", ErrUsageEvent, e.ID, e.Type)
	}
	in := usageInput{seq: e.Sequence}
	for id, d := range domain.Uses(e) {
		if d.Count == 0 || d.FirstAt.IsZero() || d.LastAt.Before(d.FirstAt) {
			return usageInput{}, fmt.Errorf("%w: event %s: token %s: count %d from %s to %s", ErrUsageEvent, e.ID, id, d.Count, d.FirstAt, d.LastAt)
		}
		d.FirstAt, d.LastAt = domain.NormalizeTime(d.FirstAt), domain.NormalizeTime(d.LastAt)
		if !storableAddr(d.ClientAddr) {
			d.ClientAddr = ""
		}
		in.uses = append(in.uses, tokenUse{id: id, used: d})
	}
	return in, nil
}

// storableAddr reports whether a client address can be stored as text.
func storableAddr(a string) bool {
	return len(a) <= domain.MaxClientAddrLen && utf8.ValidString(a) && !strings.ContainsRune(a, 0)
}

// usageFold folds usage events per token, in stream order.
type usageFold struct {
	index map[domain.TokenID]int
	out   []Usage
	// recent are the distinct client addresses of each token's uses
	// (by index in out), latest first, at most MaxRecentAddrs.
	recent [][]UsedAddr
	hours  map[hourKey]uint64
}

type hourKey struct {
	id   domain.TokenID
	hour int64 // Unix seconds
}

func (f *usageFold) add(u tokenUse) {
	if f.index == nil {
		f.index = make(map[domain.TokenID]int)
	}
	i, ok := f.index[u.id]
	if !ok {
		i = len(f.out)
		f.index[u.id] = i
		f.out = append(f.out, Usage{TokenID: u.id, FirstAt: u.used.FirstAt, LastAt: u.used.LastAt, ClientAddr: u.used.ClientAddr})
		f.recent = append(f.recent, nil)
	}
	if f.hours == nil {
		f.hours = make(map[hourKey]uint64)
	}
	k := hourKey{id: u.id, hour: u.used.LastAt.Truncate(time.Hour).Unix()}
	f.hours[k] = saturatingAdd(f.hours[k], u.used.Count)
	if a := u.used.ClientAddr; a != "" {
		f.recent[i] = noteAddr(f.recent[i], UsedAddr{Addr: a, At: u.used.LastAt})
	}
	r := &f.out[i]
	r.Count = saturatingAdd(r.Count, u.used.Count)
	if u.used.FirstAt.Before(r.FirstAt) {
		r.FirstAt = u.used.FirstAt
	}
	// A later event wins a tie: it was recorded later.
	if !u.used.LastAt.Before(r.LastAt) {
		r.LastAt, r.ClientAddr = u.used.LastAt, u.used.ClientAddr
	}
}

// rows returns the folded usage in token id order, the order the upsert
// locks the rows in.
func (f *usageFold) rows() []Usage {
	out := slices.Clone(f.out)
	slices.SortFunc(out, func(a, b Usage) int { return bytes.Compare(a.TokenID[:], b.TokenID[:]) })
	for i := range out {
		out[i].Count = min(out[i].Count, math.MaxInt64)
	}
	return out
}

// noteAddr records a use from u.Addr at u.At in the list of distinct
// addresses, latest first, keeping the MaxRecentAddrs latest.
func noteAddr(list []UsedAddr, u UsedAddr) []UsedAddr {
	if i := slices.IndexFunc(list, func(x UsedAddr) bool { return x.Addr == u.Addr }); i >= 0 {
		if !u.At.After(list[i].At) {
			return list
		}
		list = slices.Delete(list, i, i+1)
	}
	i, _ := slices.BinarySearchFunc(list, u, func(x, y UsedAddr) int {
		if c := y.At.Compare(x.At); c != 0 {
			return c
		}
		return strings.Compare(x.Addr, y.Addr)
	})
	list = slices.Insert(list, i, u)
	if len(list) > MaxRecentAddrs {
		list = list[:MaxRecentAddrs]
	}
	return list
}

// recentByID returns the recent addresses folded, by token.
func (f *usageFold) recentByID() map[domain.TokenID][]UsedAddr {
	out := make(map[domain.TokenID][]UsedAddr, len(f.out))
	for i, u := range f.out {
		if len(f.recent[i]) > 0 {
			out[u.TokenID] = f.recent[i]
		}
	}
	return out
}

// hourRows returns the folded hourly counts in (token id, hour) order,
// the order the upsert locks the rows in.
func (f *usageFold) hourRows() []HourlyUsage {
	out := make([]HourlyUsage, 0, len(f.hours))
	for k, n := range f.hours {
		out = append(out, HourlyUsage{TokenID: k.id, Hour: time.Unix(k.hour, 0).UTC(), Count: min(n, math.MaxInt64)})
	}
	slices.SortFunc(out, func(a, b HourlyUsage) int {
		if c := bytes.Compare(a.TokenID[:], b.TokenID[:]); c != 0 {
			return c
		}
		return a.Hour.Compare(b.Hour)
	})
	return out
}

func saturatingAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

// usageArrays holds folded usage one array per column, for unnest.
type usageArrays struct {
	ids             []pgtype.UUID
	lastAt, firstAt []time.Time
	count           []int64
	addr            []pgtype.Text
	// recent are JSON arrays of UsedAddr; nil (SQL NULL) for a token
	// whose uses in the batch recorded no address.
	recent [][]byte
}

// usageColumns lays out rows, with the recent addresses the fold kept
// for them (by the token's index in the fold, found through f).
func usageColumns(rows []Usage, recent map[domain.TokenID][]UsedAddr) usageArrays {
	c := usageArrays{
		ids:     make([]pgtype.UUID, len(rows)),
		lastAt:  make([]time.Time, len(rows)),
		firstAt: make([]time.Time, len(rows)),
		count:   make([]int64, len(rows)),
		addr:    make([]pgtype.Text, len(rows)),
		recent:  make([][]byte, len(rows)),
	}
	for i, r := range rows {
		c.ids[i] = uuidArg(r.TokenID)
		c.lastAt[i] = r.LastAt
		c.firstAt[i] = r.FirstAt
		c.count[i] = int64(r.Count)
		c.addr[i] = textArg(r.ClientAddr)
		if list := recent[r.TokenID]; len(list) > 0 {
			// Marshalling strings and times cannot fail.
			c.recent[i], _ = json.Marshal(list)
		}
	}
	return c
}

// hourArrays holds hourly counts one array per column, for unnest.
type hourArrays struct {
	ids   []pgtype.UUID
	hours []time.Time
	count []int64
}

func hourColumns(rows []HourlyUsage) hourArrays {
	c := hourArrays{
		ids:   make([]pgtype.UUID, len(rows)),
		hours: make([]time.Time, len(rows)),
		count: make([]int64, len(rows)),
	}
	for i, r := range rows {
		c.ids[i] = uuidArg(r.TokenID)
		c.hours[i] = r.Hour
		c.count[i] = int64(r.Count)
	}
	return c
}

// SkipAgedOutUsage records that the usage events of projection name below
// firstRetained will never be applied because the usage stream no longer
// holds them (they outlived its retention before being projected): if the
// checkpoint is below firstRetained-1 it is set to firstRetained-1, and the
// number of sequences so given up is returned. Call it only with the usage
// stream's first sequence as read from the stream: events given up on are
// lost to the projection.
func (s *ReadModel) SkipAgedOutUsage(ctx context.Context, name string, firstRetained uint64) (skipped uint64, err error) {
	if firstRetained <= 1 {
		return 0, nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("skip aged-out usage of projection %q: %w", name, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var cp int64
	b := &pgx.Batch{}
	b.Queue(insertCheckpointSQL, name)
	b.Queue(lockCheckpointSQL, name).QueryRow(func(row pgx.Row) error { return row.Scan(&cp) })
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("skip aged-out usage of projection %q: lock checkpoint: %w", name, err)
	}
	target := firstRetained - 1
	if uint64(cp) >= target {
		return 0, nil
	}
	if _, err := tx.Exec(ctx, saveCheckpointSQL, name, int64(target)); err != nil {
		return 0, fmt.Errorf("skip aged-out usage of projection %q: %w", name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("skip aged-out usage of projection %q: commit: %w", name, err)
	}
	return target - uint64(cp), nil
}

// GetUsage returns the usage row of token id, whether or not the tokens
// table holds the token. The error wraps domain.ErrNotFound if the usage
// projection has no use of it.
func (s *ReadModel) GetUsage(ctx context.Context, id domain.TokenID) (Usage, error) {
	var (
		u           Usage
		count       int64
		first       pgtype.Timestamptz
		addr        pgtype.Text
		tokenIDScan pgtype.UUID
	)
	err := s.pool.QueryRow(ctx, `SELECT token_id, last_used_at, use_count, first_used_at, last_client_addr FROM `+UsageTable+` WHERE token_id = $1`,
		uuidArg(id)).Scan(&tokenIDScan, &u.LastAt, &count, &first, &addr)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Usage{}, fmt.Errorf("get usage of token %s: %w", id, domain.ErrNotFound)
	case err != nil:
		return Usage{}, fmt.Errorf("get usage of token %s: %w", id, err)
	}
	u.TokenID = domain.TokenID(tokenIDScan.Bytes)
	u.LastAt = u.LastAt.UTC()
	u.Count = uint64(count)
	u.FirstAt = fromTimestamptz(first)
	u.ClientAddr = addr.String
	return u, nil
}

// TokenLifetime is what the read model holds of a token's lifetime: enough
// to tell, without loading its history, whether a use could slide it.
type TokenLifetime struct {
	Kind domain.TokenKind
	// ExpiresAt is the current expiry; zero means none.
	ExpiresAt time.Time
	// AbsoluteExpiresAt and IdleTimeout are a session's cap and idle
	// timeout; zero for api tokens.
	AbsoluteExpiresAt time.Time
	IdleTimeout       time.Duration
	// Revoked reports a revocation of the token itself or of all tokens of
	// its owner.
	Revoked bool
	// Rotated reports that the token was replaced by a rotation.
	Rotated bool
	// LastSeq is the lifecycle-stream sequence of the token's last event
	// the read model applied: the version this lifetime is as of.
	LastSeq uint64
}

// TokenLifetimes returns the lifetimes of those of ids the tokens table
// holds, with one query. Ids it does not hold (not projected yet, or never
// issued) are absent from the map.
func (s *ReadModel) TokenLifetimes(ctx context.Context, ids []domain.TokenID) (map[domain.TokenID]TokenLifetime, error) {
	out := make(map[domain.TokenID]TokenLifetime, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]pgtype.UUID, len(ids))
	for i, id := range ids {
		args[i] = uuidArg(id)
	}
	query := fmt.Sprintf(`SELECT t.id, t.kind, t.expires_at, t.absolute_expires_at, t.idle_timeout_seconds, %s, t.rotated_to IS NOT NULL, t.last_seq
FROM %s AS t LEFT JOIN %s AS o ON o.owner = t.owner
WHERE t.id = ANY($1::uuid[])`, revokedSQL, s.live.tokens.Sanitize(), s.live.owners.Sanitize())
	rows, err := s.pool.Query(ctx, query, args)
	if err != nil {
		return nil, fmt.Errorf("token lifetimes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id                pgtype.UUID
			kind              string
			expires, absolute pgtype.Timestamptz
			idle              pgtype.Int8
			lastSeq           int64
			lt                TokenLifetime
		)
		if err := rows.Scan(&id, &kind, &expires, &absolute, &idle, &lt.Revoked, &lt.Rotated, &lastSeq); err != nil {
			return nil, fmt.Errorf("token lifetimes: %w", err)
		}
		lt.Kind = domain.TokenKind(kind)
		lt.ExpiresAt = fromTimestamptz(expires)
		lt.AbsoluteExpiresAt = fromTimestamptz(absolute)
		lt.IdleTimeout = time.Duration(idle.Int64) * time.Second
		lt.LastSeq = uint64(lastSeq)
		out[domain.TokenID(id.Bytes)] = lt
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("token lifetimes: %w", err)
	}
	return out, nil
}
