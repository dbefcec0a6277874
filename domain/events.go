package domain

import (
	"errors"
	"fmt"
	"time"
)

// EventType is the stable, versioned name of a kind of event as it is
// stored. Changing a payload in a way old readers cannot handle means a new
// name (".v2"), never editing the old one.
type EventType string

// The event types of tokenledger.
const (
	TypeTokenIssued        EventType = "token.issued.v1"
	TypeTokenUsed          EventType = "token.used.v1"
	TypeTokenExpirySet     EventType = "token.expiry_set.v1"
	TypeTokenRevoked       EventType = "token.revoked.v1"
	TypeOwnerTokensRevoked EventType = "owner.tokens_revoked.v1"
	TypeOwnerFamilyRevoked EventType = "owner.family_revoked.v1"
	TypeTokenCIDRsSet      EventType = "token.cidrs_set.v1"
)

// Event is the payload of one recorded fact. Implementations are plain data.
type Event interface {
	// EventType returns the payload's registered name.
	EventType() EventType
}

// TokenKind says how a token's lifetime behaves.
type TokenKind string

const (
	// KindAPI tokens have a fixed lifetime; use never extends it.
	KindAPI TokenKind = "api"
	// KindSession tokens slide: each use may push expiry to last use plus
	// the idle timeout, never past the absolute cap set at issue.
	KindSession TokenKind = "session"
)

// Valid reports whether k is a known kind.
func (k TokenKind) Valid() bool { return k == KindAPI || k == KindSession }

// TokenIssued records a new token. It carries the SHA-256 of the secret,
// never the secret itself.
type TokenIssued struct {
	Owner      OwnerID    `json:"owner"`
	Name       string     `json:"name"`
	Scopes     []string   `json:"scopes"`
	Kind       TokenKind  `json:"kind"`
	SecretHash SecretHash `json:"secret_sha256"`
	// ExpiresAt is the expiry in force after issue; nil means the token
	// does not expire.
	ExpiresAt *time.Time `json:"expires_at"`
	// IdleTimeout is how far each use pushes a session's expiry; zero for
	// api tokens.
	IdleTimeout Seconds `json:"idle_timeout,omitempty"`
	// AbsoluteExpiresAt caps a session's expiry whatever its use; nil for
	// api tokens.
	AbsoluteExpiresAt *time.Time `json:"absolute_expires_at,omitempty"`
	// RotatedFrom names the token this one replaces, if it was issued by a
	// rotation.
	RotatedFrom *TokenID `json:"rotated_from,omitempty"`
	// Family names the first token of the rotation chain this one belongs
	// to, if it was issued by a rotation; a token not issued by a rotation
	// is the first of its own family. Tokens rotated before families were
	// recorded lack it.
	Family *TokenID `json:"family,omitempty"`
	// AllowedCIDRs limits the networks the token may be used from, in
	// canonical form (see NormalizeCIDRs); absent means any network.
	AllowedCIDRs []string `json:"allowed_cidrs,omitempty"`
}

// EventType implements Event.
func (TokenIssued) EventType() EventType { return TypeTokenIssued }

// TokenUsed records that a token was used Count times between FirstAt and
// LastAt. Validators wrote one per token and flush interval before they
// wrote a UsageBatch per flush instead; the usage streams still hold them,
// and every reader of usage reads both (see Uses).
type TokenUsed struct {
	Count      uint64    `json:"count"`
	FirstAt    time.Time `json:"first_at"`
	LastAt     time.Time `json:"last_at"`
	ClientAddr string    `json:"client_addr,omitempty"`
}

// EventType implements Event.
func (TokenUsed) EventType() EventType { return TypeTokenUsed }

// ExpiryReason says why a token's expiry changed.
type ExpiryReason string

const (
	// ExpirySetByCaller: an owner or admin set the expiry explicitly.
	ExpirySetByCaller ExpiryReason = "set"
	// ExpiryRotated: the token was rotated and expires after the grace.
	ExpiryRotated ExpiryReason = "rotated"
	// ExpirySessionExtended: a session slid forward because it was used.
	ExpirySessionExtended ExpiryReason = "session_extended"
)

// TokenExpirySet records a new expiry for a token.
type TokenExpirySet struct {
	// ExpiresAt is the new expiry; nil means the token no longer expires.
	ExpiresAt *time.Time   `json:"expires_at"`
	Reason    ExpiryReason `json:"reason"`
	// RotatedTo names the replacement when Reason is ExpiryRotated.
	RotatedTo *TokenID `json:"rotated_to,omitempty"`
}

// EventType implements Event.
func (TokenExpirySet) EventType() EventType { return TypeTokenExpirySet }

// TokenCIDRsSet records new networks a token may be used from, replacing
// those it had: AllowedCIDRs in canonical form (see NormalizeCIDRs), empty
// meaning any network.
type TokenCIDRsSet struct {
	AllowedCIDRs []string `json:"allowed_cidrs"`
}

// EventType implements Event.
func (TokenCIDRsSet) EventType() EventType { return TypeTokenCIDRsSet }

// ReasonRotatedSecretReused is the reason of the revocation of a rotation
// family because a rotated-out secret of the family was presented after
// its grace (OwnerFamilyRevoked).
const ReasonRotatedSecretReused = "rotated_secret_reused"

// TokenRevoked records that a token was revoked. Revocation is terminal.
type TokenRevoked struct {
	Reason string `json:"reason,omitempty"`
	// Reuse tells which rotated-out secret was presented, and where, on
	// the token.revoked events with ReasonRotatedSecretReused that revoked
	// a family one token at a time before OwnerFamilyRevoked existed. New
	// family revocations are OwnerFamilyRevoked events.
	Reuse *SecretReuse `json:"reuse,omitempty"`
	// Report is the secret scanner's report of the token's secret found
	// where it should not be, on a revocation with ReasonLeaked.
	Report *LeakReport `json:"report,omitempty"`
}

// SecretReuse is a presentation of a rotated-out secret after its grace:
// the token whose secret it was (never the secret), the client address
// and the route it was presented at.
type SecretReuse struct {
	Token      TokenID `json:"token"`
	ClientAddr string  `json:"client_addr,omitempty"`
	Route      string  `json:"route,omitempty"`
}

// EventType implements Event.
func (TokenRevoked) EventType() EventType { return TypeTokenRevoked }

// OwnerTokensRevoked revokes, with one event, every token of Owner whose
// issued event precedes this event in the stream. Until, if set, also
// refuses new tokens for the owner before that instant (a ban).
type OwnerTokensRevoked struct {
	Owner OwnerID `json:"owner"`
	// RevokedBefore is the instant of the revocation, for display; which
	// tokens it covers is decided by stream order, not by this time.
	RevokedBefore time.Time  `json:"revoked_before"`
	Until         *time.Time `json:"until,omitempty"`
	Reason        string     `json:"reason,omitempty"`
}

// EventType implements Event.
func (OwnerTokensRevoked) EventType() EventType { return TypeOwnerTokensRevoked }

// OwnerFamilyRevoked revokes, with one event, every token of Owner's
// rotation family Family whose issued event precedes this event in the
// stream: the token Family itself (the first of the chain) and every token
// whose token.issued names Family as its family (see TokenIssued.Family).
// It is recorded when a rotated-out secret of the family was presented
// after its grace: Reason is then ReasonRotatedSecretReused and Reuse
// tells which token's secret was presented, from where and at which route
// (never the secret).
type OwnerFamilyRevoked struct {
	Owner  OwnerID      `json:"owner"`
	Family TokenID      `json:"family"`
	Reason string       `json:"reason"`
	Reuse  *SecretReuse `json:"reuse,omitempty"`
}

// EventType implements Event.
func (OwnerFamilyRevoked) EventType() EventType { return TypeOwnerFamilyRevoked }

// Valid reports whether r is a known reason.
func (r ExpiryReason) Valid() bool {
	return r == ExpirySetByCaller || r == ExpiryRotated || r == ExpirySessionExtended
}

// The normalize methods are called by Registry.Unmarshal after decoding a
// payload: they bring times into the form NormalizeTime gives and refuse
// payloads no command can have recorded, so corrupt history is reported as
// ErrCorruptEvent at decoding instead of surfacing as odd state later. They
// check structure only, never policy, which may change after an event was
// stored.

func (e *TokenIssued) normalize() error {
	if err := ValidateOwner(e.Owner); err != nil {
		return err
	}
	if !e.Kind.Valid() {
		return fmt.Errorf("unknown token kind %q", e.Kind)
	}
	if e.SecretHash.IsZero() {
		return errors.New("no secret hash")
	}
	if e.Scopes == nil {
		e.Scopes = []string{}
	}
	if e.RotatedFrom != nil && e.RotatedFrom.IsZero() {
		return errors.New("zero rotated_from token id")
	}
	if e.Family != nil && e.Family.IsZero() {
		return errors.New("zero family token id")
	}
	if err := checkStoredCIDRs(e.AllowedCIDRs); err != nil {
		return err
	}
	var err error
	if e.ExpiresAt, err = normalizeEventTimePtr("expires_at", e.ExpiresAt); err != nil {
		return err
	}
	if e.AbsoluteExpiresAt, err = normalizeEventTimePtr("absolute_expires_at", e.AbsoluteExpiresAt); err != nil {
		return err
	}
	switch {
	case e.IdleTimeout > maxSeconds:
		return fmt.Errorf("idle timeout %d s out of range", e.IdleTimeout)
	case e.Kind == KindSession && (e.IdleTimeout == 0 || e.AbsoluteExpiresAt == nil || e.ExpiresAt == nil):
		return errors.New("a session needs an expiry, an absolute expiry and an idle timeout")
	case e.Kind == KindAPI && (e.IdleTimeout != 0 || e.AbsoluteExpiresAt != nil):
		return errors.New("an api token has no idle timeout nor absolute expiry")
	}
	return nil
}

func (e *TokenUsed) normalize() error {
	if e.Count == 0 {
		return errors.New("use count is zero")
	}
	var err error
	if e.FirstAt, err = normalizeEventTime("first_at", e.FirstAt); err != nil {
		return err
	}
	if e.LastAt, err = normalizeEventTime("last_at", e.LastAt); err != nil {
		return err
	}
	if e.LastAt.Before(e.FirstAt) {
		return errors.New("last use before first use")
	}
	return nil
}

func (e *TokenExpirySet) normalize() error {
	if !e.Reason.Valid() {
		return fmt.Errorf("unknown expiry reason %q", e.Reason)
	}
	if (e.Reason == ExpiryRotated) != (e.RotatedTo != nil) {
		return errors.New("rotated_to must be given exactly when the reason is rotated")
	}
	if e.RotatedTo != nil && e.RotatedTo.IsZero() {
		return errors.New("zero rotated_to token id")
	}
	var err error
	e.ExpiresAt, err = normalizeEventTimePtr("expires_at", e.ExpiresAt)
	return err
}

func (e *TokenCIDRsSet) normalize() error {
	if e.AllowedCIDRs == nil {
		e.AllowedCIDRs = []string{}
	}
	return checkStoredCIDRs(e.AllowedCIDRs)
}

func (e *TokenRevoked) normalize() error {
	if e.Reuse != nil && e.Reuse.Token.IsZero() {
		return errors.New("zero reused token id")
	}
	if e.Report != nil && e.Report.Source == "" {
		return errors.New("a leak report without a source")
	}
	return nil
}

func (e *OwnerTokensRevoked) normalize() error {
	if err := ValidateOwner(e.Owner); err != nil {
		return err
	}
	var err error
	if e.RevokedBefore, err = normalizeEventTime("revoked_before", e.RevokedBefore); err != nil {
		return err
	}
	e.Until, err = normalizeEventTimePtr("until", e.Until)
	return err
}

func (e *OwnerFamilyRevoked) normalize() error {
	if err := ValidateOwner(e.Owner); err != nil {
		return err
	}
	if e.Family.IsZero() {
		return errors.New("zero family token id")
	}
	if e.Reuse != nil && e.Reuse.Token.IsZero() {
		return errors.New("zero reused token id")
	}
	return nil
}

// maxSeconds is the largest Seconds that converts to a time.Duration.
const maxSeconds = Seconds(1<<63-1) / Seconds(time.Second)

// validEventTime reports whether t, in UTC, is a set instant that RFC 3339
// (and so an event's JSON) can represent.
func validEventTime(t time.Time) bool {
	y := t.UTC().Year()
	return !t.IsZero() && y >= 1 && y <= 9999
}

func normalizeEventTime(field string, t time.Time) (time.Time, error) {
	if !validEventTime(t) {
		return time.Time{}, fmt.Errorf("%s: time %s out of range", field, t.Format(time.RFC3339))
	}
	return NormalizeTime(t), nil
}

func normalizeEventTimePtr(field string, t *time.Time) (*time.Time, error) {
	if t == nil {
		return nil, nil
	}
	n, err := normalizeEventTime(field, *t)
	if err != nil {
		return nil, err
	}
	// Payloads are normalized once, right after decoding: the time is
	// theirs alone.
	*t = n
	return t, nil
}
