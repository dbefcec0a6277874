package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokenledger/tokenledger/api"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
	"github.com/tokenledger/tokenledger/sdk"
)

// listFilters are the query parameters of the token list: the API's.
var listFilters = []string{"owner", "status", "unused_for", "expiring_within", "limit", "cursor"}

// listData is the token list page.
type listData struct {
	Rows []row
	// Filter is the filter as given, to refill the form; Next is the query
	// of the next page, empty on the last.
	Filter url.Values
	Next   string
}

// list shows one page of tokens with the API's filters and cursor paging.
func (s *server) list(w http.ResponseWriter, r *http.Request, v *visit) error {
	q, err := query(r, listFilters...)
	if err != nil {
		return err
	}
	var f projections.ListFilter
	if o := q.Get("owner"); o != "" {
		if err := api.ValidateOwnerName(o); err != nil {
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
	if f.UnusedFor, err = positiveDuration(q, "unused_for"); err != nil {
		return err
	}
	if f.ExpiringWithin, err = positiveDuration(q, "expiring_within"); err != nil {
		return err
	}
	if l := q.Get("limit"); l != "" {
		if f.Limit, err = strconv.Atoi(l); err != nil || f.Limit <= 0 {
			return badRequest("limit must be a positive whole number")
		}
	}
	f.Cursor = q.Get("cursor")
	now := s.clock.Now()
	f.Now = now
	p, err := s.ledger.List(r.Context(), v.Caller, f)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "list", page{Title: "Tokens", Me: v, Data: listPage(p, q, now)})
	return nil
}

// listPage builds the list page of p, listed with the filter q, at now.
func listPage(p projections.Page, q url.Values, now time.Time) listData {
	d := listData{Rows: make([]row, len(p.Items)), Filter: q}
	for i, t := range p.Items {
		d.Rows[i] = rowFromTokenRow(t, now)
	}
	if p.NextCursor != "" {
		next := url.Values{}
		for k, vs := range q {
			if k != "cursor" && vs[0] != "" {
				next.Set(k, vs[0])
			}
		}
		next.Set("cursor", p.NextCursor)
		d.Next = next.Encode()
	}
	return d
}

// tokenData is the token page.
type tokenData struct {
	Token   row
	Events  []event
	Through uint64
	// Policy tells what expiry an admin may clear.
	AllowNeverExpires bool
	// Days are the uses per day (UTC) of the last usageDays days, oldest
	// first;
	// UsageErr says why they could not be read.
	Days     []usageDay
	UsageErr string
}

// usageDays is how many days of use the token page shows.
const usageDays = 30

// usageDay is one day of a token's use on its page; Level is its bar's
// height in tenths of the busiest day's (a CSS class: the page's policy
// allows no inline style), at least 1 for a day with uses.
type usageDay struct {
	Day   string
	Count uint64
	Level int
}

// usageDaysOf lays out a daily series ending with the day of now.
func usageDaysOf(buckets []projections.UsageBucket, now time.Time) []usageDay {
	last := now.UTC().Truncate(24 * time.Hour)
	byDay := make(map[time.Time]uint64, len(buckets))
	var peak uint64
	for _, b := range buckets {
		byDay[b.Start] += b.Count
		peak = max(peak, byDay[b.Start])
	}
	out := make([]usageDay, usageDays)
	for i := range out {
		day := last.AddDate(0, 0, i-usageDays+1)
		n := byDay[day]
		d := usageDay{Day: day.Format(time.DateOnly), Count: n}
		if n > 0 {
			d.Level = max(1, int(n*10/peak))
		}
		out[i] = d
	}
	return out
}

// show shows a token: its metadata, its actions and its history.
func (s *server) show(w http.ResponseWriter, r *http.Request, v *visit) error {
	id, err := tokenID(r)
	if err != nil {
		return err
	}
	if _, err := query(r); err != nil {
		return err
	}
	view, err := s.ledger.Get(r.Context(), v.Caller, id)
	if err != nil {
		return err
	}
	h, err := s.ledger.Events(r.Context(), v.Caller, id)
	if err != nil {
		return err
	}
	d := tokenData{Token: rowFromView(view), Events: timeline(h, view.Now), Through: h.Sequence,
		AllowNeverExpires: s.ledger.Policy().AllowNeverExpires}
	last := view.Now.UTC().Truncate(24 * time.Hour)
	days, err := s.ledger.UsageSeries(r.Context(), v.Caller, id, projections.Daily, last.AddDate(0, 0, 1-usageDays), last.AddDate(0, 0, 1))
	if err != nil {
		// The page does without the read model's usage.
		d.UsageErr = "usage per day could not be read"
	} else {
		d.Days = usageDaysOf(days, view.Now)
	}
	s.render(w, r, http.StatusOK, "token", page{Title: "Token " + d.Token.Name, Me: v, Data: d})
	return nil
}

// issueData is the issue form.
type issueData struct {
	AllowNeverExpires bool
	DefaultLifetime   string
}

func (s *server) issueForm(w http.ResponseWriter, r *http.Request, v *visit) error {
	if _, err := query(r); err != nil {
		return err
	}
	p := s.ledger.Policy()
	s.render(w, r, http.StatusOK, "issue", page{Title: "Issue a token", Me: v,
		Data: issueData{AllowNeverExpires: p.AllowNeverExpires, DefaultLifetime: span(p.DefaultLifetime)}})
	return nil
}

// secretData is the page that shows a new secret, once.
type secretData struct {
	Token  row
	Secret string
	// Rotated names the token a rotation replaced, and when it expires.
	Rotated           string
	PreviousExpiresAt Phrase
}

// issue issues a token from the form and shows its secret, once.
func (s *server) issue(w http.ResponseWriter, r *http.Request, v *visit) error {
	f := r.PostForm
	req := domain.IssueRequest{
		Owner:        domain.OwnerID(strings.TrimSpace(f.Get("owner"))),
		Name:         strings.TrimSpace(f.Get("name")),
		Scopes:       strings.Fields(f.Get("scopes")),
		NeverExpires: f.Get("never_expires") != "",
	}
	if req.Owner != "" {
		if err := api.ValidateOwnerName(string(req.Owner)); err != nil {
			return err
		}
	}
	switch k := f.Get("kind"); k {
	case "", string(domain.KindAPI):
		req.Kind = domain.KindAPI
	case string(domain.KindSession):
		req.Kind = domain.KindSession
	default:
		return badRequest(fmt.Sprintf("kind must be %q or %q", domain.KindAPI, domain.KindSession))
	}
	var err error
	if req.ExpiresIn, err = positiveDuration(f, "expires_in"); err != nil {
		return err
	}
	if req.NeverExpires && req.ExpiresIn > 0 {
		return badRequest("give either expires_in or never_expires, not both")
	}
	issued, err := s.ledger.Issue(r.Context(), v.Caller, req, api.RequestID(r.Context()))
	if err != nil {
		return err
	}
	s.showSecret(w, r, v, secretData{Token: rowFromView(issued.View), Secret: issued.Secret.Reveal()})
	return nil
}

// showSecret answers the POST that made a secret with the page that shows
// it: never cached, and (by the page's script) replaced in the browser's
// history by the token's page, so that reloading does not show it again.
func (s *server) showSecret(w http.ResponseWriter, r *http.Request, v *visit, d secretData) {
	s.render(w, r, http.StatusCreated, "secret", page{Title: "Your new token", Me: v, Data: d})
}

// setExpiry sets, shortens or (for an admin) clears a token's expiry.
func (s *server) setExpiry(w http.ResponseWriter, r *http.Request, v *visit) error {
	id, err := tokenID(r)
	if err != nil {
		return err
	}
	f := r.PostForm
	raw := strings.TrimSpace(f.Get("expires_at"))
	never := f.Get("never_expires") != ""
	var at *time.Time
	switch {
	case never && raw != "":
		return badRequest("give either expires_at or never_expires, not both")
	case never:
	case raw == "":
		return badRequest("expires_at is required: an RFC 3339 time such as 2026-12-31T23:59:00Z, a date, or a time from now such as +7d")
	default:
		t, err := domain.ParseTime(raw, s.clock.Now())
		if err != nil {
			return badRequest("expires_at: " + err.Error())
		}
		at = &t
	}
	if _, err := s.ledger.SetExpiry(r.Context(), v.Caller, id, at, api.RequestID(r.Context())); err != nil {
		return err
	}
	http.Redirect(w, r, tokenPath(id), http.StatusSeeOther)
	return nil
}

// rotate issues the token's successor and shows its secret, once.
func (s *server) rotate(w http.ResponseWriter, r *http.Request, v *visit) error {
	id, err := tokenID(r)
	if err != nil {
		return err
	}
	var grace time.Duration
	if raw := strings.TrimSpace(r.PostForm.Get("grace")); raw != "" {
		if grace, err = domain.ParseDuration(raw); err != nil {
			return badRequest(`grace must be a duration such as "1h", "7d" or whole seconds`)
		}
		if grace < 0 {
			return badRequest("grace must not be negative")
		}
	}
	rot, err := s.ledger.Rotate(r.Context(), v.Caller, id, grace, api.RequestID(r.Context()))
	if err != nil {
		return err
	}
	now := rot.Now
	s.showSecret(w, r, v, secretData{Token: rowFromView(rot.View), Secret: rot.Secret.Reveal(),
		Rotated: id.String(), PreviousExpiresAt: expiry(rot.PreviousExpiresAt, now)})
	return nil
}

// revoke revokes a token with the reason given.
func (s *server) revoke(w http.ResponseWriter, r *http.Request, v *visit) error {
	id, err := tokenID(r)
	if err != nil {
		return err
	}
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if err := s.ledger.Revoke(r.Context(), v.Caller, id, reason, api.RequestID(r.Context())); err != nil {
		return err
	}
	if id == v.Caller.TokenID {
		// The session revoked itself: it is signed out.
		clearSession(w, r)
		http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, tokenPath(id), http.StatusSeeOther)
	return nil
}

func tokenPath(id domain.TokenID) string { return "/ui/tokens/" + id.String() }

// tokenID reads the {id} path parameter, as the API does.
func tokenID(r *http.Request) (domain.TokenID, error) {
	id, err := domain.ParseTokenID(r.PathValue("id"))
	if err != nil {
		return domain.TokenID{}, badRequest("the token id in the path is not a valid token id (a 26-character ULID)")
	}
	return id, nil
}

func badRequest(msg string) error { return refuse(http.StatusBadRequest, sdk.CodeInvalidRequest, msg) }

// query returns the request's query, refusing parameters other than
// allowed and repeated ones, as the API does. A form submits every field,
// so an empty parameter counts as absent.
func query(r *http.Request, allowed ...string) (url.Values, error) {
	q := r.URL.Query()
	for k, vs := range q {
		known := false
		for _, a := range allowed {
			known = known || a == k
		}
		if !known {
			return nil, badRequest(fmt.Sprintf("unknown query parameter %q", k))
		}
		if len(vs) != 1 {
			return nil, badRequest(fmt.Sprintf("query parameter %q must be given once", k))
		}
	}
	return q, nil
}

// positiveDuration reads a positive duration field; absent or empty is
// zero.
func positiveDuration(q url.Values, name string) (time.Duration, error) {
	s := strings.TrimSpace(q.Get(name))
	if s == "" {
		return 0, nil
	}
	d, err := domain.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, badRequest(fmt.Sprintf("%s must be a positive duration such as \"30d\", \"720h\" or whole seconds", name))
	}
	return d, nil
}
