package domain

import (
	"fmt"
	"io"
	"time"
)

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
	cidrs, err := NormalizeCIDRs(req.AllowedCIDRs)
	if err != nil {
		return nil, Secret{}, err
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
		Owner:        req.Owner,
		Name:         req.Name,
		Scopes:       scopes,
		Kind:         kind,
		SecretHash:   secret.Hash(),
		ExpiresAt:    timePtr(life.expiresAt),
		IdleTimeout:  SecondsOf(life.idle),
		RotatedFrom:  req.RotatedFrom,
		Family:       req.family,
		AllowedCIDRs: CIDRStrings(cidrs),
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
		// A rotation must not lift the token's network limit.
		AllowedCIDRs: CIDRStrings(old.st.cidrs),
		family:       ptrTo(old.Family()),
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
