package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/domain"
)

// Endpoint is a registered webhook endpoint, without its secret.
type Endpoint struct {
	ID  string
	URL string
	// Owner is the owner whose events the endpoint receives; nil means
	// every owner's.
	Owner *domain.OwnerID
	// Events are the event types it receives; empty means all.
	Events    []EventType
	CreatedBy string
	CreatedAt time.Time
	// DisabledAt is when the endpoint was disabled because a delivery to
	// it failed for the whole retry period (zero: enabled), and
	// DisabledReason why.
	DisabledAt     time.Time
	DisabledReason string
}

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

// Delivery is one event to one endpoint, and how its delivery went.
type Delivery struct {
	ID         int64
	EndpointID string
	// EventID is the event's id: the webhook-id header of every attempt.
	EventID  string
	Sequence uint64
	Type     EventType
	// Status is StatusPending, StatusDelivered or StatusFailed.
	Status        string
	Attempts      int
	CreatedAt     time.Time
	LastAttemptAt time.Time
	NextAttemptAt time.Time
	DoneAt        time.Time
	// LastStatus is the HTTP status of the last attempt (0: no answer),
	// LastError what went wrong with it.
	LastStatus int
	LastError  string
}

// store is the endpoints and deliveries in PostgreSQL.
type store struct{ pool *pgxpool.Pool }

const endpointColumns = `id, url, owner, events, created_by, created_at, disabled_at, disabled_reason`

func scanEndpoint(r pgx.CollectableRow) (Endpoint, error) {
	var e Endpoint
	var owner, reason *string
	var events []string
	var disabled *time.Time
	if err := r.Scan(&e.ID, &e.URL, &owner, &events, &e.CreatedBy, &e.CreatedAt, &disabled, &reason); err != nil {
		return Endpoint{}, err
	}
	if owner != nil {
		o := domain.OwnerID(*owner)
		e.Owner = &o
	}
	for _, t := range events {
		e.Events = append(e.Events, EventType(t))
	}
	if disabled != nil {
		e.DisabledAt = *disabled
	}
	if reason != nil {
		e.DisabledReason = *reason
	}
	e.CreatedAt = e.CreatedAt.UTC()
	e.DisabledAt = e.DisabledAt.UTC()
	return e, nil
}

func (s store) insertEndpoint(ctx context.Context, e Endpoint, secret Secret, afterSeq uint64) error {
	var owner *string
	if e.Owner != nil {
		o := string(*e.Owner)
		owner = &o
	}
	events := make([]string, len(e.Events))
	for i, t := range e.Events {
		events[i] = string(t)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO webhook_endpoints (id, url, owner, events, secret, created_by, created_at, created_seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, e.ID, e.URL, owner, events, secret.key, e.CreatedBy, e.CreatedAt, int64(afterSeq))
	if err != nil {
		return fmt.Errorf("register webhook endpoint: %w", err)
	}
	return nil
}

// endpoints lists the endpoints of owner (nil: all), oldest first.
func (s store) endpoints(ctx context.Context, owner *domain.OwnerID) ([]Endpoint, error) {
	q := `SELECT ` + endpointColumns + ` FROM webhook_endpoints ORDER BY id`
	args := []any{}
	if owner != nil {
		q = `SELECT ` + endpointColumns + ` FROM webhook_endpoints WHERE owner = $1 ORDER BY id`
		args = append(args, string(*owner))
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanEndpoint)
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	return out, nil
}

func (s store) endpoint(ctx context.Context, id string) (Endpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1`, id)
	if err != nil {
		return Endpoint{}, fmt.Errorf("read webhook endpoint: %w", err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanEndpoint)
	if errors.Is(err, pgx.ErrNoRows) {
		return Endpoint{}, fmt.Errorf("webhook endpoint %s: %w", id, domain.ErrNotFound)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("read webhook endpoint: %w", err)
	}
	return e, nil
}

func (s store) deleteEndpoint(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM webhook_endpoints WHERE id = $1`, id); err != nil {
		return fmt.Errorf("remove webhook endpoint: %w", err)
	}
	return nil
}

// deliveries lists the deliveries of an endpoint, newest first, at most
// limit, before the delivery id before (0: from the newest).
func (s store) deliveries(ctx context.Context, endpoint string, before int64, limit int) ([]Delivery, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.pool.Query(ctx, `SELECT id, endpoint_id, event_id, seq, type, status, attempts, created_at,
  last_attempt_at, next_attempt_at, done_at, last_status, last_error
FROM webhook_deliveries WHERE endpoint_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, endpoint, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) {
		var d Delivery
		var seq int64
		var last, done *time.Time
		var status *int32
		var lastErr *string
		if err := r.Scan(&d.ID, &d.EndpointID, &d.EventID, &seq, &d.Type, &d.Status, &d.Attempts, &d.CreatedAt,
			&last, &d.NextAttemptAt, &done, &status, &lastErr); err != nil {
			return Delivery{}, err
		}
		d.Sequence = uint64(seq)
		if last != nil {
			d.LastAttemptAt = last.UTC()
		}
		if done != nil {
			d.DoneAt = done.UTC()
		}
		if status != nil {
			d.LastStatus = int(*status)
		}
		if lastErr != nil {
			d.LastError = *lastErr
		}
		d.CreatedAt, d.NextAttemptAt = d.CreatedAt.UTC(), d.NextAttemptAt.UTC()
		return d, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	return out, nil
}

// fanOutSQL creates the deliveries of a batch of events, one per event
// and endpoint that wants it: enabled, registered before the event, of the
// event's owner or every owner, subscribed to its type or to all. A
// delivery made before (the event redelivered by JetStream) is left as it
// is.
const fanOutSQL = `INSERT INTO webhook_deliveries (endpoint_id, event_id, seq, order_key, type, body, created_at, next_attempt_at)
SELECT e.id, v.event_id, v.seq, v.order_key, v.type, v.body, $1, $1
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::bytea[], $7::text[]) AS v (event_id, seq, order_key, type, body, owner)
JOIN webhook_endpoints e ON e.disabled_at IS NULL AND e.created_seq < v.seq AND (e.owner IS NULL OR e.owner = v.owner)
  AND (e.events = '{}' OR v.type = ANY (e.events))
ON CONFLICT (endpoint_id, event_id) DO NOTHING`

// fanOut stores the deliveries of rows in one statement, and the poison
// messages with them in one transaction when there are any.
func (s store) fanOut(ctx context.Context, rows []fanRow, poison []poisonRow, now time.Time) error {
	n := len(rows)
	ids, seqs, keys, types, bodies, owners := make([]string, n), make([]int64, n), make([]string, n), make([]string, n), make([][]byte, n), make([]string, n)
	for i, r := range rows {
		ids[i], seqs[i], keys[i], types[i], bodies[i], owners[i] = r.eventID, int64(r.seq), r.orderKey, string(r.typ), r.body, string(r.owner)
	}
	args := []any{now, ids, seqs, keys, types, bodies, owners}
	if len(poison) == 0 {
		if _, err := s.pool.Exec(ctx, fanOutSQL, args...); err != nil {
			return fmt.Errorf("fan out %d events: %w", n, err)
		}
		return nil
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, p := range poison {
			md, err := json.Marshal(p.metadata)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO webhook_poison (msg_id, payload, metadata) VALUES ($1, $2, $3)`, p.msgID, p.payload, md); err != nil {
				return fmt.Errorf("keep an unreadable event: %w", err)
			}
		}
		if n == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, fanOutSQL, args...); err != nil {
			return fmt.Errorf("fan out %d events: %w", n, err)
		}
		return nil
	})
}

// firstEndpointSeq returns the stream sequence the oldest registered
// endpoint was registered at; ok is false when there is none.
func (s store) firstEndpointSeq(ctx context.Context) (seq uint64, ok bool, err error) {
	var first *int64
	if err := s.pool.QueryRow(ctx, `SELECT min(created_seq) FROM webhook_endpoints`).Scan(&first); err != nil {
		return 0, false, fmt.Errorf("read the webhook endpoints: %w", err)
	}
	if first == nil {
		return 0, false, nil
	}
	return uint64(*first), true, nil
}

// head is the next delivery of one endpoint and order key, due now.
type head struct {
	id         int64
	endpointID string
	orderKey   string
	eventID    string
	body       []byte
	attempts   int
	firstAt    time.Time
	url        string
	secret     Secret
}

// headsSQL selects, per endpoint and order key, the pending delivery with
// the lowest sequence, if it is due: a later event of a token is never
// attempted while an earlier one is pending. Only events up to $3 are
// considered, the sequence up to which every event is fanned out: an
// earlier event of the token cannot be missing from the table.
const headsSQL = `SELECT d.id, d.endpoint_id, d.order_key, d.event_id, d.body, d.attempts, d.first_attempt_at, e.url, e.secret
FROM (SELECT DISTINCT ON (endpoint_id, order_key) id, endpoint_id, order_key, event_id, body, attempts, first_attempt_at, next_attempt_at
      FROM webhook_deliveries WHERE status = 'pending' AND seq <= $3 ORDER BY endpoint_id, order_key, seq) d
JOIN webhook_endpoints e ON e.id = d.endpoint_id
WHERE d.next_attempt_at <= $1 AND e.disabled_at IS NULL
ORDER BY d.next_attempt_at
LIMIT $2`

func (s store) heads(ctx context.Context, now time.Time, fanned uint64, limit int) ([]head, error) {
	rows, err := s.pool.Query(ctx, headsSQL, now, limit, int64(fanned))
	if err != nil {
		return nil, fmt.Errorf("read the deliveries due: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (head, error) {
		var h head
		var first *time.Time
		if err := r.Scan(&h.id, &h.endpointID, &h.orderKey, &h.eventID, &h.body, &h.attempts, &first, &h.url, &h.secret.key); err != nil {
			return head{}, err
		}
		if first != nil {
			h.firstAt = *first
		}
		return h, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the deliveries due: %w", err)
	}
	return out, nil
}

// attempt is the outcome of one attempt.
type attempt struct {
	at     time.Time
	status int // 0: no answer
	err    string
	ok     bool
	// next is when to try again; zero with !ok means give up.
	next time.Time
}

// record stores an attempt of delivery h, and, when it gave up, disables
// the endpoint with reason: one statement, so one round trip and all or
// nothing.
func (s store) record(ctx context.Context, h head, a attempt, disableReason string) error {
	var status *int
	if a.status != 0 {
		status = &a.status
	}
	var errText *string
	if a.err != "" {
		errText = &a.err
	}
	const attemptCTE = `WITH a AS (INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING)`
	var err error
	switch {
	case a.ok:
		_, err = s.pool.Exec(ctx, attemptCTE+`
UPDATE webhook_deliveries SET status = 'delivered', attempts = $2, first_attempt_at = COALESCE(first_attempt_at, $3),
  last_attempt_at = $3, last_status = $4, last_error = $5, done_at = $3 WHERE id = $1`, h.id, h.attempts+1, a.at, status, errText)
	case a.next.IsZero():
		_, err = s.pool.Exec(ctx, attemptCTE+`,
e AS (UPDATE webhook_endpoints SET disabled_at = $3, disabled_reason = $7 WHERE id = $6 AND disabled_at IS NULL)
UPDATE webhook_deliveries SET status = 'failed', attempts = $2, first_attempt_at = COALESCE(first_attempt_at, $3),
  last_attempt_at = $3, last_status = $4, last_error = $5, done_at = $3 WHERE id = $1`, h.id, h.attempts+1, a.at, status, errText, h.endpointID, disableReason)
	default:
		_, err = s.pool.Exec(ctx, attemptCTE+`
UPDATE webhook_deliveries SET attempts = $2, first_attempt_at = COALESCE(first_attempt_at, $3),
  last_attempt_at = $3, last_status = $4, last_error = $5, next_attempt_at = $6 WHERE id = $1`, h.id, h.attempts+1, a.at, status, errText, a.next)
	}
	if err != nil {
		return fmt.Errorf("record delivery attempt: %w", err)
	}
	return nil
}

// recordAllSQL records attempts that delivered or will be tried again:
// one row of the arrays per attempt; $7 is the next attempt's instant,
// null for a delivered one.
const recordAllSQL = `WITH v AS (
  SELECT * FROM unnest($1::bigint[], $2::int[], $3::timestamptz[], $4::int[], $5::text[], $6::bool[], $7::timestamptz[])
    AS v (id, attempt, at, status, error, ok, next)),
a AS (INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error)
  SELECT id, attempt, at, status, error FROM v ON CONFLICT DO NOTHING)
UPDATE webhook_deliveries d SET
  status = CASE WHEN v.ok THEN 'delivered' ELSE d.status END,
  attempts = v.attempt, first_attempt_at = COALESCE(d.first_attempt_at, v.at), last_attempt_at = v.at,
  last_status = v.status, last_error = v.error,
  done_at = CASE WHEN v.ok THEN v.at ELSE d.done_at END,
  next_attempt_at = COALESCE(v.next, d.next_attempt_at)
FROM v WHERE d.id = v.id`

// recordAll stores, in one statement, attempts that delivered or are to be
// tried again (none that gives up: record does those).
func (s store) recordAll(ctx context.Context, outs []outcome) error {
	if len(outs) == 0 {
		return nil
	}
	n := len(outs)
	ids, nums, ats := make([]int64, n), make([]int32, n), make([]time.Time, n)
	statuses, errs, oks, next := make([]*int32, n), make([]*string, n), make([]bool, n), make([]*time.Time, n)
	for i, o := range outs {
		ids[i], nums[i], ats[i], oks[i] = o.h.id, int32(o.h.attempts+1), o.a.at, o.a.ok
		if o.a.status != 0 {
			st := int32(o.a.status)
			statuses[i] = &st
		}
		if o.a.err != "" {
			e := o.a.err
			errs[i] = &e
		}
		if !o.a.ok {
			t := o.a.next
			next[i] = &t
		}
	}
	if _, err := s.pool.Exec(ctx, recordAllSQL, ids, nums, ats, statuses, errs, oks, next); err != nil {
		return fmt.Errorf("record %d delivery attempts: %w", n, err)
	}
	return nil
}
