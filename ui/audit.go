package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokenledger/tokenledger/api"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/ledger"
)

// ownerData is an owner's history page.
type ownerData struct {
	Owner   string
	Events  []event
	Through uint64
}

// ownerPick sends the owner form of the header to that owner's history.
func (s *server) ownerPick(w http.ResponseWriter, r *http.Request, v *visit) error {
	q, err := query(r, "owner")
	if err != nil {
		return err
	}
	owner := strings.TrimSpace(q.Get("owner"))
	if owner == "" {
		owner = string(v.Caller.Owner)
	}
	if err := api.ValidateOwnerName(owner); err != nil {
		return err
	}
	http.Redirect(w, r, ownerPath(owner), http.StatusSeeOther)
	return nil
}

// ownerHistory shows an owner's history, for an admin or a session of that
// owner, as GET /v1/owners/{owner}/events does.
func (s *server) ownerHistory(w http.ResponseWriter, r *http.Request, v *visit) error {
	owner := r.PathValue("owner")
	if err := api.ValidateOwnerName(owner); err != nil {
		return err
	}
	if _, err := query(r); err != nil {
		return err
	}
	if !v.Caller.IsAdmin() && v.Caller.Owner != domain.OwnerID(owner) {
		return fmt.Errorf("%w: a token of owner %q may read only its own owner's history", ledger.ErrForbidden, v.Caller.Owner)
	}
	if s.audit == nil {
		return errors.New("no audit reader configured")
	}
	h, err := s.audit.OwnerHistory(r.Context(), domain.OwnerID(owner))
	if err != nil {
		return auditErr(err)
	}
	d := ownerData{Owner: owner, Events: timeline(h, s.clock.Now()), Through: h.Sequence}
	s.render(w, r, http.StatusOK, "owner", page{Title: "Owner " + owner, Me: v, Data: d})
	return nil
}

// revokeOwner revokes every token of the owner issued up to now, with an
// optional ban on new tokens until a time.
func (s *server) revokeOwner(w http.ResponseWriter, r *http.Request, v *visit) error {
	owner := r.PathValue("owner")
	if err := api.ValidateOwnerName(owner); err != nil {
		return err
	}
	f := r.PostForm
	var until *time.Time
	if raw := strings.TrimSpace(f.Get("until")); raw != "" {
		t, err := domain.ParseTime(raw, s.clock.Now())
		if err != nil {
			return badRequest("until: " + err.Error())
		}
		until = &t
	}
	reason := strings.TrimSpace(f.Get("reason"))
	if _, err := s.ledger.RevokeOwner(r.Context(), v.Caller, domain.OwnerID(owner), until, reason, api.RequestID(r.Context())); err != nil {
		return err
	}
	if domain.OwnerID(owner) == v.Caller.Owner {
		// The session was one of the owner's tokens: it is signed out.
		clearSession(w, r)
		http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, ownerPath(owner), http.StatusSeeOther)
	return nil
}

func ownerPath(owner string) string { return "/ui/owners/" + url.PathEscape(owner) }

// stateData is the page of the state at an instant.
type stateData struct {
	At, Owner string
	// Shown is false until an instant is asked for.
	Shown    bool
	When     When
	Sequence uint64
	Rows     []row
}

// stateAt shows every token as it was at an instant, for admins only, as
// GET /v1/state does.
func (s *server) stateAt(w http.ResponseWriter, r *http.Request, v *visit) error {
	if !v.Caller.IsAdmin() {
		return fmt.Errorf("%w: the state of the ledger at an instant needs %s", ledger.ErrForbidden, ledger.ScopeAdmin)
	}
	q, err := query(r, "at", "owner")
	if err != nil {
		return err
	}
	d := stateData{At: strings.TrimSpace(q.Get("at")), Owner: strings.TrimSpace(q.Get("owner"))}
	if d.At != "" {
		now := s.clock.Now()
		instant, err := domain.ParseTime(d.At, now)
		if err != nil {
			return badRequest("at: " + err.Error())
		}
		var owner *domain.OwnerID
		if d.Owner != "" {
			if err := api.ValidateOwnerName(d.Owner); err != nil {
				return err
			}
			id := domain.OwnerID(d.Owner)
			owner = &id
		}
		if s.audit == nil {
			return errors.New("no audit reader configured")
		}
		snap, err := s.audit.StateAt(r.Context(), instant, owner)
		if err != nil {
			return auditErr(err)
		}
		d.Shown, d.When, d.Sequence = true, at(snap.At, now), snap.Sequence
		d.Rows = make([]row, len(snap.Tokens))
		for i, t := range snap.Tokens {
			d.Rows[i] = rowFromTokenRow(t, snap.At)
		}
	}
	s.render(w, r, http.StatusOK, "state", page{Title: "State at an instant", Me: v, Data: d})
	return nil
}

// auditErr marks a failure to read the stream or the read model as the
// ledger being unavailable, as the API does; bad input and history that
// cannot be decoded keep their own answers.
func auditErr(err error) error {
	switch {
	case errors.Is(err, domain.ErrCorruptEvent), errors.Is(err, domain.ErrUnknownEventType),
		errors.Is(err, domain.ErrInvalidArgument), errors.Is(err, context.Canceled):
		return err
	}
	return fmt.Errorf("%w: %w", ledger.ErrUnavailable, err)
}
