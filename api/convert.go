package api

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/sdk"
)

// tokenFromView is the API's form of a token decided by the ledger.
func tokenFromView(v ledger.View) sdk.Token {
	t := v.Token
	out := sdk.Token{
		ID:           t.ID().String(),
		Owner:        string(t.Owner()),
		Name:         t.Name(),
		Scopes:       nonNil(t.Scopes()),
		Kind:         string(t.Kind()),
		Status:       string(v.Status),
		CreatedAt:    t.CreatedAt(),
		OwnerRevoked: v.OwnerRevoked,
		LastUsedAt:   timePtr(v.LastUsedAt),
		UseCount:     v.UseCount,
		UsagePartial: v.UsagePartial,
	}
	if at, ok := t.ExpiresAt(); ok {
		out.ExpiresAt = &at
	}
	if t.Kind() == domain.KindSession {
		d := sdk.Duration(t.IdleTimeout())
		out.IdleTimeout = &d
		if at, ok := t.AbsoluteExpiresAt(); ok {
			out.AbsoluteExpiresAt = &at
		}
	}
	if v.FamilyRevoked {
		at, reason := v.FamilyRevocation.At, v.FamilyRevocation.Reason
		out.RevokedAt, out.RevokedReason = &at, &reason
	} else if at, ok := t.RevokedAt(); ok {
		reason := t.RevokedReason()
		out.RevokedAt, out.RevokedReason = &at, &reason
	} else if v.OwnerRevoked {
		at, reason := v.OwnerRevocation.At, v.OwnerRevocation.Reason
		out.RevokedAt, out.RevokedReason = &at, &reason
	}
	if id, ok := t.RotatedFrom(); ok {
		s := id.String()
		out.RotatedFrom = &s
	}
	if id, ok := t.RotatedTo(); ok {
		s := id.String()
		out.RotatedTo = &s
	}
	if out.RotatedFrom != nil || out.RotatedTo != nil {
		s := t.Family().String()
		out.Family = &s
	}
	out.AllowedCIDRs = domain.CIDRStrings(t.AllowedCIDRs())
	out.LastUsedIPs = usedAddrs(v.LastUsedIPs)
	return out
}

// usedAddrs is the API's form of a token's last client addresses.
func usedAddrs(us []projections.UsedAddr) []sdk.UsedAddr {
	if len(us) == 0 {
		return nil
	}
	out := make([]sdk.UsedAddr, len(us))
	for i, u := range us {
		out[i] = sdk.UsedAddr{Addr: u.Addr, LastUsedAt: u.At}
	}
	return out
}

// tokenFromRow is the API's form of a row of the read model.
func tokenFromRow(r projections.TokenRow) sdk.Token {
	out := sdk.Token{
		ID:           r.ID.String(),
		Owner:        string(r.Owner),
		Name:         r.Name,
		Scopes:       nonNil(r.Scopes),
		Kind:         string(r.Kind),
		Status:       string(r.Status),
		CreatedAt:    r.CreatedAt,
		ExpiresAt:    timePtr(r.ExpiresAt),
		OwnerRevoked: r.OwnerRevoked,
		LastUsedAt:   timePtr(r.LastUsedAt),
		UseCount:     r.UseCount,
	}
	if r.Kind == domain.KindSession {
		d := sdk.Duration(r.IdleTimeout)
		out.IdleTimeout = &d
		out.AbsoluteExpiresAt = timePtr(r.AbsoluteExpiresAt)
	}
	if !r.RevokedAt.IsZero() {
		reason := r.RevokedReason
		out.RevokedAt, out.RevokedReason = timePtr(r.RevokedAt), &reason
	} else if r.OwnerRevoked {
		reason := r.OwnerRevokedReason
		out.RevokedAt, out.RevokedReason = timePtr(r.OwnerRevokedAt), &reason
	}
	if r.RotatedFrom != (domain.TokenID{}) {
		s := r.RotatedFrom.String()
		out.RotatedFrom = &s
	}
	if r.RotatedTo != (domain.TokenID{}) {
		s := r.RotatedTo.String()
		out.RotatedTo = &s
	}
	if out.RotatedFrom != nil || out.RotatedTo != nil {
		f := r.ID
		if !r.Family.IsZero() {
			f = r.Family
		}
		s := f.String()
		out.Family = &s
	}
	out.AllowedCIDRs = nonEmpty(r.AllowedCIDRs)
	return out
}

func nonEmpty(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	return ss
}

// secretHashField is the field of token.issued that holds the secret's
// hash; the API never shows it.
const secretHashField = "secret_sha256"

// eventFromEnvelope is the API's form of a stored event, without the
// secret's hash.
func eventFromEnvelope(e domain.Envelope) (sdk.Event, error) {
	data, err := json.Marshal(e.Data)
	if err != nil {
		return sdk.Event{}, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	if e.Type == domain.TypeTokenIssued {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(data, &fields); err != nil {
			return sdk.Event{}, fmt.Errorf("encode event %s: %w", e.ID, err)
		}
		delete(fields, secretHashField)
		if data, err = json.Marshal(fields); err != nil {
			return sdk.Event{}, fmt.Errorf("encode event %s: %w", e.ID, err)
		}
	}
	return sdk.Event{
		Sequence:      e.Sequence,
		ID:            e.ID.String(),
		Type:          string(e.Type),
		Time:          e.Time,
		Actor:         e.Actor,
		CorrelationID: e.CorrelationID,
		AggregateKind: string(e.AggregateKind),
		AggregateID:   e.AggregateID,
		Schema:        e.Schema,
		Data:          data,
	}, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
