package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/sdk"
)

// issue answers POST /v1/tokens.
func (s *Server) issue(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	var body sdk.IssueRequest
	if err := s.decodeJSON(w, r, &body, false); err != nil {
		return err
	}
	req, err := issueRequest(body)
	if err != nil {
		return err
	}
	issued, err := s.ledger.Issue(r.Context(), c, req, requestID(r.Context()))
	if err != nil {
		return err
	}
	s.log.DebugContext(r.Context(), "token issued", "request_id", requestID(r.Context()),
		"token_id", issued.Token.ID(), "owner", issued.Token.Owner(), "secret", issued.Secret)
	writeJSON(w, http.StatusCreated, sdk.IssuedToken{TokenMetadata: tokenFromView(issued.View), Secret: issued.Secret.Reveal()})
	return nil
}

// issueRequest checks what the domain cannot tell apart once decoded (a
// zero duration given explicitly, an owner outside the API's syntax) and
// converts the rest.
func issueRequest(b sdk.IssueRequest) (domain.IssueRequest, error) {
	req := domain.IssueRequest{
		Owner:        domain.OwnerID(b.Owner),
		Name:         b.Name,
		Scopes:       b.Scopes,
		ExpiresAt:    b.ExpiresAt,
		NeverExpires: b.NeverExpires,
		AllowedCIDRs: b.AllowedCIDRs,
	}
	if b.Owner != "" {
		if err := ValidateOwnerName(b.Owner); err != nil {
			return domain.IssueRequest{}, err
		}
	}
	switch b.Kind {
	case "", string(domain.KindAPI):
		req.Kind = domain.KindAPI
	case string(domain.KindSession):
		req.Kind = domain.KindSession
	default:
		return domain.IssueRequest{}, badRequest(fmt.Sprintf("kind must be %q or %q", domain.KindAPI, domain.KindSession))
	}
	if b.ExpiresIn != nil {
		if *b.ExpiresIn <= 0 {
			return domain.IssueRequest{}, badRequest("expires_in must be positive")
		}
		req.ExpiresIn = time.Duration(*b.ExpiresIn)
	}
	if b.IdleTimeout != nil {
		if *b.IdleTimeout <= 0 {
			return domain.IssueRequest{}, badRequest("idle_timeout must be positive")
		}
		if req.Kind != domain.KindSession {
			return domain.IssueRequest{}, badRequest("idle_timeout is only for tokens of kind session")
		}
		req.IdleTimeout = time.Duration(*b.IdleTimeout)
	}
	return req, nil
}

// list answers GET /v1/tokens.
func (s *Server) list(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	q := r.URL.Query()
	if err := checkQuery(q, "owner", "status", "unused_for", "expiring_within", "limit", "cursor"); err != nil {
		return err
	}
	var f projections.ListFilter
	if o := q.Get("owner"); o != "" {
		if err := ValidateOwnerName(o); err != nil {
			return err
		}
		owner := domain.OwnerID(o)
		f.Owner = &owner
	}
	switch st := domain.TokenStatus(q.Get("status")); st {
	case "", domain.StatusActive, domain.StatusExpired, domain.StatusRevoked:
		f.Status = st
	default:
		return badRequest(`status must be "active", "expired" or "revoked"`)
	}
	var err error
	if f.UnusedFor, err = queryDuration(q, "unused_for"); err != nil {
		return err
	}
	if f.ExpiringWithin, err = queryDuration(q, "expiring_within"); err != nil {
		return err
	}
	if f.Limit, err = queryInt(q, "limit"); err != nil {
		return err
	}
	f.Cursor = q.Get("cursor")
	page, err := s.ledger.List(r.Context(), c, f)
	if err != nil {
		return err
	}
	out := sdk.TokenPage{Items: make([]sdk.Token, len(page.Items)), NextCursor: page.NextCursor}
	for i, row := range page.Items {
		out.Items[i] = tokenFromRow(row)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// get answers GET /v1/tokens/{id}.
func (s *Server) get(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	id, err := parseTokenID(r)
	if err != nil {
		return err
	}
	v, err := s.ledger.Get(r.Context(), c, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tokenFromView(v))
	return nil
}

// update answers PATCH /v1/tokens/{id}: {"expires_at": "..." | null,
// "allowed_cidrs": [...] | null}, at least one of them; both are recorded
// together or not at all.
func (s *Server) update(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	id, err := parseTokenID(r)
	if err != nil {
		return err
	}
	// The fields are decoded raw first: absent (unchanged) and null (no
	// expiry, any network) must be told apart.
	var body struct {
		ExpiresAt    json.RawMessage `json:"expires_at"`
		AllowedCIDRs json.RawMessage `json:"allowed_cidrs"`
	}
	if err := s.decodeJSON(w, r, &body, false); err != nil {
		return err
	}
	if body.ExpiresAt == nil && body.AllowedCIDRs == nil {
		return badRequest(`give expires_at (an RFC 3339 time, or null for no expiry) or allowed_cidrs (a list of CIDR prefixes, or null for any network)`)
	}
	var u ledger.Update
	if body.ExpiresAt != nil {
		u.SetExpiry = true
		if err := json.Unmarshal(body.ExpiresAt, &u.ExpiresAt); err != nil {
			return badRequest("expires_at must be an RFC 3339 time or null")
		}
	}
	if body.AllowedCIDRs != nil {
		u.SetCIDRs = true
		if err := json.Unmarshal(body.AllowedCIDRs, &u.AllowedCIDRs); err != nil {
			return badRequest("allowed_cidrs must be a list of CIDR prefixes or null")
		}
	}
	v, err := s.ledger.Update(r.Context(), c, id, u, requestID(r.Context()))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tokenFromView(v))
	return nil
}

// revoke answers DELETE /v1/tokens/{id}, with an optional {"reason"}.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	id, err := parseTokenID(r)
	if err != nil {
		return err
	}
	var body sdk.RevokeRequest
	if err := s.decodeJSON(w, r, &body, true); err != nil {
		return err
	}
	if err := s.ledger.Revoke(r.Context(), c, id, body.Reason, requestID(r.Context())); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// rotate answers POST /v1/tokens/{id}/rotate, with an optional {"grace"}.
func (s *Server) rotate(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	id, err := parseTokenID(r)
	if err != nil {
		return err
	}
	var body sdk.RotateRequest
	if err := s.decodeJSON(w, r, &body, true); err != nil {
		return err
	}
	var grace time.Duration
	if body.Grace != nil {
		if *body.Grace < 0 {
			return badRequest("grace must not be negative")
		}
		grace = time.Duration(*body.Grace)
	}
	rot, err := s.ledger.Rotate(r.Context(), c, id, grace, requestID(r.Context()))
	if err != nil {
		return err
	}
	s.log.DebugContext(r.Context(), "token rotated", "request_id", requestID(r.Context()),
		"token_id", rot.Token.ID(), "previous", id, "secret", rot.Secret)
	writeJSON(w, http.StatusCreated, sdk.RotatedToken{
		IssuedToken:       sdk.IssuedToken{TokenMetadata: tokenFromView(rot.View), Secret: rot.Secret.Reveal()},
		PreviousExpiresAt: rot.PreviousExpiresAt,
	})
	return nil
}

// events answers GET /v1/tokens/{id}/events.
func (s *Server) events(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	id, err := parseTokenID(r)
	if err != nil {
		return err
	}
	h, err := s.ledger.Events(r.Context(), c, id)
	if err != nil {
		return err
	}
	return writeHistory(w, h)
}

// revokeOwner answers POST /v1/owners/{owner}/revoke.
func (s *Server) revokeOwner(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	owner := r.PathValue("owner")
	if err := ValidateOwnerName(owner); err != nil {
		return err
	}
	var body sdk.OwnerRevokeRequest
	if err := s.decodeJSON(w, r, &body, true); err != nil {
		return err
	}
	rev, err := s.ledger.RevokeOwner(r.Context(), c, domain.OwnerID(owner), body.Until, body.Reason, requestID(r.Context()))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sdk.OwnerRevocation{
		Owner:         string(rev.Owner),
		RevokedBefore: rev.RevokedBefore,
		Until:         timePtr(rev.Until),
		Reason:        rev.Reason,
	})
	return nil
}
