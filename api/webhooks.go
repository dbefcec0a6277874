package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/ledger"
	"github.com/tokenledger/tokenledger/sdk"
	"github.com/tokenledger/tokenledger/webhooks"
)

// Webhooks runs the webhook routes' use cases (*webhooks.Manager
// implements it).
type Webhooks interface {
	Register(ctx context.Context, c ledger.Caller, url string, events []webhooks.EventType, owner *domain.OwnerID) (webhooks.Registration, error)
	List(ctx context.Context, c ledger.Caller) ([]webhooks.Endpoint, error)
	Remove(ctx context.Context, c ledger.Caller, id string) error
	Deliveries(ctx context.Context, c ledger.Caller, id string, before int64, limit int) ([]webhooks.Delivery, error)
}

// defaultDeliveriesPage is how many deliveries a page lists unless asked.
const defaultDeliveriesPage = 100

var errNoWebhooks = &apiError{status: http.StatusNotImplemented, code: sdk.CodeInternal, message: "webhooks are not configured on this node"}

func webhookNotFound(err error) error {
	if errors.Is(err, domain.ErrNotFound) {
		return &apiError{status: http.StatusNotFound, code: sdk.CodeNotFound, message: "no such webhook endpoint"}
	}
	return err
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	if s.webhooks == nil {
		return errNoWebhooks
	}
	var body sdk.WebhookRequest
	if err := s.decodeJSON(w, r, &body, false); err != nil {
		return err
	}
	if body.URL == "" {
		return badRequest("url is required")
	}
	var owner *domain.OwnerID
	if body.Owner != nil {
		if err := ValidateOwnerName(*body.Owner); err != nil {
			return err
		}
		o := domain.OwnerID(*body.Owner)
		owner = &o
	}
	events := make([]webhooks.EventType, len(body.Events))
	for i, e := range body.Events {
		events[i] = webhooks.EventType(e)
	}
	reg, err := s.webhooks.Register(r.Context(), c, body.URL, events, owner)
	if err != nil {
		return err
	}
	out := webhookOut(reg.Endpoint)
	out.Secret = reg.Secret.Reveal()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	if s.webhooks == nil {
		return errNoWebhooks
	}
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	eps, err := s.webhooks.List(r.Context(), c)
	if err != nil {
		return err
	}
	out := sdk.WebhookList{Items: make([]sdk.Webhook, 0, len(eps))}
	for _, e := range eps {
		out.Items = append(out.Items, webhookOut(e))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) removeWebhook(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	if s.webhooks == nil {
		return errNoWebhooks
	}
	if err := s.webhooks.Remove(r.Context(), c, r.PathValue("id")); err != nil {
		return webhookNotFound(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request, c ledger.Caller) error {
	if s.webhooks == nil {
		return errNoWebhooks
	}
	q := r.URL.Query()
	if err := checkQuery(q, "limit", "before"); err != nil {
		return err
	}
	limit, err := queryInt(q, "limit")
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = defaultDeliveriesPage
	}
	if limit > webhooks.MaxDeliveriesPage {
		return badRequest("limit must be at most " + strconv.Itoa(webhooks.MaxDeliveriesPage))
	}
	before, err := queryInt(q, "before")
	if err != nil {
		return err
	}
	ds, err := s.webhooks.Deliveries(r.Context(), c, r.PathValue("id"), int64(before), limit)
	if err != nil {
		return webhookNotFound(err)
	}
	out := sdk.WebhookDeliveries{Items: make([]sdk.WebhookDelivery, 0, len(ds))}
	for _, d := range ds {
		dd := sdk.WebhookDelivery{
			ID: d.ID, EventID: d.EventID, Type: string(d.Type), Sequence: d.Sequence, Status: d.Status,
			Attempts: d.Attempts, CreatedAt: d.CreatedAt, LastAttemptAt: timePtr(d.LastAttemptAt),
			DoneAt: timePtr(d.DoneAt), LastStatus: d.LastStatus, LastError: d.LastError,
		}
		if d.Status == webhooks.StatusPending {
			dd.NextAttemptAt = timePtr(d.NextAttemptAt)
		}
		out.Items = append(out.Items, dd)
	}
	if len(ds) == limit {
		out.NextBefore = ds[len(ds)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func webhookOut(e webhooks.Endpoint) sdk.Webhook {
	out := sdk.Webhook{
		ID: e.ID, URL: e.URL, Events: make([]string, len(e.Events)), CreatedBy: e.CreatedBy, CreatedAt: e.CreatedAt,
		DisabledAt: timePtr(e.DisabledAt), DisabledReason: e.DisabledReason,
	}
	for i, t := range e.Events {
		out.Events[i] = string(t)
	}
	if e.Owner != nil {
		o := string(*e.Owner)
		out.Owner = &o
	}
	return out
}
