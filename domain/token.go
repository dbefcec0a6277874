package domain

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Limits on the free-form fields of a token.
const (
	// MaxNameLen is the longest token name, in bytes.
	MaxNameLen = 200
	// MaxScopes is the largest number of scopes a token may carry.
	MaxScopes = 64
	// MaxScopeLen is the longest scope, in bytes.
	MaxScopeLen = 128
	// MaxReasonLen is the longest revocation reason, in bytes.
	MaxReasonLen = 500
	// MaxClientAddrLen is the longest client address a use records.
	MaxClientAddrLen = 64
	// MaxRouteLen is the longest route a secret reuse records.
	MaxRouteLen = 200
)

// Status is what a token is at a given instant.
type Status string

const (
	// StatusActive: the token is neither revoked nor expired.
	StatusActive Status = "active"
	// StatusExpired: the token's expiry has passed.
	StatusExpired Status = "expired"
	// StatusRevoked: the token was revoked, by itself or with all tokens of
	// its owner. Revocation is terminal.
	StatusRevoked Status = "revoked"
)

// IssueRequest describes a token to issue. At most one of ExpiresIn,
// ExpiresAt and NeverExpires may be set; none means the policy's default
// lifetime.
type IssueRequest struct {
	// Owner is whose token it is (required).
	Owner OwnerID
	// Name is a free-form label, 0 to MaxNameLen bytes.
	Name string
	// Scopes are RFC 6749 scope tokens; they are de-duplicated and sorted.
	Scopes []string
	// Kind is KindAPI (the default when empty) or KindSession.
	Kind TokenKind
	// ExpiresIn asks for an expiry relative to the issue instant (> 0).
	ExpiresIn time.Duration
	// ExpiresAt asks for an absolute expiry. For a session it is the
	// absolute cap.
	ExpiresAt *time.Time
	// NeverExpires asks for an api token without expiry, if the policy
	// allows it.
	NeverExpires bool
	// IdleTimeout is a session's idle timeout, in whole seconds; zero means
	// the policy's. Only sessions have one.
	IdleTimeout time.Duration
	// RotatedFrom names the token this one replaces (set by Rotate).
	RotatedFrom *TokenID
	// NotAfter, if set, bounds the new token's life from above, whatever
	// the policy allows: an expiry the policy chooses (the default
	// lifetime, a session's default absolute cap) is capped at it, and a
	// requested expiry after it, or NeverExpires, is refused with
	// ErrLifetimeBound. The ledger sets it to the expiry of a caller
	// without ledger:admin, so that no such caller obtains a token that
	// outlives its own.
	NotAfter *time.Time

	// family is the rotation family of a rotated token (set by Rotate).
	family *TokenID
}

// Token is the aggregate of one token's history. Its state is changed only
// by applying events: commands (IssueToken, SetExpiry, Revoke, Rotate,
// RecordUse, ExtendSession) validate their input, then record events, which
// are applied at once and kept in Changes until stored. Load a stored token
// with TokenFromHistory. A Token is not safe for concurrent use.
//
// The zero Token is a token not yet issued: its commands report ErrNotFound
// and it applies nothing but a token.issued event.
type Token struct {
	st      tokenState
	changes []Envelope
}

// tokenState is everything Apply changes; zero times mean "not set".
type tokenState struct {
	issued            bool
	id                TokenID
	idText            string
	owner             OwnerID
	name              string
	scopes            []string
	kind              TokenKind
	secretHash        SecretHash
	createdAt         time.Time
	expiresAt         time.Time
	idleTimeout       time.Duration
	absoluteExpiresAt time.Time
	revoked           bool
	revokedAt         time.Time
	revokedReason     string
	revokedBy         string
	// revokedSequence is the stream sequence of the revocation; zero
	// while it is pending.
	revokedSequence uint64
	lastUsedAt      time.Time
	useCount        uint64
	issuedSequence  uint64
	version         uint64
	rotatedFrom     TokenID
	rotatedTo       TokenID
	family          TokenID
	// notices are the ids of the expiry notices recorded (see
	// AnnounceExpiry); they decide nothing else.
	notices []EventID
}

// IssueToken issues a new token for req.Owner under policy p and returns it
// with its secret, which exists nowhere else: the recorded TokenIssued event
// carries only its SHA-256.
//
// owner is the owner's aggregate, or nil when the owner has no history; if
// given it must be req.Owner's, and an owner whose tokens were revoked with
// an "until" after now refuses new tokens (ErrOwnerBlocked). The lifetime
// follows p on every path: an api token without a requested expiry gets
// now + DefaultLifetime; a requested one must be after now and within
// MaxLifetime; NeverExpires needs AllowNeverExpires. A session never lacks
// an expiry: its absolute cap is the requested expiry or now +
// min(DefaultLifetime, SessionMaxLifetime), at most now +
// SessionMaxLifetime; its idle timeout is req.IdleTimeout or
// SessionIdleTimeout (at most SessionMaxLifetime); its first expiry is the
// earlier of now + idle timeout and the cap.
//
// The token id and the secret's randomness come from entropy (nil means
// crypto/rand). Errors wrap ErrInvalidArgument (malformed request, policy or
// meta), ErrPolicyViolation, ErrLifetimeBound or ErrOwnerBlocked.
func IssueToken(p Policy, owner *Owner, req IssueRequest, m Meta, now time.Time, entropy io.Reader) (*Token, Secret, error) {
	t, secret, err := issueToken(p, owner, req, m, now, entropy)
	if err != nil {
		return nil, Secret{}, fmt.Errorf("issue token for owner %q: %w", truncateForError(string(req.Owner)), err)
	}
	return t, secret, nil
}

func issueToken(p Policy, owner *Owner, req IssueRequest, m Meta, now time.Time, entropy io.Reader) (*Token, Secret, error) {
	if err := checkCommon(p, m, now); err != nil {
		return nil, Secret{}, err
	}
	now = NormalizeTime(now)
	if err := ValidateOwner(req.Owner); err != nil {
		return nil, Secret{}, err
	}
	if owner != nil && owner.ID() != req.Owner {
		return nil, Secret{}, fmt.Errorf("%w: owner history of %q given for a token of %q", ErrInvalidArgument,
			truncateForError(string(owner.ID())), truncateForError(string(req.Owner)))
	}
	if err := validateText("name", req.Name, 0, MaxNameLen); err != nil {
		return nil, Secret{}, err
	}
	scopes, err := NormalizeScopes(req.Scopes)
	if err != nil {
		return nil, Secret{}, err
	}
	kind := req.Kind
	if kind == "" {
		kind = KindAPI
	}
	if !kind.Valid() {
		return nil, Secret{}, fmt.Errorf("%w: unknown token kind %q", ErrInvalidArgument, truncateForError(string(kind)))
	}
	if err := validateExpiryRequest(kind, req); err != nil {
		return nil, Secret{}, err
	}
	if req.RotatedFrom != nil && req.RotatedFrom.IsZero() {
		return nil, Secret{}, fmt.Errorf("%w: zero rotated-from token id", ErrInvalidArgument)
	}
	if owner != nil && owner.Blocks(now) {
		until, _ := owner.Until()
		return nil, Secret{}, fmt.Errorf("%w until %s", ErrOwnerBlocked, until.Format(time.RFC3339))
	}
	life, err := p.issueLifetime(kind, req, now)
	if err != nil {
		return nil, Secret{}, err
	}

	id, err := NewTokenID(now, entropy)
	if err != nil {
		return nil, Secret{}, err
	}
	secret, err := GenerateSecret(id, entropy)
	if err != nil {
		return nil, Secret{}, err
	}
	issued := TokenIssued{
		Owner:       req.Owner,
		Name:        req.Name,
		Scopes:      scopes,
		Kind:        kind,
		SecretHash:  secret.Hash(),
		ExpiresAt:   timePtr(life.expiresAt),
		IdleTimeout: SecondsOf(life.idle),
		RotatedFrom: req.RotatedFrom,
		Family:      req.family,
	}
	if kind == KindSession {
		issued.AbsoluteExpiresAt = timePtr(life.absolute)
	}
	t := &Token{}
	t.st.id, t.st.idText = id, id.String()
	if err := t.record(issued, m, now); err != nil {
		return nil, Secret{}, err
	}
	return t, secret, nil
}

// checkCommon validates what every lifecycle command receives.
func checkCommon(p Policy, m Meta, now time.Time) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return err
	}
	return checkNow(now)
}

// checkNow refuses instants whose expiries events could not represent.
func checkNow(now time.Time) error {
	if !validEventTime(now) || !validEventTime(now.Add(maxLifetimeBound)) {
		return fmt.Errorf("%w: current time %s out of range", ErrInvalidArgument, now.UTC().Format(time.RFC3339))
	}
	return nil
}

func validateExpiryRequest(kind TokenKind, req IssueRequest) error {
	given := 0
	if req.ExpiresIn != 0 {
		given++
	}
	if req.ExpiresAt != nil {
		given++
	}
	if req.NeverExpires {
		given++
	}
	switch {
	case given > 1:
		return fmt.Errorf("%w: give at most one of expires in, expires at and never expires", ErrInvalidArgument)
	case req.ExpiresIn < 0:
		return fmt.Errorf("%w: expires in %s is not positive", ErrInvalidArgument, req.ExpiresIn)
	case req.ExpiresAt != nil && !validEventTime(*req.ExpiresAt):
		return fmt.Errorf("%w: expires at is out of range", ErrInvalidArgument)
	case req.NotAfter != nil && !validEventTime(*req.NotAfter):
		return fmt.Errorf("%w: not after is out of range", ErrInvalidArgument)
	case req.IdleTimeout != 0 && kind != KindSession:
		return fmt.Errorf("%w: only sessions have an idle timeout", ErrInvalidArgument)
	case req.IdleTimeout < 0:
		return fmt.Errorf("%w: idle timeout %s is not positive", ErrInvalidArgument, req.IdleTimeout)
	case req.IdleTimeout%time.Second != 0:
		return fmt.Errorf("%w: idle timeout %s is not a whole number of seconds", ErrInvalidArgument, req.IdleTimeout)
	}
	return nil
}

type lifetime struct {
	expiresAt time.Time // zero: never
	absolute  time.Time // sessions only
	idle      time.Duration
}

// issueLifetime applies p to a validated request at the normalised instant
// now.
func (p Policy) issueLifetime(kind TokenKind, req IssueRequest, now time.Time) (lifetime, error) {
	var requested time.Time
	switch {
	case req.ExpiresIn > 0:
		requested = NormalizeTime(now.Add(req.ExpiresIn))
	case req.ExpiresAt != nil:
		requested = NormalizeTime(*req.ExpiresAt)
	}
	var notAfter time.Time
	if req.NotAfter != nil {
		notAfter = NormalizeTime(*req.NotAfter)
	}
	if kind == KindAPI {
		switch {
		case req.NeverExpires && !p.AllowNeverExpires:
			return lifetime{}, policyViolation("tokens that never expire are not allowed")
		case req.NeverExpires && !notAfter.IsZero():
			return lifetime{}, fmt.Errorf("%w: a token that never expires would outlive %s", ErrLifetimeBound, notAfter.Format(time.RFC3339Nano))
		case req.NeverExpires:
			return lifetime{}, nil
		case requested.IsZero():
			exp, err := capLifetime(NormalizeTime(now.Add(p.DefaultLifetime)), notAfter, now)
			return lifetime{expiresAt: exp}, err
		}
		if err := checkExpiryWindow(requested, now, now.Add(p.MaxLifetime), "the max lifetime"); err != nil {
			return lifetime{}, err
		}
		if err := checkBound(requested, notAfter); err != nil {
			return lifetime{}, err
		}
		return lifetime{expiresAt: requested}, nil
	}

	if req.NeverExpires {
		return lifetime{}, policyViolation("sessions always expire")
	}
	capAt := requested
	if capAt.IsZero() {
		var err error
		if capAt, err = capLifetime(NormalizeTime(now.Add(min(p.DefaultLifetime, p.SessionMaxLifetime))), notAfter, now); err != nil {
			return lifetime{}, err
		}
	}
	if err := checkExpiryWindow(capAt, now, now.Add(p.SessionMaxLifetime), "the session max lifetime"); err != nil {
		return lifetime{}, err
	}
	if err := checkBound(capAt, notAfter); err != nil {
		return lifetime{}, err
	}
	idle := req.IdleTimeout
	if idle == 0 {
		idle = p.SessionIdleTimeout
	}
	if idle > p.SessionMaxLifetime {
		return lifetime{}, policyViolation("idle timeout %s exceeds the session max lifetime %s", idle, p.SessionMaxLifetime)
	}
	exp := NormalizeTime(now.Add(idle))
	if capAt.Before(exp) {
		exp = capAt
	}
	return lifetime{expiresAt: exp, absolute: capAt, idle: idle}, nil
}

// capLifetime caps an expiry the policy chose at notAfter (zero: no bound).
// A bound at or before now leaves no lifetime to give.
func capLifetime(exp, notAfter, now time.Time) (time.Time, error) {
	if notAfter.IsZero() || !exp.After(notAfter) {
		return exp, nil
	}
	if !notAfter.After(now) {
		return time.Time{}, fmt.Errorf("%w: the bound %s has passed", ErrLifetimeBound, notAfter.Format(time.RFC3339Nano))
	}
	return notAfter, nil
}

// checkBound refuses a requested expiry after notAfter (zero: no bound).
func checkBound(at, notAfter time.Time) error {
	if !notAfter.IsZero() && at.After(notAfter) {
		return fmt.Errorf("%w: expiry %s is after %s", ErrLifetimeBound, at.Format(time.RFC3339Nano), notAfter.Format(time.RFC3339Nano))
	}
	return nil
}

// checkExpiryWindow requires now < at <= latest.
func checkExpiryWindow(at, now, latest time.Time, what string) error {
	if !at.After(now) {
		return policyViolation("expiry %s is not in the future", at.Format(time.RFC3339Nano))
	}
	if at.After(latest) {
		return policyViolation("expiry %s is beyond %s (%s)", at.Format(time.RFC3339Nano), what, latest.Format(time.RFC3339Nano))
	}
	return nil
}

// NormalizeScopes checks scopes and returns them sorted and de-duplicated, in
// a new slice. There may be at most MaxScopes; each must be 1 to MaxScopeLen
// bytes of RFC 6749 scope-token characters (%x21 / %x23-5B / %x5D-7E:
// printable ASCII except space, '"' and '\'). Errors wrap ErrInvalidArgument.
func NormalizeScopes(scopes []string) ([]string, error) {
	if len(scopes) > MaxScopes {
		return nil, fmt.Errorf("%w: %d scopes, at most %d allowed", ErrInvalidArgument, len(scopes), MaxScopes)
	}
	out := make([]string, 0, len(scopes))
	for i, s := range scopes {
		if err := ValidateScope(s); err != nil {
			return nil, fmt.Errorf("scope %d: %w", i, err)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// ValidateScope reports whether s is one RFC 6749 scope token of at most
// MaxScopeLen bytes. Errors wrap ErrInvalidArgument.
func ValidateScope(s string) error {
	if len(s) == 0 || len(s) > MaxScopeLen {
		return fmt.Errorf("%w: a scope must be 1 to %d bytes, got %d", ErrInvalidArgument, MaxScopeLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7E || c == '"' || c == '\\' {
			return fmt.Errorf("%w: scope %q contains the byte %#02x, not allowed in a scope", ErrInvalidArgument, truncateForError(s), c)
		}
	}
	return nil
}

// TokenFromHistory rebuilds a token from its stored events, oldest first.
// The first event must be the token's token.issued; every event must belong
// to the same token, and non-zero sequences must increase. No history is
// ErrNotFound; anything else wrong is ErrCorruptEvent.
func TokenFromHistory(events []Envelope) (*Token, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("token history: %w", ErrNotFound)
	}
	id, ok := events[0].TokenID()
	if !ok {
		return nil, fmt.Errorf("token history: %w: first event %s is not a token event", ErrCorruptEvent, events[0].ID)
	}
	if _, ok := payloadAs[TokenIssued](events[0].Data); !ok {
		return nil, fmt.Errorf("token %s history: %w: first event is %q, not %q", id, ErrCorruptEvent, events[0].Type, TypeTokenIssued)
	}
	t := &Token{}
	var last uint64
	for i, e := range events {
		eid, ok := e.TokenID()
		switch {
		case !ok || eid != id:
			return nil, fmt.Errorf("token %s history: %w: event %d (%s) belongs to %s %q", id, ErrCorruptEvent, i, e.ID, e.AggregateKind, truncateForError(e.AggregateID))
		case e.Data == nil || e.Data.EventType() != e.Type:
			return nil, fmt.Errorf("token %s history: %w: event %d (%s) of type %q has a mismatched payload", id, ErrCorruptEvent, i, e.ID, e.Type)
		case e.Sequence != 0 && e.Sequence <= last:
			return nil, fmt.Errorf("token %s history: %w: event %d (%s) has sequence %d after %d", id, ErrCorruptEvent, i, e.ID, e.Sequence, last)
		}
		if e.Sequence != 0 {
			last = e.Sequence
		}
		t.Apply(e)
	}
	return t, nil
}

// ID returns the token's id.
func (t *Token) ID() TokenID { return t.st.id }

// Owner returns whose token it is.
func (t *Token) Owner() OwnerID { return t.st.owner }

// Name returns the token's label.
func (t *Token) Name() string { return t.st.name }

// Scopes returns a copy of the token's scopes, sorted.
func (t *Token) Scopes() []string { return slices.Clone(t.st.scopes) }

// HasScope reports whether the token carries scope s.
func (t *Token) HasScope(s string) bool {
	_, found := slices.BinarySearch(t.st.scopes, s)
	return found
}

// Kind returns whether the token is an api token or a session.
func (t *Token) Kind() TokenKind { return t.st.kind }

// SecretHash returns the SHA-256 of the token's secret.
func (t *Token) SecretHash() SecretHash { return t.st.secretHash }

// CreatedAt returns the instant the token was issued.
func (t *Token) CreatedAt() time.Time { return t.st.createdAt }

// ExpiresAt returns the token's current expiry; ok is false if it never
// expires.
func (t *Token) ExpiresAt() (at time.Time, ok bool) { return t.st.expiresAt, !t.st.expiresAt.IsZero() }

// IdleTimeout returns how far a use may push a session's expiry; zero for
// api tokens.
func (t *Token) IdleTimeout() time.Duration { return t.st.idleTimeout }

// AbsoluteExpiresAt returns the cap a session can never be extended past;
// ok is false for api tokens.
func (t *Token) AbsoluteExpiresAt() (at time.Time, ok bool) {
	return t.st.absoluteExpiresAt, !t.st.absoluteExpiresAt.IsZero()
}

// RevokedAt returns when the token was revoked; ok is false if it was not
// revoked by itself (an owner-wide revocation, and a revocation of its
// rotation family, are the Owner's facts, see Check and
// Owner.FamilyRevocationOf; a token of a State has its family's
// revocation applied, see State.Apply).
func (t *Token) RevokedAt() (at time.Time, ok bool) { return t.st.revokedAt, t.st.revoked }

// RevokedReason returns the reason given at revocation, if any.
func (t *Token) RevokedReason() string { return t.st.revokedReason }

// RevokedBy returns the actor who revoked the token, if it is revoked.
func (t *Token) RevokedBy() string { return t.st.revokedBy }

// LastUsedAt returns the latest recorded use; ok is false if the token was
// never used.
func (t *Token) LastUsedAt() (at time.Time, ok bool) {
	return t.st.lastUsedAt, !t.st.lastUsedAt.IsZero()
}

// UseCount returns the number of recorded uses.
func (t *Token) UseCount() uint64 { return t.st.useCount }

// IssuedSequence returns the stream sequence of the token's issued event,
// or zero while that event is not stored.
func (t *Token) IssuedSequence() uint64 { return t.st.issuedSequence }

// Version returns the stream sequence of the latest stored event applied to
// the token: the expectation under which its Changes must be appended.
// Applying a pending event (sequence zero) leaves it unchanged.
func (t *Token) Version() uint64 { return t.st.version }

// RotatedFrom returns the token this one replaced, if it was issued by a
// rotation.
func (t *Token) RotatedFrom() (id TokenID, ok bool) {
	return t.st.rotatedFrom, !t.st.rotatedFrom.IsZero()
}

// Family returns the first token of the rotation chain this token belongs
// to: the token itself unless it was issued by a rotation that recorded
// its family.
func (t *Token) Family() TokenID {
	if !t.st.family.IsZero() {
		return t.st.family
	}
	return t.st.id
}

// RotatedOut reports whether the token was rotated and its grace has
// passed at now: presenting its secret then is a reuse of a rotated-out
// secret. A revoked token is not rotated out: it is revoked.
func (t *Token) RotatedOut(now time.Time) bool {
	return t.st.issued && !t.st.revoked && !t.st.rotatedTo.IsZero() &&
		!t.st.expiresAt.IsZero() && !now.Before(t.st.expiresAt)
}

// RotatedTo returns the token that replaced this one, if it was rotated.
func (t *Token) RotatedTo() (id TokenID, ok bool) { return t.st.rotatedTo, !t.st.rotatedTo.IsZero() }

// Changes returns the events recorded by commands and not yet marked stored,
// oldest first, in a new slice.
func (t *Token) Changes() []Envelope { return slices.Clone(t.changes) }

// MarkStored records that the pending Changes were appended at the given
// stream sequences, one per change and in order, and clears them: Version
// (and IssuedSequence, if the issued event was among them) take the stored
// sequences. The sequences must increase and follow Version; otherwise
// nothing changes and the error wraps ErrInvalidArgument.
func (t *Token) MarkStored(sequences ...uint64) error {
	if err := checkStored(len(t.changes), t.st.version, sequences); err != nil {
		return fmt.Errorf("token %s: %w", t.st.id, err)
	}
	for i, seq := range sequences {
		switch t.changes[i].Type {
		case TypeTokenIssued:
			t.st.issuedSequence = seq
		case TypeTokenRevoked:
			t.st.revokedSequence = seq
		}
	}
	if n := len(sequences); n > 0 {
		t.st.version = sequences[n-1]
	}
	t.changes = nil
	return nil
}

func checkStored(pending int, version uint64, sequences []uint64) error {
	if len(sequences) != pending {
		return fmt.Errorf("%w: %d sequences for %d pending events", ErrInvalidArgument, len(sequences), pending)
	}
	prev := version
	for _, seq := range sequences {
		if seq <= prev {
			return fmt.Errorf("%w: sequence %d does not follow %d", ErrInvalidArgument, seq, prev)
		}
		prev = seq
	}
	return nil
}

// Status returns what the token is at now: revoked if it or (when owner is
// given) an owner-wide revocation covering it revoked it, else expired if
// now is at or after its expiry, else active. A token not issued has no
// status ("").
func (t *Token) Status(now time.Time, owner *Owner) Status {
	switch t.Check(now, owner) {
	case nil:
		return StatusActive
	case ErrTokenExpired:
		return StatusExpired
	case ErrNotFound:
		return ""
	default:
		return StatusRevoked
	}
}

// Check reports whether the token may be used at now: nil, or exactly one of
// the sentinels ErrTokenRevoked (revoked by itself, or, when owner is
// given, a revocation of its rotation family covers it; see
// Owner.FamilyRevocationOf), ErrOwnerRevoked (owner, if given, covers it;
// see Owner.Covers), ErrTokenExpired (now is at or after the expiry) or
// ErrNotFound (the token was never issued), in that order of precedence. It
// does not allocate.
func (t *Token) Check(now time.Time, owner *Owner) error {
	switch {
	case t == nil || !t.st.issued:
		return ErrNotFound
	case t.st.revoked, owner.revokesFamily(t):
		return ErrTokenRevoked
	case owner != nil && owner.Covers(t):
		return ErrOwnerRevoked
	case !t.st.expiresAt.IsZero() && !now.Before(t.st.expiresAt):
		return ErrTokenExpired
	}
	return nil
}

// Extends reports whether at would be a later expiry than the current one;
// nil (never expires) is later than any instant. Setting the same expiry
// again does not extend. Who may extend is a matter of authorization.
func (t *Token) Extends(at *time.Time) bool {
	cur, expires := t.ExpiresAt()
	switch {
	case !expires:
		return false
	case at == nil:
		return true
	default:
		return NormalizeTime(*at).After(cur)
	}
}

// SetExpiry sets the token's expiry to at, nil meaning never. Policy p
// bounds it: at must be after now; an api token's expiry at most
// CreatedAt + MaxLifetime, and never only if AllowNeverExpires; a session's
// at most its AbsoluteExpiresAt, and never is refused. A revoked token
// refuses (ErrTokenRevoked). Records TokenExpirySet{Reason: set}. Errors
// wrap ErrNotFound, ErrInvalidArgument, ErrPolicyViolation or
// ErrTokenRevoked.
func (t *Token) SetExpiry(p Policy, at *time.Time, m Meta, now time.Time) error {
	if err := t.setExpiry(p, at, m, now); err != nil {
		return t.wrap("set expiry of", err)
	}
	return nil
}

func (t *Token) setExpiry(p Policy, at *time.Time, m Meta, now time.Time) error {
	if err := t.exists(); err != nil {
		return err
	}
	if err := checkCommon(p, m, now); err != nil {
		return err
	}
	if t.st.revoked {
		return ErrTokenRevoked
	}
	now = NormalizeTime(now)
	if at == nil {
		switch {
		case t.st.kind == KindSession:
			return policyViolation("sessions always expire")
		case !p.AllowNeverExpires:
			return policyViolation("tokens that never expire are not allowed")
		}
		return t.record(TokenExpirySet{Reason: ExpirySetByCaller}, m, now)
	}
	if !validEventTime(*at) {
		return fmt.Errorf("%w: expiry out of range", ErrInvalidArgument)
	}
	exp := NormalizeTime(*at)
	latest, what := t.st.createdAt.Add(p.MaxLifetime), "the max lifetime"
	if t.st.kind == KindSession {
		latest, what = t.st.absoluteExpiresAt, "the session's absolute expiry"
	}
	if err := checkExpiryWindow(exp, now, latest, what); err != nil {
		return err
	}
	return t.record(TokenExpirySet{ExpiresAt: &exp, Reason: ExpirySetByCaller}, m, now)
}

// Revoke revokes the token for reason (0 to MaxReasonLen bytes). Revoking a
// revoked token records nothing and succeeds: revocation is idempotent and
// terminal. Errors wrap ErrNotFound or ErrInvalidArgument.
func (t *Token) Revoke(reason string, m Meta, now time.Time) error {
	if err := t.revoke(reason, m, now); err != nil {
		return t.wrap("revoke", err)
	}
	return nil
}

func (t *Token) revoke(reason string, m Meta, now time.Time) error {
	if err := t.exists(); err != nil {
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
	if t.st.revoked {
		return nil
	}
	return t.record(TokenRevoked{Reason: reason}, m, now)
}

// Rotate replaces old with a new token of the same owner, name, scopes, kind
// and (for sessions) idle timeout, whose RotatedFrom is old's id. The new
// token's lifetime follows p exactly as an IssueToken without a requested
// expiry: a rotation is a fresh issue, and never inherits a lifetime the
// policy would no longer grant (nor a never-expiring one). notAfter, if
// set, caps that lifetime as IssueRequest.NotAfter does (the ledger passes
// the expiry of a caller without ledger:admin, so that rotating never
// extends such a caller's life). old records
// TokenExpirySet{Reason: rotated, RotatedTo: new id} with an expiry of
// now + grace, or its current expiry if that is earlier: rotation never
// extends.
//
// old must be usable at now (Check): a revoked, owner-revoked or expired
// token cannot be rotated into a fresh one (ErrTokenRevoked,
// ErrOwnerRevoked, ErrTokenExpired), and a token already rotated cannot be
// rotated again (ErrPolicyViolation), so one token never has two
// successors. owner and entropy are as for IssueToken. On error neither
// token records anything; a bound that leaves no lifetime is
// ErrLifetimeBound.
func Rotate(p Policy, owner *Owner, old *Token, grace time.Duration, notAfter *time.Time, m Meta, now time.Time, entropy io.Reader) (*Token, Secret, error) {
	t, secret, err := rotate(p, owner, old, grace, notAfter, m, now, entropy)
	if err != nil {
		return nil, Secret{}, old.wrap("rotate", err)
	}
	return t, secret, nil
}

func rotate(p Policy, owner *Owner, old *Token, grace time.Duration, notAfter *time.Time, m Meta, now time.Time, entropy io.Reader) (*Token, Secret, error) {
	if err := old.exists(); err != nil {
		return nil, Secret{}, err
	}
	if grace < 0 {
		return nil, Secret{}, fmt.Errorf("%w: grace %s is negative", ErrInvalidArgument, grace)
	}
	if err := checkCommon(p, m, now); err != nil {
		return nil, Secret{}, err
	}
	now = NormalizeTime(now)
	if err := old.Check(now, owner); err != nil {
		return nil, Secret{}, err
	}
	if to, rotated := old.RotatedTo(); rotated {
		return nil, Secret{}, policyViolation("already rotated to %s", to)
	}
	from := old.st.id
	req := IssueRequest{
		Owner:       old.st.owner,
		Name:        old.st.name,
		Scopes:      old.st.scopes,
		Kind:        old.st.kind,
		IdleTimeout: old.st.idleTimeout,
		RotatedFrom: &from,
		NotAfter:    notAfter,
		family:      ptrTo(old.Family()),
	}
	t, secret, err := issueToken(p, owner, req, m, now, entropy)
	if err != nil {
		return nil, Secret{}, err
	}
	exp := NormalizeTime(now.Add(grace))
	if cur, ok := old.ExpiresAt(); ok && cur.Before(exp) {
		exp = cur
	}
	newID := t.ID()
	if err := old.record(TokenExpirySet{ExpiresAt: &exp, Reason: ExpiryRotated, RotatedTo: &newID}, m, now); err != nil {
		return nil, Secret{}, err
	}
	return t, secret, nil
}

// RecordUse records that the token was used count times between first and
// last, from clientAddr (0 to MaxClientAddrLen bytes). It is allowed on a
// revoked or expired token — it reports uses that happened before the
// revocation was seen — and it changes only LastUsedAt and UseCount, never
// the status nor the expiry (a session slides only by ExtendSession). Errors
// wrap ErrNotFound or ErrInvalidArgument.
func (t *Token) RecordUse(count uint64, first, last time.Time, clientAddr string, m Meta, now time.Time) error {
	if err := t.recordUse(count, first, last, clientAddr, m, now); err != nil {
		return t.wrap("record use of", err)
	}
	return nil
}

func (t *Token) recordUse(count uint64, first, last time.Time, clientAddr string, m Meta, now time.Time) error {
	if err := t.exists(); err != nil {
		return err
	}
	switch {
	case count == 0:
		return fmt.Errorf("%w: use count is zero", ErrInvalidArgument)
	case !validEventTime(first) || !validEventTime(last):
		return fmt.Errorf("%w: use time out of range", ErrInvalidArgument)
	case last.Before(first):
		return fmt.Errorf("%w: last use before first use", ErrInvalidArgument)
	}
	if err := validateText("client address", clientAddr, 0, MaxClientAddrLen); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return err
	}
	if err := checkNow(now); err != nil {
		return err
	}
	return t.record(TokenUsed{
		Count:      count,
		FirstAt:    NormalizeTime(first),
		LastAt:     NormalizeTime(last),
		ClientAddr: clientAddr,
	}, m, now)
}

// ExtendSession slides a session after use: its expiry becomes lastUse +
// IdleTimeout, never later than AbsoluteExpiresAt. It records
// TokenExpirySet{Reason: session_extended} and reports true only when that
// moves the expiry by more than SessionSlideStep(step, IdleTimeout):
// debouncing, so a busy session records an extension at most about once
// per step, or twice per idle timeout for a session whose idle timeout is
// not more than twice the step, which thereby still slides. It never revives: a session
// whose expiry is at or before now, or that was rotated, records nothing. A
// lastUse after now counts as now, so a skewed clock cannot push expiry
// ahead. Only sessions slide: an api token is refused (ErrInvalidArgument),
// a revoked session too (ErrTokenRevoked). Errors also wrap ErrNotFound.
func (t *Token) ExtendSession(lastUse time.Time, step time.Duration, m Meta, now time.Time) (bool, error) {
	extended, err := t.extendSession(lastUse, step, m, now)
	if err != nil {
		return false, t.wrap("extend session", err)
	}
	return extended, nil
}

func (t *Token) extendSession(lastUse time.Time, step time.Duration, m Meta, now time.Time) (bool, error) {
	if err := t.exists(); err != nil {
		return false, err
	}
	switch {
	case t.st.kind != KindSession:
		return false, fmt.Errorf("%w: only sessions slide, this is an %s token", ErrInvalidArgument, t.st.kind)
	case step < 0:
		return false, fmt.Errorf("%w: step %s is negative", ErrInvalidArgument, step)
	case !validEventTime(lastUse):
		return false, fmt.Errorf("%w: last use out of range", ErrInvalidArgument)
	}
	if err := m.Validate(); err != nil {
		return false, err
	}
	if err := checkNow(now); err != nil {
		return false, err
	}
	if t.st.revoked {
		return false, ErrTokenRevoked
	}
	now, lastUse = NormalizeTime(now), NormalizeTime(lastUse)
	cur := t.st.expiresAt
	if cur.IsZero() || !cur.After(now) || !t.st.rotatedTo.IsZero() {
		return false, nil
	}
	if lastUse.After(now) {
		lastUse = now
	}
	next := lastUse.Add(t.st.idleTimeout)
	if capAt := t.st.absoluteExpiresAt; !capAt.IsZero() && next.After(capAt) {
		next = capAt
	}
	if !next.After(cur.Add(SessionSlideStep(step, t.st.idleTimeout))) {
		return false, nil
	}
	if err := t.record(TokenExpirySet{ExpiresAt: &next, Reason: ExpirySessionExtended}, m, now); err != nil {
		return false, err
	}
	return true, nil
}

func (t *Token) exists() error {
	if t == nil || !t.st.issued {
		return ErrNotFound
	}
	return nil
}

func (t *Token) wrap(op string, err error) error {
	if t == nil || !t.st.issued {
		return fmt.Errorf("%s token: %w", op, err)
	}
	return fmt.Errorf("%s token %s: %w", op, t.st.idText, err)
}

// record wraps data in an envelope at now, applies it and keeps it pending.
func (t *Token) record(data Event, m Meta, now time.Time) error {
	e, err := newEnvelope(AggregateToken, t.st.idText, data, m, now)
	if err != nil {
		return err
	}
	t.Apply(e)
	t.changes = append(t.changes, e)
	return nil
}

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
		d, ok := payloadAs[TokenIssued](e.Data)
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
		if d, ok := payloadAs[TokenUsed](e.Data); ok {
			t.applyUsed(d)
		}
	case TypeTokenExpirySet:
		if d, ok := payloadAs[TokenExpirySet](e.Data); ok {
			t.applyExpirySet(d)
		}
	case TypeTokenRevoked:
		if d, ok := payloadAs[TokenRevoked](e.Data); ok {
			t.applyRevoked(e, d)
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

// payloadAs returns ev as a T, accepting a non-nil *T too.
func payloadAs[T Event](ev Event) (T, bool) {
	switch d := any(ev).(type) {
	case T:
		return d, true
	case *T:
		if d != nil {
			return *d, true
		}
	}
	var zero T
	return zero, false
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
