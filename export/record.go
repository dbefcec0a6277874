package export

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// Stream names the stream an exported event comes from.
type Stream string

// The streams of an export.
const (
	// Lifecycle is the lifecycle stream: token and owner events.
	Lifecycle Stream = "lifecycle"
	// Usage is the usage stream: usage batches and token.used events.
	Usage Stream = "usage"
)

// Record is one exported event, flattened into the Columns. Fields that do
// not apply to the event's type, or that its payload leaves unset, are
// zero; a zero time or number is written as null (JSONL) or an empty field
// (CSV), a zero string as "". For token.issued.v1 and
// token.expiry_set.v1 a zero ExpiresAt means the token does not expire.
// A Record never holds a secret nor its hash.
type Record struct {
	// Sequence is the event's sequence in Stream.
	Sequence uint64
	Stream   Stream
	EventID  string
	// Time is the event's Envelope.Time, microsecond precision, UTC.
	Time time.Time
	Type domain.EventType
	// TokenID is empty for owner events, but for owner.family_revoked.v1,
	// where it is the token whose rotated-out secret was presented (the
	// family is that token's).
	TokenID string
	// Owner is the token's owner (resolved from its token.issued event for
	// the other token events), or the owner of an owner event.
	Owner         domain.OwnerID
	Actor         string
	CorrelationID string
	// Reason is the revocation reason (token.revoked.v1,
	// owner.tokens_revoked.v1, owner.family_revoked.v1) or the expiry reason
	// (token.expiry_set.v1: set, rotated, session_extended).
	Reason string
	// Name, Scopes (space-separated), Kind, IdleTimeout (seconds),
	// AbsoluteExpiresAt and RotatedFrom come from token.issued.v1.
	Name              string
	Scopes            string
	Kind              string
	ExpiresAt         time.Time
	IdleTimeout       int64
	AbsoluteExpiresAt time.Time
	RotatedFrom       string
	// RotatedTo comes from token.expiry_set.v1 with reason rotated.
	RotatedTo string
	// RevokedBefore and Until come from owner.tokens_revoked.v1.
	RevokedBefore time.Time
	Until         time.Time
	// Count, FirstAt, LastAt and ClientAddr come from token.used.v1, or
	// from one token's use in usage.batch.v1 (one record per token);
	// ClientAddr also from owner.family_revoked.v1 (where the rotated-out
	// secret was presented).
	Count      uint64
	FirstAt    time.Time
	LastAt     time.Time
	ClientAddr string
}

// Columns are the members of a JSONL record and the columns of a CSV
// export, in order. The last, prev_hash, is the hash chain's value before
// the record (see the package documentation); it is not a Record field.
// Columns must not be modified.
var Columns = []string{
	"seq", "stream", "event_id", "time", "type", "token_id", "owner", "actor", "correlation_id", "reason",
	"name", "scopes", "kind", "expires_at", "idle_timeout", "absolute_expires_at", "rotated_from", "rotated_to",
	"revoked_before", "until", "count", "first_at", "last_at", "client_addr", "prev_hash",
}

// Column indexes, in the order of Columns.
const (
	colSeq = iota
	colStream
	colEventID
	colTime
	colType
	colTokenID
	colOwner
	colActor
	colCorrelationID
	colReason
	colName
	colScopes
	colKind
	colExpiresAt
	colIdleTimeout
	colAbsoluteExpiresAt
	colRotatedFrom
	colRotatedTo
	colRevokedBefore
	colUntil
	colCount
	colFirstAt
	colLastAt
	colClientAddr
	colPrevHash
	numColumns
)

// columnKind is how a column's value is written.
type columnKind uint8

const (
	kindText columnKind = iota // always a string
	kindUint                   // a number, null when zero
	kindTime                   // a time string, null when zero
	kindHash                   // 64 lowercase hex digits
)

var columnKinds = [numColumns]columnKind{
	colSeq: kindUint, colTime: kindTime, colExpiresAt: kindTime, colIdleTimeout: kindUint,
	colAbsoluteExpiresAt: kindTime, colRevokedBefore: kindTime, colUntil: kindTime, colCount: kindUint,
	colFirstAt: kindTime, colLastAt: kindTime, colPrevHash: kindHash,
}

// RecordOf flattens event e of stream s, owned by owner. The secret's hash
// of a token.issued event is left out.
func RecordOf(e domain.Envelope, s Stream, owner domain.OwnerID) Record {
	r := Record{
		Sequence: e.Sequence, Stream: s, EventID: e.ID.String(), Time: e.Time, Type: e.Type, Owner: owner,
		Actor: e.Actor, CorrelationID: e.CorrelationID,
	}
	if e.AggregateKind == domain.AggregateToken {
		r.TokenID = e.AggregateID
	}
	switch d := e.Data.(type) {
	case domain.TokenIssued:
		r.Name, r.Scopes, r.Kind = d.Name, strings.Join(d.Scopes, " "), string(d.Kind)
		r.ExpiresAt, r.AbsoluteExpiresAt = deref(d.ExpiresAt), deref(d.AbsoluteExpiresAt)
		r.IdleTimeout = int64(d.IdleTimeout)
		if d.RotatedFrom != nil {
			r.RotatedFrom = d.RotatedFrom.String()
		}
	case domain.TokenExpirySet:
		r.ExpiresAt, r.Reason = deref(d.ExpiresAt), string(d.Reason)
		if d.RotatedTo != nil {
			r.RotatedTo = d.RotatedTo.String()
		}
	case domain.TokenRevoked:
		r.Reason = d.Reason
	case domain.OwnerTokensRevoked:
		r.RevokedBefore, r.Until, r.Reason = d.RevokedBefore, deref(d.Until), d.Reason
	case domain.OwnerFamilyRevoked:
		r.Reason = d.Reason
		if d.Reuse != nil {
			r.TokenID, r.ClientAddr = d.Reuse.Token.String(), d.Reuse.ClientAddr
		}
	case domain.TokenUsed:
		r.Count, r.FirstAt, r.LastAt, r.ClientAddr = d.Count, d.FirstAt, d.LastAt, d.ClientAddr
	case domain.OwnerWebhookDisabled:
		r.Reason = d.Reason
	}
	return r
}

// UsageRecordOf is the record of one token's use in usage batch e (of
// the usage stream): the batch's sequence, event id, time, type and actor,
// the token and its owner, and the use's count, times and client address.
// A batch has one record per token; they share its sequence and event id.
func UsageRecordOf(e domain.Envelope, id domain.TokenID, u domain.TokenUsed, owner domain.OwnerID) Record {
	return Record{
		Sequence: e.Sequence, Stream: Usage, EventID: e.ID.String(), Time: e.Time, Type: e.Type,
		TokenID: id.String(), Owner: owner, Actor: e.Actor, CorrelationID: e.CorrelationID,
		Count: u.Count, FirstAt: u.FirstAt, LastAt: u.LastAt, ClientAddr: u.ClientAddr,
	}
}

// usageType reports whether events of type t live in the usage stream.
func usageType(t domain.EventType) bool {
	return t == domain.TypeTokenUsed || t == domain.TypeUsageBatch
}

// follows reports whether r may come after the previous record of its
// stream, of sequence lastSeq and event id lastID: a later sequence, or
// the next token of the same usage batch.
func (r *Record) follows(lastSeq uint64, lastID string) bool {
	return r.Sequence > lastSeq ||
		(r.Sequence == lastSeq && r.Type == domain.TypeUsageBatch && r.EventID == lastID)
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// textField returns the value of a text column of r.
func (r *Record) textField(col int) string {
	switch col {
	case colStream:
		return string(r.Stream)
	case colEventID:
		return r.EventID
	case colType:
		return string(r.Type)
	case colTokenID:
		return r.TokenID
	case colOwner:
		return string(r.Owner)
	case colActor:
		return r.Actor
	case colCorrelationID:
		return r.CorrelationID
	case colReason:
		return r.Reason
	case colName:
		return r.Name
	case colScopes:
		return r.Scopes
	case colKind:
		return r.Kind
	case colRotatedFrom:
		return r.RotatedFrom
	case colRotatedTo:
		return r.RotatedTo
	case colClientAddr:
		return r.ClientAddr
	}
	return ""
}

// setText sets a text column of r.
func (r *Record) setText(col int, s string) {
	switch col {
	case colStream:
		r.Stream = Stream(s)
	case colEventID:
		r.EventID = s
	case colType:
		r.Type = domain.EventType(s)
	case colTokenID:
		r.TokenID = s
	case colOwner:
		r.Owner = domain.OwnerID(s)
	case colActor:
		r.Actor = s
	case colCorrelationID:
		r.CorrelationID = s
	case colReason:
		r.Reason = s
	case colName:
		r.Name = s
	case colScopes:
		r.Scopes = s
	case colKind:
		r.Kind = s
	case colRotatedFrom:
		r.RotatedFrom = s
	case colRotatedTo:
		r.RotatedTo = s
	case colClientAddr:
		r.ClientAddr = s
	}
}

// uintField returns the value of a number column of r.
func (r *Record) uintField(col int) uint64 {
	switch col {
	case colSeq:
		return r.Sequence
	case colIdleTimeout:
		return uint64(r.IdleTimeout)
	case colCount:
		return r.Count
	}
	return 0
}

func (r *Record) setUint(col int, n uint64) error {
	switch col {
	case colSeq:
		r.Sequence = n
	case colIdleTimeout:
		if n > 1<<62 {
			return fmt.Errorf("idle_timeout %d out of range", n)
		}
		r.IdleTimeout = int64(n)
	case colCount:
		r.Count = n
	}
	return nil
}

// timeField returns the value of a time column of r.
func (r *Record) timeField(col int) time.Time {
	switch col {
	case colTime:
		return r.Time
	case colExpiresAt:
		return r.ExpiresAt
	case colAbsoluteExpiresAt:
		return r.AbsoluteExpiresAt
	case colRevokedBefore:
		return r.RevokedBefore
	case colUntil:
		return r.Until
	case colFirstAt:
		return r.FirstAt
	case colLastAt:
		return r.LastAt
	}
	return time.Time{}
}

func (r *Record) setTime(col int, t time.Time) {
	switch col {
	case colTime:
		r.Time = t
	case colExpiresAt:
		r.ExpiresAt = t
	case colAbsoluteExpiresAt:
		r.AbsoluteExpiresAt = t
	case colRevokedBefore:
		r.RevokedBefore = t
	case colUntil:
		r.Until = t
	case colFirstAt:
		r.FirstAt = t
	case colLastAt:
		r.LastAt = t
	}
}

// timeLayout is how every time of an export is written: RFC 3339 in UTC
// with exactly six fraction digits, 27 bytes.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// formatTime renders t in timeLayout.
func formatTime(t time.Time) string { return string(appendTime(nil, t)) }

// appendTime appends t in timeLayout. It writes the digits itself, an
// export writes several times per record; years AppendFormat would write
// in another width are left to it.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, timeLayout)
	}
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits appends n, which is not negative, in exactly width digits.
func appendDigits(b []byte, n, width int) []byte {
	var buf [8]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, buf[:width]...)
}

var errTimeLayout = errors.New("not a time of the form 2006-01-02T15:04:05.000000Z")

// parseTime parses exactly the form appendTime writes, without the
// generality (and cost) of time.Parse.
func parseTime(b []byte) (time.Time, error) {
	if len(b) != 27 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[19] != '.' || b[26] != 'Z' {
		return time.Time{}, errTimeLayout
	}
	var v [7]int
	for i, span := range [7][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}, {20, 26}} {
		n := 0
		for _, c := range b[span[0]:span[1]] {
			if c < '0' || c > '9' {
				return time.Time{}, errTimeLayout
			}
			n = n*10 + int(c-'0')
		}
		v[i] = n
	}
	t := time.Date(v[0], time.Month(v[1]), v[2], v[3], v[4], v[5], v[6]*1000, time.UTC)
	// time.Date normalizes out-of-range fields (February 30th); such a
	// string is not one appendTime writes.
	if t.Year() != v[0] || int(t.Month()) != v[1] || t.Day() != v[2] || t.Hour() != v[3] || t.Minute() != v[4] || t.Second() != v[5] {
		return time.Time{}, errTimeLayout
	}
	return t, nil
}
