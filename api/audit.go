package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tokenledger/tokenledger/audit"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/sdk"
)

// AuditReader answers the audit routes from the event stream;
// *audit.Reader implements it.
type AuditReader interface {
	// OwnerHistory returns the owner's owner-wide events and the events of
	// its tokens, in stream order, complete up to the sequence it names
	// (see audit.OwnerHistory).
	OwnerHistory(ctx context.Context, owner domain.OwnerID) (audit.History, error)
	// StateAt returns every token (of owner, unless nil) as it was at at
	// (see audit.StateAt).
	StateAt(ctx context.Context, at time.Time, owner *domain.OwnerID) (audit.Snapshot, error)
}

// ownerEvents answers GET /v1/owners/{owner}/events: the owner's history,
// for an admin or a token of that owner.
func (s *Server) ownerEvents(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	owner := r.PathValue("owner")
	if err := ValidateOwnerName(owner); err != nil {
		return err
	}
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	if !c.IsAdmin() && c.Owner != domain.OwnerID(owner) {
		return fmt.Errorf("%w: a token of owner %q may read only its own owner's history", ledger.ErrForbidden, c.Owner)
	}
	if s.audit == nil {
		return errors.New("no audit reader configured")
	}
	h, err := s.audit.OwnerHistory(r.Context(), domain.OwnerID(owner))
	if err != nil {
		return auditError(err)
	}
	return writeHistory(w, h)
}

// writeHistory answers a history: its events, without secrets' hashes,
// and the sequence it is complete up to.
func writeHistory(w http.ResponseWriter, h audit.History) error {
	out := sdk.EventList{Items: make([]sdk.Event, 0, len(h.Events)), Sequence: h.Sequence}
	for _, e := range h.Events {
		ev, err := eventFromEnvelope(e)
		if err != nil {
			return err
		}
		out.Items = append(out.Items, ev)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// stateAt answers GET /v1/state?at=RFC3339[&owner=O]: every token as it
// was at an instant, for admins only.
func (s *Server) stateAt(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	if !c.IsAdmin() {
		return fmt.Errorf("%w: the state of the ledger at an instant needs %s", ledger.ErrForbidden, ledger.ScopeAdmin)
	}
	q := r.URL.Query()
	if err := checkQuery(q, "at", "owner"); err != nil {
		return err
	}
	raw := q.Get("at")
	if raw == "" {
		return badRequest("at is required: an RFC 3339 time such as 2026-11-22T10:00:03Z, a date, now, or a relative time such as -2h")
	}
	at, err := domain.ParseTime(raw, time.Now())
	if err != nil {
		return badRequest("at: " + err.Error())
	}
	var owner *domain.OwnerID
	if o := q.Get("owner"); o != "" {
		if err := ValidateOwnerName(o); err != nil {
			return err
		}
		id := domain.OwnerID(o)
		owner = &id
	}
	if s.audit == nil {
		return errors.New("no audit reader configured")
	}
	snap, err := s.audit.StateAt(r.Context(), at.UTC(), owner)
	if err != nil {
		return auditError(err)
	}
	writeState(w, snap)
	return nil
}

// stateFlushBytes is how much of a state answer is written at a time.
const stateFlushBytes = 64 << 10

// stateWriteTimeout is how long the writing of each part of a state
// answer may take: the server's write timeout covers a whole answer, and
// the state of a large ledger is hundreds of megabytes.
const stateWriteTimeout = 30 * time.Second

// writeState answers a state: the document sdk.StateAt, its tokens encoded
// by hand (appendTokenJSON) and written as they are encoded, rather than
// marshalled whole into memory first.
func writeState(w http.ResponseWriter, snap audit.Snapshot) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(stateWriteTimeout))
	w.Header().Set("Content-Type", contentJSON)
	w.WriteHeader(http.StatusOK)
	b := make([]byte, 0, stateFlushBytes+4096)
	b = append(b, `{"at":`...)
	b = appendJSONTime(b, snap.At)
	b = append(b, `,"sequence":`...)
	b = strconv.AppendUint(b, snap.Sequence, 10)
	b = append(b, `,"items":[`...)
	for i := range snap.Tokens {
		if i > 0 {
			b = append(b, ',')
		}
		t := tokenFromRow(snap.Tokens[i])
		b = appendTokenJSON(b, &t)
		if len(b) >= stateFlushBytes {
			if _, err := w.Write(b); err != nil {
				return
			}
			_ = rc.SetWriteDeadline(time.Now().Add(stateWriteTimeout))
			b = b[:0]
		}
	}
	b = append(b, "]}\n"...)
	_, _ = w.Write(b)
}

// auditError marks a failure to read the stream or the read model as the
// ledger being unavailable; history that cannot be decoded stays an
// internal error.
func auditError(err error) error {
	switch {
	case errors.Is(err, domain.ErrCorruptEvent), errors.Is(err, domain.ErrUnknownEventType),
		errors.Is(err, domain.ErrInvalidArgument), errors.Is(err, context.Canceled):
		return err
	}
	return fmt.Errorf("%w: %w", ledger.ErrUnavailable, err)
}
