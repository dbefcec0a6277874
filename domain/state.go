package domain

import (
	"cmp"
	"iter"
	"maps"
	"slices"
	"time"
)

// State is the fold of a whole stream: every token and owner, built by
// applying events in stream order. It is the reference that projections are
// checked against, and replaying a stream up to an instant gives the state
// at that instant. The aggregates it returns belong to it: read them, do not
// run commands on them. A State is not safe for concurrent use.
type State struct {
	tokens map[TokenID]*Token
	owners map[OwnerID]*Owner
	// families holds, by family, the tokens whose token.issued names a
	// rotation family (the family's first token is found by its id).
	families map[TokenID][]*Token
}

// NewState returns an empty State.
func NewState() *State {
	return &State{tokens: make(map[TokenID]*Token), owners: make(map[OwnerID]*Owner), families: make(map[TokenID][]*Token)}
}

// Apply applies one event: token events to their token, created by its
// token.issued (events of a token never issued are ignored), owner events
// to their owner, created on first sight. An owner.family_revoked is also
// applied to every member of the family it covers (see
// Owner.FamilyRevocationOf), which is then revoked as by a token.revoked
// at that event, unless it was revoked before: so a token of the State
// tells its family's revocation by RevokedAt, RevokedReason and RevokedBy,
// and events after it find it revoked, as the read model does. Like the
// aggregates' Apply it never fails; events of unknown kinds are ignored.
func (s *State) Apply(e Envelope) {
	switch e.AggregateKind {
	case AggregateToken:
		id, ok := e.TokenID()
		if !ok {
			return
		}
		if t := s.tokens[id]; t != nil {
			t.Apply(e)
			return
		}
		t := &Token{}
		t.Apply(e)
		if t.st.issued {
			s.tokens[id] = t
			if f := t.st.family; !f.IsZero() {
				s.families[f] = append(s.families[f], t)
			}
		}
	case AggregateOwner:
		id := OwnerID(e.AggregateID)
		o := s.owners[id]
		if o == nil {
			_, revoked := PayloadAs[OwnerTokensRevoked](e.Data)
			_, family := PayloadAs[OwnerFamilyRevoked](e.Data)
			if !revoked && !family {
				return
			}
			o = NewOwner(id)
			s.owners[id] = o
		}
		o.Apply(e)
		if d, ok := PayloadAs[OwnerFamilyRevoked](e.Data); ok && e.Type == TypeOwnerFamilyRevoked {
			s.applyFamilyRevoked(o, e, d)
		}
	}
}

// applyFamilyRevoked revokes the members of d.Family the revocation e
// covers.
func (s *State) applyFamilyRevoked(o *Owner, e Envelope, d OwnerFamilyRevoked) {
	r := FamilyRevocation{Sequence: e.Sequence, Family: d.Family}
	revoke := func(t *Token) {
		if t != nil && t.st.owner == o.st.id && r.covers(t) {
			t.applyFamilyRevoked(e, d)
		}
	}
	revoke(s.tokens[d.Family])
	for _, t := range s.families[d.Family] {
		revoke(t)
	}
}

// Token returns the token id, if it was issued.
func (s *State) Token(id TokenID) (*Token, bool) {
	t, ok := s.tokens[id]
	return t, ok
}

// Owner returns the owner id, if it has any owner event.
func (s *State) Owner(id OwnerID) (*Owner, bool) {
	o, ok := s.owners[id]
	return o, ok
}

// Check reports whether token id may be used at now, taking its owner's
// revocations into account: nil, ErrNotFound, ErrTokenRevoked,
// ErrOwnerRevoked or ErrTokenExpired (see Token.Check).
func (s *State) Check(id TokenID, now time.Time) error {
	t, ok := s.tokens[id]
	if !ok {
		return ErrNotFound
	}
	return t.Check(now, s.owners[t.st.owner])
}

// Status returns token id's status at now, taking its owner's revocations
// into account; ok is false if the token was never issued.
func (s *State) Status(id TokenID, now time.Time) (status TokenStatus, ok bool) {
	t, ok := s.tokens[id]
	if !ok {
		return "", false
	}
	return t.Status(now, s.owners[t.st.owner]), true
}

// Tokens yields every token in id order (the order of their issue instants).
func (s *State) Tokens() iter.Seq[*Token] {
	return func(yield func(*Token) bool) {
		for _, id := range slices.SortedFunc(maps.Keys(s.tokens), TokenID.Compare) {
			if !yield(s.tokens[id]) {
				return
			}
		}
	}
}

// Owners yields every owner with history, in id order.
func (s *State) Owners() iter.Seq[*Owner] {
	return func(yield func(*Owner) bool) {
		for _, id := range slices.SortedFunc(maps.Keys(s.owners), cmp.Compare[OwnerID]) {
			if !yield(s.owners[id]) {
				return
			}
		}
	}
}

// Len returns the number of tokens.
func (s *State) Len() int { return len(s.tokens) }
