package domain

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
)

// TypeOwnerWebhookDisabled records that a webhook endpoint was disabled
// because a delivery to it kept failing for the whole retry period. It is
// an owner event: of the endpoint's owner, or, for an endpoint of every
// owner, of the owner whose event could not be delivered. It changes no
// validation decision.
const TypeOwnerWebhookDisabled EventType = "owner.webhook_disabled.v1"

// Bounds of OwnerWebhookDisabled's fields.
const (
	MaxWebhookEndpointLen = 64
	MaxWebhookURLLen      = 2048
	MaxWebhookReasonLen   = 1024
)

// OwnerWebhookDisabled is the payload of TypeOwnerWebhookDisabled.
type OwnerWebhookDisabled struct {
	// Endpoint is the endpoint's id, URL its URL.
	Endpoint string `json:"endpoint"`
	URL      string `json:"url"`
	// Event is the id of the event whose delivery failed.
	Event string `json:"event"`
	// Reason says what failed.
	Reason string `json:"reason"`
}

// EventType implements Event.
func (OwnerWebhookDisabled) EventType() EventType { return TypeOwnerWebhookDisabled }

func (e *OwnerWebhookDisabled) normalize() error {
	for _, f := range []struct {
		name, v string
		max     int
	}{{"endpoint", e.Endpoint, MaxWebhookEndpointLen}, {"url", e.URL, MaxWebhookURLLen}, {"event", e.Event, MaxWebhookEndpointLen},
		{"reason", e.Reason, MaxWebhookReasonLen}} {
		if f.v == "" || len(f.v) > f.max {
			return fmt.Errorf("webhook_disabled: %s of %d bytes, want 1 to %d", f.name, len(f.v), f.max)
		}
	}
	return nil
}

// WebhookDisabledID is the event id of the disabling of endpoint: an
// endpoint is disabled once, so every writer that records it records the
// same event, and the event store keeps it once. Its ULID time is the
// instant of the endpoint's registration when the endpoint id is a ULID
// (zero otherwise); its randomness a SHA-256 of the endpoint id.
func WebhookDisabledID(endpoint string) EventID {
	sum := sha256.Sum256([]byte("tokenledger webhook disabled\x00" + endpoint))
	var u ulid.ULID
	if id, err := ulid.ParseStrict(endpoint); err == nil {
		_ = u.SetTime(id.Time()) // a ULID's own time is in range
	}
	copy(u[6:], sum[:10])
	return EventID(u)
}

// RecordWebhookDisabled records that webhook endpoint d.Endpoint was
// disabled, with the id WebhookDisabledID gives, unless this owner's
// history holds it already; it reports whether it recorded the event.
// Errors wrap ErrInvalidArgument.
func (o *Owner) RecordWebhookDisabled(d OwnerWebhookDisabled, m Meta, now time.Time) (bool, error) {
	if err := d.normalize(); err != nil {
		return false, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if err := m.Validate(); err != nil {
		return false, err
	}
	if err := checkNow(now); err != nil {
		return false, err
	}
	id := WebhookDisabledID(d.Endpoint)
	if o.st.webhooksDisabled[id] {
		return false, nil
	}
	e, err := newEnvelope(AggregateOwner, string(o.st.id), d, m, NormalizeTime(now))
	if err != nil {
		return false, err
	}
	e.ID = id
	o.Apply(e)
	o.changes = append(o.changes, e)
	return true, nil
}

// The fast codec: three short strings.

func (*OwnerWebhookDisabled) codecFields() string {
	return `Endpoint string "endpoint";URL string "url";Event string "event";Reason string "reason";`
}

func (*OwnerWebhookDisabled) decodeEvent(data []byte) (Event, bool) {
	var e OwnerWebhookDisabled
	var seen [4]bool
	d := scanner{b: data}
	d.open()
	for more := d.first(); more; more = d.next() {
		var i int
		switch string(d.key()) {
		case "endpoint":
			i, e.Endpoint = 0, d.string()
		case "url":
			i, e.URL = 1, d.string()
		case "event":
			i, e.Event = 2, d.string()
		case "reason":
			i, e.Reason = 3, d.string()
		default:
			return nil, false
		}
		if seen[i] {
			return nil, false
		}
		seen[i] = true
	}
	if !d.end() || e.normalize() != nil {
		return nil, false
	}
	return e, true
}

func (e OwnerWebhookDisabled) appendJSON(b []byte) ([]byte, bool) {
	b = append(b, `{"endpoint":`...)
	b = AppendJSONString(b, e.Endpoint, true)
	b = append(b, `,"url":`...)
	b = AppendJSONString(b, e.URL, true)
	b = append(b, `,"event":`...)
	b = AppendJSONString(b, e.Event, true)
	b = append(b, `,"reason":`...)
	b = AppendJSONString(b, e.Reason, true)
	return append(b, '}'), true
}
