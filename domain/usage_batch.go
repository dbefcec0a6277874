package domain

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"
	"time"
)

// TypeUsageBatch is the event a validator records once per flush: the use
// of every token it saw used in the flush interval (see UsageBatch).
const TypeUsageBatch EventType = "usage.batch.v1"

// AggregateValidator events are recorded by a validator about many tokens
// at once; their aggregate id is the validator's actor (Meta.Actor).
const AggregateValidator AggregateKind = "validator"

// TokenUse is the use of one token within a usage batch: Count uses
// between FirstAt and LastAt, the latest from ClientAddr (empty when it
// recorded none).
type TokenUse struct {
	Token      TokenID   `json:"token"`
	Count      uint64    `json:"count"`
	FirstAt    time.Time `json:"first_at"`
	LastAt     time.Time `json:"last_at"`
	ClientAddr string    `json:"client_addr,omitempty"`
}

// Used returns u as the payload a token.used event of u.Token would carry.
func (u TokenUse) Used() TokenUsed {
	return TokenUsed{Count: u.Count, FirstAt: u.FirstAt, LastAt: u.LastAt, ClientAddr: u.ClientAddr}
}

// UsageBatch records the use of many tokens in one event: what one
// validator counted in one flush interval, one entry per token (no token
// twice). It replaces one token.used event per token and flush; readers
// that need per-token records expand it with Uses. Build it with
// RecordUsage. Its stored form is binary (see MarshalUsageBatch), not JSON.
type UsageBatch struct {
	Uses []TokenUse `json:"uses"`
}

// EventType implements Event.
func (UsageBatch) EventType() EventType { return TypeUsageBatch }

// Uses yields the per-token uses an event records: the one use of a
// token.used event, every use of a usage batch, nothing for other events.
// It is how every reader of usage treats the two forms alike.
func Uses(e Envelope) iter.Seq2[TokenID, TokenUsed] {
	return func(yield func(TokenID, TokenUsed) bool) {
		if d, ok := PayloadAs[TokenUsed](e.Data); ok {
			if id, ok := e.TokenID(); ok {
				yield(id, d)
			}
			return
		}
		if d, ok := PayloadAs[UsageBatch](e.Data); ok {
			for _, u := range d.Uses {
				if !yield(u.Token, u.Used()) {
					return
				}
			}
		}
	}
}

// Limits of a usage batch's stored form.
const (
	// DefaultUsageBatchBytes is the encoded size RecordUsage keeps each
	// batch under unless told otherwise: well under the 1 MiB a NATS
	// server accepts by default.
	DefaultUsageBatchBytes = 256 << 10
	// MinUsageBatchBytes is the least size limit RecordUsage accepts: room
	// for the largest header and the largest entry.
	MinUsageBatchBytes = 1 << 10
	// MaxUsageBatchUses is the most token uses RecordUsage puts in one
	// batch, whatever the size limit.
	MaxUsageBatchUses = 16384
)

// RecordUsage decides the usage batches of one flush: uses (one entry per
// token, count at least one, first use not after the last, client address
// valid text of at most MaxClientAddrLen bytes) recorded at now by m. A
// flush whose encoding would be larger than maxBytes (0 means
// DefaultUsageBatchBytes), or that holds more than MaxUsageBatchUses
// tokens, is split into several batches, in the order of uses. Each batch
// has an event id of its own, which is also its deduplication id: store
// the returned events as they are, again if a store failed, and the
// stream keeps each once. Errors wrap ErrInvalidArgument.
func RecordUsage(uses []TokenUse, m Meta, now time.Time, maxBytes int) ([]Envelope, error) {
	if maxBytes == 0 {
		maxBytes = DefaultUsageBatchBytes
	}
	switch {
	case len(uses) == 0:
		return nil, fmt.Errorf("%w: a usage batch needs at least one use", ErrInvalidArgument)
	case maxBytes < MinUsageBatchBytes:
		return nil, fmt.Errorf("%w: usage batch size limit %d is below %d bytes", ErrInvalidArgument, maxBytes, MinUsageBatchBytes)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := checkNow(now); err != nil {
		return nil, err
	}
	now = NormalizeTime(now)
	seen := make(map[TokenID]struct{}, len(uses))
	norm := make([]TokenUse, len(uses))
	for i, u := range uses {
		if err := u.validate(); err != nil {
			return nil, fmt.Errorf("use %d (token %s): %w", i, u.Token, err)
		}
		if _, dup := seen[u.Token]; dup {
			return nil, fmt.Errorf("%w: token %s appears twice in one flush", ErrInvalidArgument, u.Token)
		}
		seen[u.Token] = struct{}{}
		u.FirstAt, u.LastAt = NormalizeTime(u.FirstAt), NormalizeTime(u.LastAt)
		norm[i] = u
	}

	base := now.UnixMicro()
	header := usageBatchHeaderLen(m.Actor, m.CorrelationID, len(norm))
	var out []Envelope
	start, size := 0, header
	cut := func(end int) error {
		e, err := newEnvelope(AggregateValidator, m.Actor, UsageBatch{Uses: norm[start:end:end]}, m, now)
		if err != nil {
			return err
		}
		out = append(out, e)
		start, size = end, header
		return nil
	}
	for i, u := range norm {
		n := usageEntryLen(base, u)
		if i > start && (size+n > maxBytes || i-start == MaxUsageBatchUses) {
			if err := cut(i); err != nil {
				return nil, err
			}
		}
		size += n
	}
	if err := cut(len(norm)); err != nil {
		return nil, err
	}
	return out, nil
}

func (u TokenUse) validate() error {
	switch {
	case u.Token.IsZero():
		return fmt.Errorf("%w: no token id", ErrInvalidArgument)
	case u.Count == 0:
		return fmt.Errorf("%w: use count is zero", ErrInvalidArgument)
	case !validEventTime(u.FirstAt) || !validEventTime(u.LastAt):
		return fmt.Errorf("%w: use time out of range", ErrInvalidArgument)
	case u.LastAt.Before(u.FirstAt):
		return fmt.Errorf("%w: last use before first use", ErrInvalidArgument)
	}
	return validateText("client address", u.ClientAddr, 0, MaxClientAddrLen)
}

// normalize is called for the JSON form (Registry.Unmarshal); the binary
// form checks the same in UnmarshalUsageBatch.
func (b *UsageBatch) normalize() error {
	if len(b.Uses) == 0 {
		return errors.New("a usage batch needs at least one use")
	}
	for i := range b.Uses {
		u := &b.Uses[i]
		if err := u.validate(); err != nil {
			return fmt.Errorf("use %d: %w", i, err)
		}
		u.FirstAt, u.LastAt = NormalizeTime(u.FirstAt), NormalizeTime(u.LastAt)
	}
	return nil
}

// The stored form of a usage batch, version 1. Integers are Go's varints
// (encoding/binary), minimal length; times are Unix microseconds:
//
//	version        1 byte, usageBatchV1
//	event id       16 bytes (ULID)
//	time           varint: the event's time, the base of the use times
//	actor          uvarint length, bytes (also the aggregate id)
//	correlation id uvarint length, bytes
//	uses           uvarint n ≥ 1, then n times:
//	  token id     16 bytes (ULID)
//	  count        uvarint ≥ 1
//	  first use    varint: first use − time
//	  last use     uvarint: last use − first use
//	  client addr  uvarint length, bytes
//
// A JSON event starts with '{', so the first byte tells the two forms
// apart. A later version gets a new version byte; readers keep decoding
// the old ones.
const usageBatchV1 byte = 0x01

// IsUsageBatch reports whether stored event data is in the binary form of
// a usage batch (any version), rather than a JSON event.
func IsUsageBatch(data []byte) bool {
	return len(data) > 0 && data[0] != '{'
}

// MarshalUsageBatch encodes a usage batch event as it is stored. It
// refuses other events, and batches whose type r does not register (at
// the envelope's schema, for AggregateValidator).
func (r *Registry) MarshalUsageBatch(e Envelope) ([]byte, error) {
	if err := r.checkUsageBatch(e.Type, e.AggregateKind, e.Schema); err != nil {
		return nil, fmt.Errorf("marshal event %s: %w", e.ID, err)
	}
	d, ok := e.Data.(UsageBatch)
	switch {
	case !ok:
		return nil, fmt.Errorf("marshal event %s: payload %T is not a usage batch", e.ID, e.Data)
	case e.AggregateID != e.Actor:
		return nil, fmt.Errorf("marshal event %s: a usage batch's aggregate is its actor %q, not %q", e.ID, e.Actor, e.AggregateID)
	case len(d.Uses) == 0:
		return nil, fmt.Errorf("marshal event %s: a usage batch needs at least one use", e.ID)
	}
	base := e.Time.UnixMicro()
	n := usageBatchHeaderLen(e.Actor, e.CorrelationID, len(d.Uses))
	for _, u := range d.Uses {
		n += usageEntryLen(base, u)
	}
	b := make([]byte, 0, n)
	b = append(b, usageBatchV1)
	b = append(b, e.ID[:]...)
	b = binary.AppendVarint(b, base)
	b = appendLenString(b, e.Actor)
	b = appendLenString(b, e.CorrelationID)
	b = binary.AppendUvarint(b, uint64(len(d.Uses)))
	for _, u := range d.Uses {
		if err := u.validate(); err != nil {
			return nil, fmt.Errorf("marshal event %s: token %s: %w", e.ID, u.Token, err)
		}
		first, last := u.FirstAt.UnixMicro(), u.LastAt.UnixMicro()
		b = append(b, u.Token[:]...)
		b = binary.AppendUvarint(b, u.Count)
		b = binary.AppendVarint(b, first-base)
		b = binary.AppendUvarint(b, uint64(last-first))
		b = appendLenString(b, u.ClientAddr)
	}
	return b, nil
}

// UnmarshalUsageBatch decodes the stored form of a usage batch. Errors
// wrap ErrCorruptEvent for bytes that are not a valid batch (an unknown
// version byte included) and ErrUnknownEventType when r does not register
// usage batches. It never panics, whatever data holds, and a batch it
// decodes encodes back to data exactly.
func (r *Registry) UnmarshalUsageBatch(data []byte) (Envelope, error) {
	reg, ok := r.types[TypeUsageBatch]
	if !ok {
		return Envelope{}, fmt.Errorf("%w: %q", ErrUnknownEventType, TypeUsageBatch)
	}
	e, err := decodeUsageBatch(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("%w: usage batch: %v", ErrCorruptEvent, err)
	}
	e.Schema = reg.schema
	if err := r.checkUsageBatch(e.Type, e.AggregateKind, e.Schema); err != nil {
		return Envelope{}, fmt.Errorf("%w: event %s: %v", ErrCorruptEvent, e.ID, err)
	}
	return e, nil
}

func (r *Registry) checkUsageBatch(t EventType, kind AggregateKind, schema int) error {
	reg, ok := r.types[t]
	switch {
	case t != TypeUsageBatch:
		return fmt.Errorf("%q is not a usage batch", t)
	case !ok:
		return fmt.Errorf("%w: %q", ErrUnknownEventType, t)
	case kind != reg.kind:
		return fmt.Errorf("%q belongs to %s aggregates, not %q", t, reg.kind, kind)
	case schema != reg.schema:
		return fmt.Errorf("schema %d of %q is not supported (want %d)", schema, t, reg.schema)
	}
	return nil
}

var errShort = errors.New("truncated")

func decodeUsageBatch(data []byte) (Envelope, error) {
	d := usageDecoder{b: data}
	if v := d.byte(); d.err == nil && v != usageBatchV1 {
		return Envelope{}, fmt.Errorf("unknown encoding version %d", v)
	}
	var id EventID
	copy(id[:], d.bytes(16))
	base := d.varint()
	actor := d.string()
	corr := d.string()
	n := d.uvarint()
	if d.err != nil {
		return Envelope{}, d.err
	}
	// Every entry takes at least 20 bytes: refuse a count the data cannot
	// hold before allocating for it.
	switch {
	case id == EventID{}:
		return Envelope{}, errors.New("no event id")
	case n == 0:
		return Envelope{}, errors.New("no uses")
	case n > uint64(len(d.b))/20:
		return Envelope{}, fmt.Errorf("%d uses in %d bytes", n, len(d.b))
	}
	at, ok := microTime(base)
	if !ok {
		return Envelope{}, errors.New("time out of range")
	}
	if err := validateText("actor", actor, 1, MaxActorLen); err != nil {
		return Envelope{}, err
	}
	if err := validateText("correlation id", corr, 0, MaxCorrelationIDLen); err != nil {
		return Envelope{}, err
	}
	uses := make([]TokenUse, n)
	for i := range uses {
		u := &uses[i]
		copy(u.Token[:], d.bytes(16))
		u.Count = d.uvarint()
		off := d.varint()
		span := d.uvarint()
		u.ClientAddr = d.string()
		if d.err != nil {
			return Envelope{}, fmt.Errorf("use %d: %w", i, d.err)
		}
		first, ok1 := addMicros(base, off)
		last, ok2 := addMicros(first, int64(min(span, math.MaxInt64)))
		if !ok1 || !ok2 || span > math.MaxInt64 {
			return Envelope{}, fmt.Errorf("use %d: time out of range", i)
		}
		if u.FirstAt, ok1 = microTime(first); !ok1 {
			return Envelope{}, fmt.Errorf("use %d: time out of range", i)
		}
		if u.LastAt, ok2 = microTime(last); !ok2 {
			return Envelope{}, fmt.Errorf("use %d: time out of range", i)
		}
		if err := u.validate(); err != nil {
			return Envelope{}, fmt.Errorf("use %d: %w", i, err)
		}
	}
	if len(d.b) != 0 {
		return Envelope{}, fmt.Errorf("%d bytes after the last use", len(d.b))
	}
	return Envelope{
		ID:            id,
		Type:          TypeUsageBatch,
		AggregateKind: AggregateValidator,
		AggregateID:   actor,
		Actor:         actor,
		Time:          at,
		CorrelationID: corr,
		Data:          UsageBatch{Uses: uses},
	}, nil
}

// usageDecoder reads the parts of a batch; the first failure sticks.
type usageDecoder struct {
	b   []byte
	err error
}

func (d *usageDecoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = errShort
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *usageDecoder) byte() byte {
	if v := d.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

// uvarint and varint accept only the minimal encoding, so that a batch
// has exactly one stored form.
func (d *usageDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != uvarintLen(v) {
		d.err = errors.New("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *usageDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 || n != varintLen(v) {
		d.err = errors.New("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *usageDecoder) string() string {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)) {
		d.err = errShort
	}
	return string(d.bytes(int(n)))
}

// appendLenString appends s with its length as a uvarint in front.
func appendLenString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// usageBatchHeaderLen is the encoded size of a batch's header with n uses.
func usageBatchHeaderLen(actor, corr string, n int) int {
	return 1 + 16 + binary.MaxVarintLen64 + uvarintLen(uint64(len(actor))) + len(actor) +
		uvarintLen(uint64(len(corr))) + len(corr) + uvarintLen(uint64(n))
}

// usageEntryLen is the encoded size of use u in a batch of time base.
func usageEntryLen(base int64, u TokenUse) int {
	first, last := u.FirstAt.UnixMicro(), u.LastAt.UnixMicro()
	return 16 + uvarintLen(u.Count) + varintLen(first-base) + uvarintLen(uint64(last-first)) +
		uvarintLen(uint64(len(u.ClientAddr))) + len(u.ClientAddr)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func varintLen(v int64) int {
	ux := uint64(v) << 1
	if v < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

// addMicros adds without overflow; ok is false if it would overflow.
func addMicros(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// microTime is the UTC instant us microseconds after the Unix epoch, if it
// is a valid event time.
func microTime(us int64) (time.Time, bool) {
	t := time.UnixMicro(us).UTC()
	return t, validEventTime(t)
}
