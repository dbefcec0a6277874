package domain

import (
	"fmt"
	"slices"
	"time"
)

// Owner is the aggregate of one owner's history: owner-wide revocations
// ("log out everywhere") and bans on new tokens. An owner needs no creation
// event; one without history revokes and blocks nothing. An Owner is not
// safe for concurrent use.
type Owner struct {
	st      ownerState
	changes []Envelope
}

type ownerState struct {
	id            OwnerID
	revoked       bool
	revokedBefore time.Time
	// watermark is the stream sequence of the latest revocation; zero while
	// that revocation is pending.
	watermark uint64
	until     time.Time
	reason    string
	version   uint64
	// revocations are every revocation, in stream order.
	revocations []Revocation
	// families are the revocations of rotation families, by family, in
	// stream order; nil until the first.
	families map[TokenID][]FamilyRevocation
	// webhooksDisabled are the ids of the owner.webhook_disabled events
	// recorded; nil until the first.
	webhooksDisabled map[EventID]bool
}

// FamilyRevocation is one revocation of a rotation family as the owner's
// history recorded it (an owner.family_revoked event).
type FamilyRevocation struct {
	// Sequence is the stream sequence of the event; zero while it is
	// pending.
	Sequence uint64
	// Family is the family's first token.
	Family TokenID
	// At is the instant of the revocation (the event's time).
	At time.Time
	// Reason is the reason recorded (ReasonRotatedSecretReused).
	Reason string
	// Actor is who revoked.
	Actor string
	// Reuse is the presentation of a rotated-out secret that caused it;
	// zero if none was recorded.
	Reuse SecretReuse
}

// covers reports whether this family revocation revokes t, an issued
// token of its owner: t belongs to the family and its issued event
// precedes the revocation in the stream. A pending revocation covers
// every stored member and, failing closed, a pending one; a pending token
// is not covered by a stored revocation.
func (r FamilyRevocation) covers(t *Token) bool {
	switch {
	case t.Family() != r.Family:
		return false
	case r.Sequence == 0:
		return true
	case t.st.issuedSequence == 0:
		return false
	default:
		return t.st.issuedSequence < r.Sequence
	}
}

// Revocation is one owner-wide revocation as the owner's history recorded
// it (an owner.tokens_revoked event).
type Revocation struct {
	// Sequence is the stream sequence of the event; zero while it is
	// pending.
	Sequence uint64
	// At is the instant of the revocation (its RevokedBefore).
	At time.Time
	// Until is the "no new tokens before" instant it set; zero if none.
	Until time.Time
	// Reason is the reason given, if any.
	Reason string
	// Actor is who revoked.
	Actor string
}

// covers reports whether this one revocation revokes t, an issued token of
// its owner, by the rule of Owner.Covers.
func (r Revocation) covers(t *Token) bool {
	switch {
	case !r.Until.IsZero() && t.st.createdAt.Before(r.Until):
		return true
	case r.Sequence == 0:
		return true
	case t.st.issuedSequence == 0:
		return false
	default:
		return t.st.issuedSequence < r.Sequence
	}
}

// NewOwner returns the aggregate of an owner without history.
func NewOwner(id OwnerID) *Owner { return &Owner{st: ownerState{id: id}} }

// OwnerFromHistory rebuilds owner id from its stored events, oldest first.
// No events is a valid history (an owner with nothing recorded). Every event
// must be an owner event of id, with increasing non-zero sequences;
// otherwise the error wraps ErrCorruptEvent (ErrInvalidArgument for an
// invalid id).
func OwnerFromHistory(id OwnerID, events []Envelope) (*Owner, error) {
	if err := ValidateOwner(id); err != nil {
		return nil, fmt.Errorf("owner history: %w", err)
	}
	o := NewOwner(id)
	var last uint64
	for i, e := range events {
		switch {
		case e.AggregateKind != AggregateOwner || e.AggregateID != string(id):
			return nil, fmt.Errorf("owner %q history: %w: event %d (%s) belongs to %s %q", truncateForError(string(id)), ErrCorruptEvent, i, e.ID, e.AggregateKind, truncateForError(e.AggregateID))
		case e.Data == nil || e.Data.EventType() != e.Type:
			return nil, fmt.Errorf("owner %q history: %w: event %d (%s) of type %q has a mismatched payload", truncateForError(string(id)), ErrCorruptEvent, i, e.ID, e.Type)
		case e.Sequence != 0 && e.Sequence <= last:
			return nil, fmt.Errorf("owner %q history: %w: event %d (%s) has sequence %d after %d", truncateForError(string(id)), ErrCorruptEvent, i, e.ID, e.Sequence, last)
		}
		if e.Sequence != 0 {
			last = e.Sequence
		}
		o.Apply(e)
	}
	return o, nil
}

// ID returns the owner's id.
func (o *Owner) ID() OwnerID { return o.st.id }

// RevokedBefore returns the instant of the latest owner-wide revocation; ok
// is false if there was none. The instant is for display: which tokens a
// revocation covers is decided by stream order (see Covers).
func (o *Owner) RevokedBefore() (at time.Time, ok bool) { return o.st.revokedBefore, o.st.revoked }

// RevokedBeforeSequence returns the stream sequence of the latest owner-wide
// revocation: tokens whose issued event has a lower sequence are revoked.
// It is zero if there was none or if the latest is not stored yet.
func (o *Owner) RevokedBeforeSequence() uint64 { return o.st.watermark }

// Until returns the instant before which the owner may get no new token and
// every token created before it counts as revoked; ok is false if no
// revocation set one. Of several revocations the latest until wins.
func (o *Owner) Until() (at time.Time, ok bool) { return o.st.until, !o.st.until.IsZero() }

// Revocations returns every owner-wide revocation of the owner, in stream
// order, in a new slice.
func (o *Owner) Revocations() []Revocation { return slices.Clone(o.st.revocations) }

// RevocationOf returns the owner-wide revocation that revoked t: the first,
// in stream order, that covers t by the rule of Covers. ok is false when
// none does (exactly when Covers is false). Later revocations cover t too
// but change nothing for it.
func (o *Owner) RevocationOf(t *Token) (r Revocation, ok bool) {
	if o == nil || t == nil || !t.st.issued || t.st.owner != o.st.id {
		return Revocation{}, false
	}
	for _, r := range o.st.revocations {
		if r.covers(t) {
			return r, true
		}
	}
	return Revocation{}, false
}

// Reason returns the reason of the latest owner-wide revocation.
func (o *Owner) Reason() string { return o.st.reason }

// Version returns the stream sequence of the latest stored event applied to
// the owner: the expectation under which its Changes must be appended.
func (o *Owner) Version() uint64 { return o.st.version }

// Changes returns the events recorded and not yet marked stored, oldest
// first, in a new slice.
func (o *Owner) Changes() []Envelope { return slices.Clone(o.changes) }

// MarkStored records that the pending Changes were appended at the given
// stream sequences, one per change and in order, and clears them; Version,
// RevokedBeforeSequence and the pending Revocations take the stored
// sequences. The sequences must
// increase and follow Version; otherwise nothing changes and the error wraps
// ErrInvalidArgument.
func (o *Owner) MarkStored(sequences ...uint64) error {
	if err := checkStored(len(o.changes), o.st.version, sequences); err != nil {
		return fmt.Errorf("owner %q: %w", truncateForError(string(o.st.id)), err)
	}
	pending := 0
	for pending < len(o.st.revocations) && o.st.revocations[len(o.st.revocations)-1-pending].Sequence == 0 {
		pending++
	}
	next := len(o.st.revocations) - pending
	for i, seq := range sequences {
		switch o.changes[i].Type {
		case TypeOwnerTokensRevoked:
			o.st.watermark = seq
			if next < len(o.st.revocations) {
				o.st.revocations[next].Sequence = seq
				next++
			}
		case TypeOwnerFamilyRevoked:
			if d, ok := PayloadAs[OwnerFamilyRevoked](o.changes[i].Data); ok {
				revs := o.st.families[d.Family]
				for j := range revs {
					if revs[j].Sequence == 0 {
						revs[j].Sequence = seq
						break
					}
				}
			}
		}
	}
	if n := len(sequences); n > 0 {
		o.st.version = sequences[n-1]
	}
	o.changes = nil
	return nil
}

// RevokeTokens revokes every token of the owner issued before this event in
// the stream, with one event whatever their number. until, if given, must be
// after now: until then no new token may be issued (IssueToken reports
// ErrOwnerBlocked) and any token created before it counts as revoked too,
// which catches issues racing with the revocation. reason is 0 to
// MaxReasonLen bytes. Records OwnerTokensRevoked{RevokedBefore: now}. Errors
// wrap ErrInvalidArgument.
func (o *Owner) RevokeTokens(until *time.Time, reason string, m Meta, now time.Time) error {
	if err := o.revokeTokens(until, reason, m, now); err != nil {
		return fmt.Errorf("revoke tokens of owner %q: %w", truncateForError(string(o.st.id)), err)
	}
	return nil
}

func (o *Owner) revokeTokens(until *time.Time, reason string, m Meta, now time.Time) error {
	if err := ValidateOwner(o.st.id); err != nil {
		return err
	}
	if err := validateText("reason", reason, 0, MaxReasonLen); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return err
	}
	if err := checkNow(now); err != nil {
		return err
	}
	now = NormalizeTime(now)
	var u *time.Time
	if until != nil {
		if !validEventTime(*until) {
			return fmt.Errorf("%w: until out of range", ErrInvalidArgument)
		}
		n := NormalizeTime(*until)
		if !n.After(now) {
			return fmt.Errorf("%w: until %s is not in the future", ErrInvalidArgument, n.Format(time.RFC3339Nano))
		}
		u = &n
	}
	e, err := newEnvelope(AggregateOwner, string(o.st.id), OwnerTokensRevoked{
		Owner:         o.st.id,
		RevokedBefore: now,
		Until:         u,
		Reason:        reason,
	}, m, now)
	if err != nil {
		return err
	}
	o.Apply(e)
	o.changes = append(o.changes, e)
	return nil
}

// RevokeFamily revokes the rotation family of reused, a token of this
// owner whose rotated-out secret was presented after its grace (reuse
// tells where), with one event whatever the family's size: it records
// OwnerFamilyRevoked{Family: reused.Family(), Reason:
// ReasonRotatedSecretReused, Reuse: reuse}, which revokes every member
// issued before it in the stream. reused must be rotated out at now
// (Token.RotatedOut) and reuse.Token must be its id, else
// ErrInvalidArgument: a secret within its grace, or never rotated, is no
// reuse. A family already revoked (a revocation of it covers reused)
// records nothing.
func (o *Owner) RevokeFamily(reused *Token, reuse SecretReuse, m Meta, now time.Time) error {
	if err := o.revokeFamily(reused, reuse, m, now); err != nil {
		return fmt.Errorf("revoke a rotation family of owner %q: %w", truncateForError(string(o.st.id)), err)
	}
	return nil
}

func (o *Owner) revokeFamily(reused *Token, reuse SecretReuse, m Meta, now time.Time) error {
	if err := ValidateOwner(o.st.id); err != nil {
		return err
	}
	if err := reused.exists(); err != nil {
		return err
	}
	if reused.st.owner != o.st.id {
		return fmt.Errorf("%w: token %s is not the owner's", ErrInvalidArgument, reused.st.id)
	}
	if reuse.Token != reused.st.id {
		return fmt.Errorf("%w: reuse names token %s, not %s", ErrInvalidArgument, reuse.Token, reused.st.id)
	}
	if err := validateText("client address", reuse.ClientAddr, 0, MaxClientAddrLen); err != nil {
		return err
	}
	if err := validateText("route", reuse.Route, 0, MaxRouteLen); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return err
	}
	if err := checkNow(now); err != nil {
		return err
	}
	now = NormalizeTime(now)
	if !reused.RotatedOut(now) {
		return fmt.Errorf("%w: token %s is not rotated out", ErrInvalidArgument, reused.st.id)
	}
	if o.revokesFamily(reused) {
		return nil
	}
	e, err := newEnvelope(AggregateOwner, string(o.st.id), OwnerFamilyRevoked{
		Owner:  o.st.id,
		Family: reused.Family(),
		Reason: ReasonRotatedSecretReused,
		Reuse:  &reuse,
	}, m, now)
	if err != nil {
		return err
	}
	o.Apply(e)
	o.changes = append(o.changes, e)
	return nil
}

// FamilyRevocationOf returns the revocation of t's rotation family that
// revoked t: the first, in stream order, that covers it (t is this owner's,
// of that family, and issued before it in the stream), unless t had been
// revoked by itself before it. ok is false when there is none.
func (o *Owner) FamilyRevocationOf(t *Token) (r FamilyRevocation, ok bool) {
	if o == nil || t == nil || !t.st.issued || t.st.owner != o.st.id || len(o.st.families) == 0 {
		return FamilyRevocation{}, false
	}
	for _, r := range o.st.families[t.Family()] {
		if !r.covers(t) {
			continue
		}
		if t.st.revoked && (r.Sequence == 0 || (t.st.revokedSequence != 0 && t.st.revokedSequence < r.Sequence)) {
			return FamilyRevocation{}, false
		}
		return r, true
	}
	return FamilyRevocation{}, false
}

// revokesFamily reports whether a revocation of t's rotation family covers
// t, whatever t's own revocation. It does not allocate.
func (o *Owner) revokesFamily(t *Token) bool {
	if o == nil || len(o.st.families) == 0 || t.st.owner != o.st.id {
		return false
	}
	for _, r := range o.st.families[t.Family()] {
		if r.covers(t) {
			return true
		}
	}
	return false
}

// FamilyRevocations returns every revocation of a rotation family of the
// owner, in stream order, in a new slice.
func (o *Owner) FamilyRevocations() []FamilyRevocation {
	var out []FamilyRevocation
	for _, revs := range o.st.families {
		out = append(out, revs...)
	}
	slices.SortFunc(out, func(a, b FamilyRevocation) int {
		switch {
		case a.Sequence == b.Sequence:
			return 0
		case a.Sequence == 0:
			return 1
		case b.Sequence == 0:
			return -1
		case a.Sequence < b.Sequence:
			return -1
		}
		return 1
	})
	return out
}

// Apply applies one event of this owner. It only applies, never fails, and
// ignores events of other aggregates. The latest revocation in stream order
// sets the watermark (its sequence; zero while pending), RevokedBefore and
// Reason; Until becomes the later of the old and the new one, so a
// revocation never shortens a ban. Every revocation is added to
// Revocations. A family revocation is added to the family's revocations
// (see FamilyRevocationOf) and changes none of the above. A stored event
// moves Version.
func (o *Owner) Apply(e Envelope) {
	if e.AggregateKind != AggregateOwner || e.AggregateID != string(o.st.id) {
		return
	}
	if e.Sequence != 0 {
		o.st.version = e.Sequence
	}
	if e.Type == TypeOwnerFamilyRevoked {
		if d, ok := PayloadAs[OwnerFamilyRevoked](e.Data); ok {
			o.applyFamilyRevoked(e, d)
		}
		return
	}
	if e.Type == TypeOwnerWebhookDisabled {
		if o.st.webhooksDisabled == nil {
			o.st.webhooksDisabled = map[EventID]bool{}
		}
		o.st.webhooksDisabled[e.ID] = true
		return
	}
	if e.Type != TypeOwnerTokensRevoked {
		return
	}
	d, ok := PayloadAs[OwnerTokensRevoked](e.Data)
	if !ok {
		return
	}
	o.st.revoked = true
	o.st.revokedBefore = d.RevokedBefore
	o.st.watermark = e.Sequence
	o.st.reason = d.Reason
	if d.Until != nil && d.Until.After(o.st.until) {
		o.st.until = *d.Until
	}
	r := Revocation{Sequence: e.Sequence, At: d.RevokedBefore, Reason: d.Reason, Actor: e.Actor}
	if d.Until != nil {
		r.Until = *d.Until
	}
	o.st.revocations = append(o.st.revocations, r)
}

func (o *Owner) applyFamilyRevoked(e Envelope, d OwnerFamilyRevoked) {
	if o.st.families == nil {
		o.st.families = make(map[TokenID][]FamilyRevocation)
	}
	r := FamilyRevocation{Sequence: e.Sequence, Family: d.Family, At: e.Time, Reason: d.Reason, Actor: e.Actor}
	if d.Reuse != nil {
		r.Reuse = *d.Reuse
	}
	o.st.families[d.Family] = append(o.st.families[d.Family], r)
}

// Covers reports whether an owner-wide revocation revokes t: t is this
// owner's and either its issued event precedes the latest revocation in the
// stream (IssuedSequence < RevokedBeforeSequence), or it was created before
// Until.
//
// Events not stored yet have no sequence; Covers then decides as the stream
// will: a pending revocation will be appended after every stored token, so
// it covers them all; a pending token will be appended after a stored
// revocation, so it is not covered by it. When both are pending their order
// is not known yet and Covers answers true, failing closed.
func (o *Owner) Covers(t *Token) bool {
	if o == nil || t == nil || !t.st.issued || t.st.owner != o.st.id {
		return false
	}
	if !o.st.until.IsZero() && t.st.createdAt.Before(o.st.until) {
		return true
	}
	switch {
	case !o.st.revoked:
		return false
	case o.st.watermark == 0:
		return true
	case t.st.issuedSequence == 0:
		return false
	default:
		return t.st.issuedSequence < o.st.watermark
	}
}

// Blocks reports whether the owner may get no new token at now: a
// revocation set an Until after now.
func (o *Owner) Blocks(now time.Time) bool {
	return o != nil && o.st.until.After(now)
}
