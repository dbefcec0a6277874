package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/sdk"
	"github.com/tokenledger/tokenledger/validator"
)

// Forward-auth answer headers.
const (
	HeaderTokenID     = "X-Token-Id"
	HeaderTokenOwner  = "X-Token-Owner"
	HeaderTokenScopes = "X-Token-Scopes"
	// HeaderError names the refusal of a forward-auth 403
	// (insufficient_scope or ip_not_allowed), for gateways such as nginx's
	// auth_request that pass headers of the check but not its body.
	HeaderError = "X-Tokenledger-Error"
)

const bearerRealm = `Bearer realm="tokenledger"`

// refuseManyAuthorizations answers a request that carries more than one
// Authorization header: 400 invalid_request, with the RFC 6750 challenge.
// Reading one of them would let the server authorize a credential other than
// the one a proxy in front of it logged or checked.
func refuseManyAuthorizations(w http.ResponseWriter) {
	const msg = "more than one Authorization header"
	w.Header().Set("WWW-Authenticate", `Bearer realm="tokenledger", error="invalid_request", error_description="`+msg+`"`)
	writeJSONError(w, http.StatusBadRequest, sdk.CodeInvalidRequest, msg)
}

// bearer returns the secret of an "Authorization: Bearer <secret>" header.
// The server refuses a request with several Authorization headers before
// any handler runs, so there is at most one.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const scheme = "Bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(h[len(scheme):]), true
}

// validationResult names a validator answer for metrics.
func validationResult(err error) string {
	switch {
	case err == nil:
		return "valid"
	case errors.Is(err, validator.ErrMalformed):
		return "malformed"
	case errors.Is(err, validator.ErrExpired):
		return "expired"
	case errors.Is(err, validator.ErrOwnerRevoked):
		return "owner_revoked"
	case errors.Is(err, validator.ErrRevoked):
		return "revoked"
	case errors.Is(err, validator.ErrStale):
		return "stale"
	case errors.Is(err, validator.ErrIPNotAllowed):
		return "ip_not_allowed"
	default:
		return "unknown"
	}
}

// invalidTokenDescription says why a token was refused, for
// WWW-Authenticate and the error body; it never contains the token.
func invalidTokenDescription(err error) string {
	switch validationResult(err) {
	case "malformed":
		return "the token is malformed"
	case "expired":
		return "the token expired"
	case "revoked":
		return "the token was revoked"
	case "owner_revoked":
		return "the token was revoked with all tokens of its owner"
	default:
		return "the token is unknown"
	}
}

// authenticate finds the caller of a management request by its bearer
// token, through the validator (which also records the use).
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (ledger.Caller, error) {
	secret, ok := bearer(r)
	if !ok {
		return ledger.Caller{}, &apiError{status: http.StatusUnauthorized, code: sdk.CodeUnauthorized,
			message: "this route needs an Authorization: Bearer token", wwwAuthenticate: bearerRealm}
	}
	return s.authenticateSecret(r, secret)
}

// authenticateSecret finds the caller presenting secret in r; it is the
// server's Authenticator.
func (s *Server) authenticateSecret(r *http.Request, secret string) (ledger.Caller, error) {
	p, err := s.validator.ValidateAt(r.Context(), secret, s.clientAddr(r), r.Pattern)
	if err != nil {
		if errors.Is(err, validator.ErrStale) {
			return ledger.Caller{}, err
		}
		if errors.Is(err, validator.ErrIPNotAllowed) {
			return ledger.Caller{}, &apiError{status: http.StatusForbidden, code: sdk.CodeIPNotAllowed, message: ipNotAllowedMessage}
		}
		desc := invalidTokenDescription(err)
		return ledger.Caller{}, &apiError{status: http.StatusUnauthorized, code: sdk.CodeUnauthorized, message: desc,
			wwwAuthenticate: `Bearer realm="tokenledger", error="invalid_token", error_description="` + desc + `"`}
	}
	return ledger.Caller{TokenID: p.TokenID, Owner: p.Owner, Scopes: p.Scopes, ExpiresAt: p.ExpiresAt, AllowedCIDRs: p.AllowedCIDRs}, nil
}

// ScopeHeader names the scopes a forward-auth check requires
// (space-separated, all required) where the query cannot: Envoy's ext_authz
// passes the client's own query along.
const ScopeHeader = "X-Tokenledger-Scope"

// forwardAuth answers GET /v1/auth for gateways: 200 with the token's id,
// owner and scopes in headers, 401 for a missing or invalid token, 403 when a
// scope named in ?scope= or the ScopeHeader (space-separated, all required)
// is missing. Naming a scope is optional unless Config.RequireAuthScope is
// set: then a check that names none is 400 scope_required.
func (s *Server) forwardAuth(w http.ResponseWriter, r *http.Request) {
	s.checkToken(w, r, true)
}

// forwardAuthPrefixed answers /v1/auth/<original path> with any method, as
// Envoy's ext_authz asks: the path, method and query are the client's and
// are ignored; required scopes come from the ScopeHeader only.
func (s *Server) forwardAuthPrefixed(w http.ResponseWriter, r *http.Request) {
	s.checkToken(w, r, false)
}

func (s *Server) checkToken(w http.ResponseWriter, r *http.Request, readQuery bool) {
	start := time.Now()
	// Before the token: a check without a scope is the gateway's mistake,
	// answered the same whoever the client is.
	if s.requireAuthScope && !namesScope(r, readQuery) {
		writeJSONError(w, http.StatusBadRequest, sdk.CodeScopeRequired,
			"this server requires every forward-auth check to name a scope (?scope= or "+ScopeHeader+")")
		return
	}
	secret, ok := bearer(r)
	if !ok {
		s.observeValidation("unknown", start)
		s.refused(r, "", "no_token")
		w.Header().Set("WWW-Authenticate", bearerRealm)
		writeJSONError(w, http.StatusUnauthorized, sdk.CodeInvalidToken, "no Authorization: Bearer token")
		return
	}
	p, err := s.validator.ValidateAt(r.Context(), secret, s.clientAddr(r), r.Pattern)
	if err != nil {
		result := validationResult(err)
		s.observeValidation(result, start)
		if result == "stale" {
			w.Header().Set("Retry-After", retryAfterSeconds)
			writeJSONError(w, http.StatusServiceUnavailable, sdk.CodeUnavailable, "the validator is stale, try again")
			return
		}
		if result == "ip_not_allowed" {
			s.refused(r, tokenIDOf(secret), result)
			w.Header().Set(HeaderError, sdk.CodeIPNotAllowed)
			writeJSONError(w, http.StatusForbidden, sdk.CodeIPNotAllowed, ipNotAllowedMessage)
			return
		}
		id := ""
		if result != "malformed" {
			// The id is the non-secret part of a well-formed secret.
			if tid, err := domain.ParseSecret(secret); err == nil {
				id = tid.String()
			}
		}
		s.refused(r, id, result)
		desc := invalidTokenDescription(err)
		w.Header().Set("WWW-Authenticate", `Bearer realm="tokenledger", error="invalid_token", error_description="`+desc+`"`)
		writeJSONError(w, http.StatusUnauthorized, sdk.CodeInvalidToken, desc)
		return
	}
	required := r.Header.Get(ScopeHeader)
	if readQuery && r.URL.RawQuery != "" {
		q := r.URL.Query()
		if err := checkQuery(q, "scope"); err != nil {
			s.observeValidation("valid", start)
			s.writeError(w, r, err)
			return
		}
		required = strings.TrimSpace(required + " " + q.Get("scope"))
	}
	for sc := range strings.FieldsSeq(required) {
		if !p.HasScope(sc) {
			s.observeValidation("insufficient_scope", start)
			s.refused(r, p.TokenID.String(), "insufficient_scope")
			w.Header().Set("WWW-Authenticate", `Bearer realm="tokenledger", error="insufficient_scope", scope="`+strings.ReplaceAll(required, `"`, "")+`"`)
			w.Header().Set(HeaderError, sdk.CodeInsufficientScope)
			writeJSONError(w, http.StatusForbidden, sdk.CodeInsufficientScope, "the token lacks a required scope")
			return
		}
	}
	h := w.Header()
	h.Set(HeaderTokenID, p.TokenID.String())
	h.Set(HeaderTokenOwner, string(p.Owner))
	h.Set(HeaderTokenScopes, strings.Join(p.Scopes, " "))
	w.WriteHeader(http.StatusOK)
	s.observeValidation("valid", start)
}

// ipNotAllowedMessage is the message of a refusal from outside a token's
// allowed networks.
const ipNotAllowedMessage = "the token may not be used from this client address"

// tokenIDOf is the id of a well-formed secret, the non-secret part of it.
func tokenIDOf(secret string) string {
	if id, err := domain.ParseSecret(secret); err == nil {
		return id.String()
	}
	return ""
}

// namesScope reports whether a forward-auth check names at least one
// required scope, in the ScopeHeader or (readQuery) in ?scope=.
func namesScope(r *http.Request, readQuery bool) bool {
	if strings.TrimSpace(r.Header.Get(ScopeHeader)) != "" {
		return true
	}
	return readQuery && r.URL.RawQuery != "" && strings.TrimSpace(r.URL.Query().Get("scope")) != ""
}

// refused logs and counts a refused forward-auth check.
func (s *Server) refused(r *http.Request, tokenID, reason string) {
	s.metrics.ObserveAuthRefusal(reason)
	s.refusals.refused(r.Context(), tokenID, reason, s.clientAddr(r), authRoute(r))
}

func (s *Server) observeValidation(result string, start time.Time) {
	s.metrics.ObserveValidation(result, time.Since(start))
}

// introspect answers POST /v1/introspect (RFC 7662) for callers with
// ledger:introspect or ledger:admin: the token's owner, scopes, kind and
// times, or exactly {"active": false}.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	if !c.IsAdmin() && !c.HasScope(ledger.ScopeIntrospect) {
		return &apiError{status: http.StatusForbidden, code: sdk.CodeForbidden,
			message: "introspection needs the scope " + ledger.ScopeIntrospect + " or " + ledger.ScopeAdmin}
	}
	secret, err := s.readSecret(w, r)
	if err != nil {
		return err
	}
	start := time.Now()
	p, err := s.validator.ValidateAt(r.Context(), secret, s.clientAddr(r), r.Pattern)
	s.observeValidation(validationResult(err), start)
	if errors.Is(err, validator.ErrStale) {
		return err
	}
	if err != nil {
		writeJSON(w, http.StatusOK, sdk.Introspection{Active: false})
		return nil
	}
	out := sdk.Introspection{
		Active:    true,
		Subject:   string(p.Owner),
		Scope:     strings.Join(p.Scopes, " "),
		TokenType: string(p.Kind),
		Iat:       p.TokenID.Time().Unix(),
		JTI:       p.TokenID.String(),
	}
	if !p.ExpiresAt.IsZero() {
		out.Exp = p.ExpiresAt.Unix()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// revokeSecret answers POST /v1/revoke (RFC 7009): whoever holds a secret
// may revoke its token. The answer is 200 whether or not a token was found,
// so it tells nothing about the secret; 503 when the revocation could not
// be recorded.
func (s *Server) revokeSecret(w http.ResponseWriter, r *http.Request) error {
	secret, err := s.readSecret(w, r)
	if err != nil {
		return err
	}
	if _, err := s.ledger.RevokeSecret(r.Context(), secret, requestID(r.Context())); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}
