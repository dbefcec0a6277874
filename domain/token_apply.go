package domain

import (
	"slices"
	"time"
)

// Apply applies one event of this token to its state. It only applies: no
// validation, no clock, no error, so replay is deterministic. Events of
// other aggregates, and any event before the token's token.issued, are
// ignored. Revocation is terminal: once revoked, an expiry_set or a second
// revoked changes nothing; a used event only moves LastUsedAt (to the later
// instant) and adds to UseCount, never touching status or expiry; a second
// token.issued is ignored. A stored event (non-zero Sequence) moves Version
// to its sequence, and an issued one sets IssuedSequence.
func (t *Token) Apply(e Envelope) {
	if e.AggregateKind != AggregateToken {
		return
	}
	if !t.st.issued {
		d, ok := PayloadAs[TokenIssued](e.Data)
		if !ok {
			return
		}
		id, ok := e.TokenID()
		if !ok {
			return
		}
		t.applyIssued(id, e, d)
		if e.Sequence != 0 {
			t.st.version = e.Sequence
		}
		return
	}
	if id, ok := e.TokenID(); !ok || id != t.st.id {
		return
	}
	if e.Sequence != 0 {
		t.st.version = e.Sequence
	}
	switch e.Type {
	case TypeTokenUsed:
		if d, ok := PayloadAs[TokenUsed](e.Data); ok {
			t.applyUsed(d)
		}
	case TypeTokenExpirySet:
		if d, ok := PayloadAs[TokenExpirySet](e.Data); ok {
			t.applyExpirySet(d)
		}
	case TypeTokenRevoked:
		if d, ok := PayloadAs[TokenRevoked](e.Data); ok {
			t.applyRevoked(e, d)
		}
	case TypeTokenCIDRsSet:
		if d, ok := PayloadAs[TokenCIDRsSet](e.Data); ok {
			t.applyCIDRsSet(d)
		}
	case TypeTokenExpiring, TypeTokenExpired:
		if !slices.Contains(t.st.notices, e.ID) {
			t.st.notices = append(t.st.notices, e.ID)
		}
	}
}

func (t *Token) applyIssued(id TokenID, e Envelope, d TokenIssued) {
	st := &t.st
	st.issued = true
	st.id, st.idText = id, id.String()
	st.owner = d.Owner
	st.name = d.Name
	st.scopes = slices.Clone(d.Scopes)
	st.kind = d.Kind
	st.secretHash = d.SecretHash
	st.createdAt = e.Time
	st.expiresAt = derefTime(d.ExpiresAt)
	st.idleTimeout = d.IdleTimeout.Duration()
	st.absoluteExpiresAt = derefTime(d.AbsoluteExpiresAt)
	if d.RotatedFrom != nil {
		st.rotatedFrom = *d.RotatedFrom
	}
	if d.Family != nil {
		st.family = *d.Family
	}
	st.cidrs = parseStoredCIDRs(d.AllowedCIDRs)
	if e.Sequence != 0 {
		st.issuedSequence = e.Sequence
	}
}

func (t *Token) applyUsed(d TokenUsed) {
	if t.st.useCount > ^uint64(0)-d.Count {
		t.st.useCount = ^uint64(0)
	} else {
		t.st.useCount += d.Count
	}
	if d.LastAt.After(t.st.lastUsedAt) {
		t.st.lastUsedAt = d.LastAt
	}
}

func (t *Token) applyExpirySet(d TokenExpirySet) {
	if t.st.revoked {
		return
	}
	t.st.expiresAt = derefTime(d.ExpiresAt)
	if d.RotatedTo != nil {
		t.st.rotatedTo = *d.RotatedTo
	}
}

func (t *Token) applyRevoked(e Envelope, d TokenRevoked) {
	t.applyRevocation(e, d.Reason)
}

// applyFamilyRevoked applies to a member of the family the owner event
// that revoked it, as State does: the token is then revoked as by a
// token.revoked at that event, and its Version does not move (the event
// is its owner's).
func (t *Token) applyFamilyRevoked(e Envelope, d OwnerFamilyRevoked) {
	t.applyRevocation(e, d.Reason)
}

func (t *Token) applyRevocation(e Envelope, reason string) {
	if t.st.revoked {
		return
	}
	t.st.revoked = true
	t.st.revokedAt = e.Time
	t.st.revokedReason = reason
	t.st.revokedBy = e.Actor
	t.st.revokedSequence = e.Sequence
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func ptrTo[T any](v T) *T { return &v }

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
