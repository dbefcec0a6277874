package ui

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tokenledger/tokenledger/audit"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/projections"
)

// row is a token as a page shows it, its instants already put in words.
type row struct {
	ID, Owner, Name, Kind, Status string
	Scopes                        []string
	Created, LastUsed, Expiry     Phrase
	Revoked                       Phrase
	RevokedReason                 string
	UseCount                      uint64
	Active                        bool
	// AllowedCIDRs are the networks the token may be used from (none:
	// any); UsedFrom its last distinct client addresses, latest first.
	AllowedCIDRs []string
	UsedFrom     []usedFrom
}

// usedFrom is a client address a token was used from and when last.
type usedFrom struct {
	Addr string
	When When
}

// rowFromTokenRow is a read-model row as of now, for a token table
// (which does not show the creation time).
func rowFromTokenRow(t projections.TokenRow, now time.Time) row {
	r := row{
		ID: t.ID.String(), Owner: string(t.Owner), Name: t.Name, Kind: string(t.Kind), Status: string(t.Status),
		Scopes:   t.Scopes,
		LastUsed: lastUsed(t.LastUsedAt, now),
		Expiry:   expiry(t.ExpiresAt, now),
		UseCount: t.UseCount,
		Active:   t.Status == domain.StatusActive,
	}
	switch {
	case !t.RevokedAt.IsZero():
		r.Revoked = Phrase{Text: "revoked " + at(t.RevokedAt, now).Text, When: at(t.RevokedAt, now)}
		r.RevokedReason = t.RevokedReason
	case t.OwnerRevoked:
		r.Revoked = Phrase{Text: "revoked with all tokens of its owner " + at(t.OwnerRevokedAt, now).Text, When: at(t.OwnerRevokedAt, now)}
		r.RevokedReason = t.OwnerRevokedReason
	}
	return r
}

// rowFromView is a token as the ledger decided it at v.Now.
func rowFromView(v ledger.View) row {
	t, now := v.Token, v.Now
	exp, _ := t.ExpiresAt()
	r := row{
		ID: t.ID().String(), Owner: string(t.Owner()), Name: t.Name(), Kind: string(t.Kind()), Status: string(v.Status),
		Scopes:   t.Scopes(),
		Created:  Phrase{Text: "created", When: at(t.CreatedAt(), now)},
		LastUsed: lastUsed(v.LastUsedAt, now),
		Expiry:   expiry(exp, now),
		UseCount: v.UseCount,
		Active:   v.Status == domain.StatusActive,

		AllowedCIDRs: domain.CIDRStrings(t.AllowedCIDRs()),
	}
	for _, u := range v.LastUsedIPs {
		r.UsedFrom = append(r.UsedFrom, usedFrom{Addr: u.Addr, When: at(u.At, now)})
	}
	switch revokedAt, revoked := t.RevokedAt(); {
	case v.FamilyRevoked && (!revoked || v.FamilyRevocation.At.Before(revokedAt)):
		r.Revoked = Phrase{Text: "revoked with its rotation family " + at(v.FamilyRevocation.At, now).Text, When: at(v.FamilyRevocation.At, now)}
		r.RevokedReason = v.FamilyRevocation.Reason
	case revoked:
		r.Revoked = Phrase{Text: "revoked " + at(revokedAt, now).Text, When: at(revokedAt, now)}
		r.RevokedReason = t.RevokedReason()
	case v.OwnerRevoked:
		r.Revoked = Phrase{Text: "revoked with all tokens of its owner " + at(v.OwnerRevocation.At, now).Text, When: at(v.OwnerRevocation.At, now)}
		r.RevokedReason = v.OwnerRevocation.Reason
	}
	return r
}

// event is one entry of a history timeline: what happened, when, who did
// it, the request that did it and why.
type event struct {
	What, Actor, Request, Reason, Aggregate string
	When                                    When
	Details                                 []detail
}

type detail struct{ Key, Value string }

// eventLabels name the event types on a timeline.
var eventLabels = map[domain.EventType]string{
	domain.TypeTokenIssued:          "issued",
	domain.TypeTokenUsed:            "used",
	domain.TypeTokenExpirySet:       "expiry set",
	domain.TypeTokenCIDRsSet:        "allowed networks set",
	domain.TypeTokenRevoked:         "revoked",
	domain.TypeOwnerTokensRevoked:   "every token of the owner revoked",
	domain.TypeOwnerFamilyRevoked:   "rotation family revoked",
	domain.TypeOwnerWebhookDisabled: "webhook endpoint disabled",
}

// hiddenFields are event fields a timeline never shows: the secret's hash,
// and the reason, which has a place of its own.
var hiddenFields = []string{"secret_sha256", "reason"}

func timeline(h audit.History, now time.Time) []event {
	out := make([]event, 0, len(h.Events))
	for _, e := range h.Events {
		ev := event{
			What: eventLabels[e.Type], Actor: e.Actor, Request: e.CorrelationID,
			When: at(e.Time, now), Aggregate: string(e.AggregateKind) + " " + e.AggregateID,
		}
		if ev.What == "" {
			ev.What = string(e.Type)
		}
		ev.Reason, ev.Details = eventDetails(e.Data)
		out = append(out, ev)
	}
	return out
}

// eventDetails returns an event's reason and its other fields, in key
// order, as text.
func eventDetails(data domain.Event) (reason string, details []detail) {
	b, err := json.Marshal(data)
	if err != nil {
		return "", []detail{{"error", "the event cannot be shown"}}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return "", nil
	}
	if raw, ok := fields["reason"]; ok {
		_ = json.Unmarshal(raw, &reason)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if !slices.Contains(hiddenFields, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		details = append(details, detail{k, fieldText(fields[k])})
	}
	return reason, details
}

// fieldText is a JSON value as text: strings unquoted, lists joined.
func fieldText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return strings.Join(list, " ")
	}
	if string(raw) == "null" {
		return "none"
	}
	return fmt.Sprint(string(raw))
}
