package webhooks

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// EventType is the type of a webhook delivery, what endpoints subscribe
// to: the lifecycle fact, named for receivers.
type EventType string

// The webhook event types.
const (
	EventIssued   EventType = "token.issued"
	EventExpiring EventType = "token.expiring"
	EventExpired  EventType = "token.expired"
	EventRevoked  EventType = "token.revoked"
	// EventLeaked is a revocation because a secret scanner reported the
	// token's secret (reason "leaked").
	EventLeaked EventType = "token.leaked"
	// EventInactive is a revocation by the inactivity policy (reason
	// "inactive").
	EventInactive EventType = "token.inactive"
	// EventOwnerRevoked is an owner-wide revocation.
	EventOwnerRevoked EventType = "owner.revoked"
	// EventFamilyRevoked is the revocation of a rotation family after a
	// rotated-out secret was presented again.
	EventFamilyRevoked EventType = "family.revoked"
)

// EventTypes lists every webhook event type.
var EventTypes = []EventType{EventIssued, EventExpiring, EventExpired, EventRevoked, EventLeaked, EventInactive,
	EventOwnerRevoked, EventFamilyRevoked}

// Revocation reasons that have a webhook event type of their own.
const (
	ReasonLeaked   = domain.ReasonLeaked
	ReasonInactive = domain.ReasonInactive
)

// ValidateEventTypes checks the event types an endpoint subscribes to.
func ValidateEventTypes(types []EventType) error {
	for _, t := range types {
		if !slices.Contains(EventTypes, t) {
			return fmt.Errorf("%w: unknown webhook event type %q (want one of %v)", domain.ErrInvalidArgument, t, EventTypes)
		}
	}
	return nil
}

// typeOf returns the webhook event type of a lifecycle event; ok is false
// for events that are not delivered.
func typeOf(e domain.Envelope) (EventType, bool) {
	switch d := e.Data.(type) {
	case domain.TokenIssued:
		return EventIssued, true
	case domain.TokenExpiring:
		return EventExpiring, true
	case domain.TokenExpired:
		return EventExpired, true
	case domain.TokenRevoked:
		switch d.Reason {
		case ReasonLeaked:
			return EventLeaked, true
		case ReasonInactive:
			return EventInactive, true
		}
		return EventRevoked, true
	case domain.OwnerTokensRevoked:
		return EventOwnerRevoked, true
	case domain.OwnerFamilyRevoked:
		return EventFamilyRevoked, true
	}
	return "", false
}

// Payload is the JSON body of a delivery, in the Standard Webhooks shape:
// the type, the instant of the event and its data.
type Payload struct {
	Type      EventType   `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      PayloadData `json:"data"`
}

// PayloadData is the lifecycle event a delivery announces.
type PayloadData struct {
	// EventID is the event's id (also the webhook-id header), EventType
	// its stored type and Sequence its position in the stream.
	EventID   string           `json:"event_id"`
	EventType domain.EventType `json:"event_type"`
	Sequence  uint64           `json:"sequence"`
	// TokenID is the token of a token event; Owner the owner of the token
	// or of an owner event.
	TokenID string         `json:"token_id,omitempty"`
	Owner   domain.OwnerID `json:"owner"`
	Actor   string         `json:"actor"`
	// Event is the event's payload as stored (for token.issued: the
	// secret's SHA-256, never the secret).
	Event json.RawMessage `json:"event"`
}

// body encodes the delivery body of e, stored at its sequence, of owner.
func body(reg *domain.Registry, e domain.Envelope, t EventType, owner domain.OwnerID) ([]byte, error) {
	stored, err := reg.Marshal(e)
	if err != nil {
		return nil, err
	}
	var w struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(stored, &w); err != nil {
		return nil, err
	}
	p := Payload{Type: t, Timestamp: e.Time, Data: PayloadData{
		EventID: e.ID.String(), EventType: e.Type, Sequence: e.Sequence, Owner: owner, Actor: e.Actor, Event: w.Data,
	}}
	if id, ok := e.TokenID(); ok {
		p.Data.TokenID = id.String()
	}
	return json.Marshal(p)
}
