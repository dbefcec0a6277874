package domain

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// Registry maps stable event names to their payload types and encodes and
// decodes envelopes. Create one with NewRegistry, register the events with
// RegisterEvents (or RegisterEvent for each), and pass it to whatever reads
// or writes events. A Registry is safe for concurrent use once registration
// is done; registration itself is not synchronised.
type Registry struct {
	types map[EventType]registration
}

type registration struct {
	name   EventType
	kind   AggregateKind
	schema int
	decode func(data []byte) (Event, error)
	// decodeFast is the payload's fast decoder (see codec.go), nil for
	// payloads without one.
	decodeFast func(data []byte) (Event, bool)
	// encodeFast is whether the payload's fast encoder may be used. Both
	// are off for a payload whose fields changed after its codec was
	// written (see eventCodec.codecFields).
	encodeFast bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{types: make(map[EventType]registration)}
}

// NewDefaultRegistry returns a registry with every tokenledger event
// registered.
func NewDefaultRegistry() *Registry {
	r := NewRegistry()
	RegisterEvents(r)
	return r
}

// RegisterEvents registers tokenledger's events in r.
func RegisterEvents(r *Registry) {
	mustRegister[TokenIssued](r, AggregateToken, 1)
	mustRegister[TokenUsed](r, AggregateToken, 1)
	mustRegister[TokenExpirySet](r, AggregateToken, 1)
	mustRegister[TokenRevoked](r, AggregateToken, 1)
	mustRegister[OwnerTokensRevoked](r, AggregateOwner, 1)
	mustRegister[OwnerFamilyRevoked](r, AggregateOwner, 1)
	mustRegister[TokenExpiring](r, AggregateToken, 1)
	mustRegister[TokenExpired](r, AggregateToken, 1)
	mustRegister[OwnerWebhookDisabled](r, AggregateOwner, 1)
	mustRegister[UsageBatch](r, AggregateValidator, 1)
	mustRegister[TokenCIDRsSet](r, AggregateToken, 1)
}

// RegisterEvent registers payload type E under the name its EventType
// method returns, for aggregates of kind, at the given schema version. It
// fails if the name is taken.
func RegisterEvent[E Event](r *Registry, kind AggregateKind, schema int) error {
	var zero E
	name := zero.EventType()
	if name == "" {
		return fmt.Errorf("register event %T: empty event type", zero)
	}
	if _, taken := r.types[name]; taken {
		return fmt.Errorf("register event %T: %q is already registered", zero, name)
	}
	if !kind.valid() {
		return fmt.Errorf("register event %q: unknown aggregate kind %q", name, kind)
	}
	var decodeFast func([]byte) (Event, bool)
	c, fast := any(&zero).(eventCodec)
	fast = fast && envelopeCodecCurrent && c.codecFields() == fieldSignature(reflect.TypeFor[E]())
	if fast {
		decodeFast = c.decodeEvent
	}
	r.types[name] = registration{
		name:       name,
		decodeFast: decodeFast,
		encodeFast: fast,
		kind:       kind,
		schema:     schema,
		decode: func(data []byte) (Event, error) {
			var e E
			if err := json.Unmarshal(data, &e); err != nil {
				return nil, err
			}
			if v, ok := any(&e).(interface{ normalize() error }); ok {
				if err := v.normalize(); err != nil {
					return nil, err
				}
			}
			return e, nil
		},
	}
	return nil
}

func mustRegister[E Event](r *Registry, kind AggregateKind, schema int) {
	if err := RegisterEvent[E](r, kind, schema); err != nil {
		panic(err)
	}
}

// Types lists the registered event types.
func (r *Registry) Types() []EventType {
	out := make([]EventType, 0, len(r.types))
	for t := range r.types {
		out = append(out, t)
	}
	return out
}

// Known reports whether t is registered.
func (r *Registry) Known(t EventType) bool {
	_, ok := r.types[t]
	return ok
}

// wireEnvelope is the stored JSON form of an Envelope.
type wireEnvelope struct {
	ID            EventID         `json:"id"`
	Type          EventType       `json:"type"`
	AggregateKind AggregateKind   `json:"aggregate_type"`
	AggregateID   string          `json:"aggregate_id"`
	Actor         string          `json:"actor"`
	Time          time.Time       `json:"time"`
	Schema        int             `json:"schema"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Data          json.RawMessage `json:"data"`
}

// Marshal encodes e as it is stored. It refuses events whose type is not
// registered or does not match its payload.
func (r *Registry) Marshal(e Envelope) ([]byte, error) {
	if e.Data == nil {
		return nil, fmt.Errorf("marshal event %s: no payload", e.ID)
	}
	reg, ok := r.types[e.Type]
	if !ok {
		return nil, fmt.Errorf("marshal event %s: %w: %q", e.ID, ErrUnknownEventType, e.Type)
	}
	if e.Data.EventType() != e.Type {
		return nil, fmt.Errorf("marshal event %s: type %q does not match payload %q", e.ID, e.Type, e.Data.EventType())
	}
	if e.AggregateKind != reg.kind {
		return nil, fmt.Errorf("marshal event %s: %q belongs to %s aggregates, not %s", e.ID, e.Type, reg.kind, e.AggregateKind)
	}
	if !reg.encodeFast {
		return marshalReflect(e)
	}
	if b, ok := marshalFast(e); ok {
		return b, nil
	}
	return marshalReflect(e)
}

// marshalReflect is Marshal's encoding with encoding/json, once the event
// is checked.
func marshalReflect(e Envelope) ([]byte, error) {
	data, err := json.Marshal(e.Data)
	if err != nil {
		return nil, fmt.Errorf("marshal event %s payload: %w", e.ID, err)
	}
	return json.Marshal(wireEnvelope{
		ID:            e.ID,
		Type:          e.Type,
		AggregateKind: e.AggregateKind,
		AggregateID:   e.AggregateID,
		Actor:         e.Actor,
		Time:          e.Time,
		Schema:        e.Schema,
		CorrelationID: e.CorrelationID,
		Data:          data,
	})
}

// Unmarshal decodes a stored event. Errors wrap ErrUnknownEventType when the
// type is not registered and ErrCorruptEvent when the bytes are not a valid
// event; the returned Envelope has Sequence zero (the store sets it).
//
// Events as tokenledger writes them are decoded without reflection (see
// codec.go); any other input, such as an event with a field this version
// does not know, is decoded with encoding/json, with the same result.
func (r *Registry) Unmarshal(b []byte) (Envelope, error) {
	if e, ok := r.unmarshalFast(b); ok {
		return e, nil
	}
	return r.unmarshalReflect(b)
}

// unmarshalReflect is Unmarshal with encoding/json: the definition of what
// an event decodes to, which the fast decoder follows.
func (r *Registry) unmarshalReflect(b []byte) (Envelope, error) {
	var w wireEnvelope
	// json.Unmarshal refuses trailing data itself, and unlike a Decoder it
	// allocates no read buffer: this runs once per event on every replay.
	if err := json.Unmarshal(b, &w); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrCorruptEvent, err)
	}
	if w.Type == "" {
		return Envelope{}, fmt.Errorf("%w: event has no type", ErrCorruptEvent)
	}
	reg, ok := r.types[w.Type]
	if !ok {
		return Envelope{}, fmt.Errorf("event %s: %w: %q", w.ID, ErrUnknownEventType, w.Type)
	}
	switch {
	case w.ID.IsZero():
		return Envelope{}, fmt.Errorf("%w: event has no id", ErrCorruptEvent)
	case w.AggregateKind != reg.kind:
		return Envelope{}, fmt.Errorf("%w: event %s: %q belongs to %s aggregates, not %q", ErrCorruptEvent, w.ID, w.Type, reg.kind, w.AggregateKind)
	case w.Time.IsZero():
		return Envelope{}, fmt.Errorf("%w: event %s has no time", ErrCorruptEvent, w.ID)
	case !validEventTime(w.Time):
		return Envelope{}, fmt.Errorf("%w: event %s: time out of range", ErrCorruptEvent, w.ID)
	case w.Schema != reg.schema:
		return Envelope{}, fmt.Errorf("%w: event %s: schema %d of %q is not supported (want %d)", ErrCorruptEvent, w.ID, w.Schema, w.Type, reg.schema)
	case len(w.Data) == 0 || w.Data[0] != '{':
		return Envelope{}, fmt.Errorf("%w: event %s: payload is not an object", ErrCorruptEvent, w.ID)
	}
	if err := validateAggregateID(w.AggregateKind, w.AggregateID); err != nil {
		return Envelope{}, fmt.Errorf("%w: event %s: %v", ErrCorruptEvent, w.ID, err)
	}
	data, err := reg.decode(w.Data)
	if err != nil {
		return Envelope{}, fmt.Errorf("%w: event %s payload: %v", ErrCorruptEvent, w.ID, err)
	}
	return Envelope{
		ID:            w.ID,
		Type:          w.Type,
		AggregateKind: w.AggregateKind,
		AggregateID:   w.AggregateID,
		Actor:         w.Actor,
		Time:          NormalizeTime(w.Time),
		Schema:        w.Schema,
		CorrelationID: w.CorrelationID,
		Data:          data,
	}, nil
}

func validateAggregateID(kind AggregateKind, id string) error {
	if kind == AggregateToken {
		_, err := ParseTokenID(id)
		return err
	}
	return ValidateOwner(OwnerID(id))
}
