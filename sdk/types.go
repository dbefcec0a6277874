package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// Token is a token's metadata as the API shows it: never its secret nor the
// secret's hash. Times are RFC 3339 in UTC; a null ExpiresAt means the token
// does not expire, a null LastUsedAt that it was never used.
type Token struct {
	ID     string   `json:"id"`
	Owner  string   `json:"owner"`
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	// Kind is "api" or "session".
	Kind string `json:"kind"`
	// Status is "active", "expired" or "revoked", as of the answer.
	Status    string     `json:"status"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at"`
	// IdleTimeout is a session's idle timeout; absent for api tokens.
	IdleTimeout *Duration `json:"idle_timeout,omitempty"`
	// AbsoluteExpiresAt is the cap a session's sliding expiry can never
	// pass; absent for api tokens.
	AbsoluteExpiresAt *time.Time `json:"absolute_expires_at,omitempty"`
	// RevokedAt and RevokedReason tell the token's revocation: its own
	// when it was revoked by itself (a revocation of its rotation family,
	// reason rotated_secret_reused, counts as its own), else the
	// owner-wide revocation that revoked it (OwnerRevoked); both are null
	// while it is not revoked.
	RevokedAt     *time.Time `json:"revoked_at"`
	RevokedReason *string    `json:"revoked_reason"`
	// OwnerRevoked reports that an owner-wide revocation covers the token.
	OwnerRevoked bool       `json:"owner_revoked"`
	LastUsedAt   *time.Time `json:"last_used_at"`
	UseCount     uint64     `json:"use_count"`
	// UsagePartial is set when the server could not read the usage its
	// read model counts: LastUsedAt is then the latest use the answering
	// node saw (null if none) and UseCount only the uses the token's
	// lifecycle history records (usually 0), both lower bounds. Everything
	// else in the answer is complete.
	UsagePartial bool `json:"usage_partial,omitempty"`
	// RotatedFrom names the token this one replaced; RotatedTo the token
	// that replaced this one.
	RotatedFrom *string `json:"rotated_from,omitempty"`
	RotatedTo   *string `json:"rotated_to,omitempty"`
	// Family names the first token of the rotation chain, for a token
	// that was rotated or issued by a rotation (absent otherwise).
	// Presenting a rotated-out secret of the family after its
	// grace revokes every token of the family.
	Family *string `json:"family,omitempty"`
	// AllowedCIDRs are the networks the token may be used from; absent
	// means any network.
	AllowedCIDRs []string `json:"allowed_cidrs,omitempty"`
	// LastUsedIPs are the last distinct client addresses the token was
	// used from (at most five), latest first, each with its last use;
	// absent when none was recorded.
	LastUsedIPs []UsedAddr `json:"last_used_ips,omitempty"`
}

// UsedAddr is a client address a token was used from and its last use
// from there.
type UsedAddr struct {
	Addr       string    `json:"addr"`
	LastUsedAt time.Time `json:"last_used_at"`
}

// IssueRequest is the body of POST /v1/tokens. At most one of ExpiresIn,
// ExpiresAt and NeverExpires may be set; none means the policy's default
// lifetime.
type IssueRequest struct {
	// Owner is whose token it is; only ledger:admin may name an owner
	// other than the caller's own. Empty means the caller's owner.
	Owner  string   `json:"owner,omitempty"`
	Name   string   `json:"name,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
	// Kind is "api" (the default) or "session".
	Kind         string     `json:"kind,omitempty"`
	ExpiresIn    *Duration  `json:"expires_in,omitempty"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty"`
	NeverExpires bool       `json:"never_expires,omitempty"`
	// IdleTimeout is a session's idle timeout (sessions only); absent
	// means the policy's.
	IdleTimeout *Duration `json:"idle_timeout,omitempty"`
	// AllowedCIDRs limits the networks the token may be used from (CIDR
	// prefixes or single addresses); absent means any network.
	AllowedCIDRs []string `json:"allowed_cidrs,omitempty"`
}

// IssuedToken is the answer to an issue: the secret, shown this once, and
// the new token's metadata. The metadata's fields are promoted (it.ID,
// it.Owner) and on the wire they sit beside the secret's "token" field.
type IssuedToken struct {
	// TokenMetadata is the new token: its id, owner, scopes, expiry.
	TokenMetadata
	// Secret is the token's secret. It is never shown again.
	Secret string `json:"token"`
}

// TokenMetadata is a Token as IssuedToken holds it next to the secret: the
// name says that it.TokenMetadata is the token's description while
// it.Secret is its secret.
type TokenMetadata = Token

// RotatedToken is the answer to a rotation: the new token, as for an issue,
// and the instant the old one expires.
type RotatedToken struct {
	IssuedToken
	PreviousExpiresAt time.Time `json:"previous_expires_at"`
}

// SetExpiryRequest is the body of PATCH /v1/tokens/{id}. A nil ExpiresAt
// asks for no expiry at all; the field is always sent.
type SetExpiryRequest struct {
	ExpiresAt *time.Time `json:"expires_at"`
}

// SetAllowedCIDRsRequest is the body of PATCH /v1/tokens/{id} that sets
// the networks a token may be used from; empty means any network.
type SetAllowedCIDRsRequest struct {
	AllowedCIDRs []string `json:"allowed_cidrs"`
}

// UsageOptions selects a usage series: Granularity "hour" (the default)
// or "day", and the buckets from From to To (zero: the server's defaults,
// a day or thirty days up to now).
type UsageOptions struct {
	Granularity string
	From, To    time.Time
}

// RevokeRequest is the optional body of DELETE /v1/tokens/{id}.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
}

// RotateRequest is the optional body of POST /v1/tokens/{id}/rotate.
type RotateRequest struct {
	// Grace is how long the old token stays valid; absent or zero means it
	// expires at once.
	Grace *Duration `json:"grace,omitempty"`
}

// TokenPage is one page of GET /v1/tokens. NextCursor is absent on the last
// page.
type TokenPage struct {
	Items      []Token `json:"items"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// ListOptions are the filters and paging of GET /v1/tokens. Zero fields do
// not filter.
type ListOptions struct {
	Owner string
	// Status is "active", "expired" or "revoked".
	Status         string
	UnusedFor      time.Duration
	ExpiringWithin time.Duration
	Limit          int
	Cursor         string
}

// Event is one stored event of a token's or owner's history, as GET
// /v1/tokens/{id}/events shows it. Data is the event's payload without the
// secret's hash.
type Event struct {
	Sequence      uint64          `json:"sequence"`
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Time          time.Time       `json:"time"`
	Actor         string          `json:"actor"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	AggregateKind string          `json:"aggregate_kind"`
	AggregateID   string          `json:"aggregate_id"`
	Schema        int             `json:"schema"`
	Data          json.RawMessage `json:"data"`
}

// EventList is a history: the answer of GET /v1/tokens/{id}/events and GET
// /v1/owners/{owner}/events, oldest first.
type EventList struct {
	Items []Event `json:"items"`
	// Sequence is the lifecycle stream sequence the history is complete up
	// to: every event of the history stored at or before it is in Items,
	// none stored after it.
	Sequence uint64 `json:"sequence"`
}

// OwnerRevokeRequest is the optional body of POST /v1/owners/{owner}/revoke.
type OwnerRevokeRequest struct {
	// Until, if set, must be in the future: until then the owner may get
	// no new token.
	Until  *time.Time `json:"until,omitempty"`
	Reason string     `json:"reason,omitempty"`
}

// OwnerRevocation is the answer of POST /v1/owners/{owner}/revoke.
type OwnerRevocation struct {
	Owner         string     `json:"owner"`
	RevokedBefore time.Time  `json:"revoked_before"`
	Until         *time.Time `json:"until"`
	Reason        string     `json:"reason,omitempty"`
}

// SecretRequest is the JSON form of the bodies of POST /v1/revoke and POST
// /v1/introspect (both also take the form field token=). The server reads
// only "token", which must be given once; it ignores every other member
// (RFC 6749 §3.2), such as the client_id and client_secret of clients that
// authenticate in the body.
type SecretRequest struct {
	Token string `json:"token"`
	// TokenTypeHint is accepted and ignored (RFC 7009, RFC 7662).
	TokenTypeHint string `json:"token_type_hint,omitempty"`
}

// Introspection is the answer of POST /v1/introspect (RFC 7662). An inactive
// token is exactly {"active": false}.
type Introspection struct {
	Active    bool   `json:"active"`
	Subject   string `json:"sub,omitempty"`
	Scope     string `json:"scope,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	// Exp and Iat are seconds since the Unix epoch; Exp is absent for a
	// token that does not expire.
	Exp int64  `json:"exp,omitempty"`
	Iat int64  `json:"iat,omitempty"`
	JTI string `json:"jti,omitempty"`
}

// ErrorBody is the body of every error answer:
// {"error": {"code": "...", "message": "..."}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong: Code is stable and meant for programs
// (see the Code constants), Message is meant for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes of ErrorDetail.
const (
	CodeInvalidRequest        = "invalid_request"         // 400: the request is malformed or a value is invalid
	CodePolicyViolation       = "policy_violation"        // 400: the request breaks the issuing policy
	CodeUnauthorized          = "unauthorized"            // 401: no credentials, or they are not a valid token
	CodeInvalidToken          = "invalid_token"           // 401 of /v1/auth: the presented token is not valid
	CodeForbidden             = "forbidden"               // 403: the caller may not do this
	CodeInsufficientScope     = "insufficient_scope"      // 403 of /v1/auth: the token lacks the required scope
	CodeScopeRequired         = "scope_required"          // 400 of /v1/auth: the check names no scope and the server requires one
	CodeIPNotAllowed          = "ip_not_allowed"          // 403: the token may not be used from the client's address (allowed_cidrs)
	CodeOwnerBlocked          = "owner_blocked"           // 403: the owner may get no new token until a time
	CodeLifetimeExceedsCaller = "lifetime_exceeds_caller" // 403: without ledger:admin, the token asked for would outlive the caller's own
	CodeNotFound              = "not_found"               // 404
	CodeMethodNotAllowed      = "method_not_allowed"      // 405
	CodeConflict              = "conflict"                // 409: the token's state forbids it, or concurrent changes kept colliding
	CodePayloadTooLarge       = "payload_too_large"       // 413
	CodeUnsupportedMediaType  = "unsupported_media_type"  // 415
	CodeUnavailable           = "unavailable"             // 503: try again later (Retry-After)
	CodeInternal              = "internal"                // 500
)

// Duration is a length of time in JSON: written as a Go duration string
// ("720h0m0s"), read from a duration string as ParseDuration reads it
// ("720h", "90m", "30d", "2w", "1d12h") or a whole number of seconds
// (3600).
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string (days and weeks included) or a
// whole number of seconds.
// Fractions, exponents and values beyond time.Duration's range are refused.
func (d *Duration) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	v, err := parseSeconds(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ParseDuration reads a length of time as query parameters and flags take
// it: a Go duration ("720h", "1h30m"), days and weeks alone or with Go's
// units ("30d", "2w", "1d12h"; a day is 24 hours), or a whole number of
// seconds ("3600"). It is the server's own parser (domain.ParseDuration).
func ParseDuration(s string) (time.Duration, error) {
	return domain.ParseDuration(s)
}

func parseSeconds(s string) (time.Duration, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("duration %s: want a duration string such as \"30d\" or \"720h\", or whole seconds", s)
	}
	if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
		return 0, fmt.Errorf("duration %d seconds is out of range", n)
	}
	return time.Duration(n) * time.Second, nil
}

// UsageSeries is the answer of GET /v1/tokens/{id}/usage: a token's uses
// per hour or day (UTC), oldest first, buckets without uses left out.
type UsageSeries struct {
	// Granularity is "hour" or "day".
	Granularity string `json:"granularity"`
	// From and To bound the series: buckets start at or after From and
	// before To.
	From  time.Time     `json:"from"`
	To    time.Time     `json:"to"`
	Items []UsageBucket `json:"items"`
}

// UsageBucket is the number of uses in the hour or day from Start.
type UsageBucket struct {
	Start time.Time `json:"start"`
	Count uint64    `json:"count"`
}
