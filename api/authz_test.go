package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/sdk"
)

// authzRow is one route of the authorization matrix: the status each kind
// of caller gets from it.
type authzRow struct {
	route                                                          string
	admin, own, other, introspect, expired, rotated, revoked, none int
}

// authzCallers are the callers of the matrix, in the order of authzRow's
// columns.
var authzCallers = []string{"admin", "own", "other", "introspect", "expired", "rotated", "revoked", "none"}

func (r authzRow) want(caller string) int {
	return map[string]int{
		"admin": r.admin, "own": r.own, "other": r.other, "introspect": r.introspect,
		"expired": r.expired, "rotated": r.rotated, "revoked": r.revoked, "none": r.none,
	}[caller]
}

// authzMatrix is who may do what. "own" is a token of the target's owner
// with the scopes read and write; "other" a token of another owner with the
// same scopes; "introspect" a token of "gateway" with ledger:introspect only;
// "expired", "rotated" and "revoked" hold ledger:admin, so only their state
// can refuse them: "rotated" was rotated out, its grace over, so presenting
// it is a reuse of a rotated-out secret, which revokes its family with one
// event (and only that); "none" sends no Authorization header.
var authzMatrix = []authzRow{
	// route: admin, own, other, introspect, expired, rotated, revoked, none
	{"POST /v1/tokens", 201, 201, 403, 403, 401, 401, 401, 401},
	{authzOutlive, 201, 403, 403, 403, 401, 401, 401, 401},
	{"GET /v1/tokens?owner=", 200, 200, 403, 403, 401, 401, 401, 401},
	{"GET /v1/tokens/{id}", 200, 200, 404, 404, 401, 401, 401, 401},
	{"PATCH /v1/tokens/{id}", 200, 200, 404, 404, 401, 401, 401, 401},
	{"DELETE /v1/tokens/{id}", 204, 204, 404, 404, 401, 401, 401, 401},
	{"POST /v1/tokens/{id}/rotate", 201, 201, 404, 404, 401, 401, 401, 401},
	{"GET /v1/tokens/{id}/events", 200, 200, 404, 404, 401, 401, 401, 401},
	{"POST /v1/owners/{owner}/revoke", 200, 200, 403, 403, 401, 401, 401, 401},
	{"POST /v1/revoke", 200, 200, 200, 200, 200, 200, 200, 200},
	{"POST /v1/introspect", 200, 403, 403, 200, 401, 401, 401, 401},
	// Client credentials in the body are ignored (RFC 6749 §3.2): they
	// neither stand in for the bearer token nor change what it may do.
	{"POST /v1/revoke with client parameters", 200, 200, 200, 200, 200, 200, 200, 200},
	{"POST /v1/introspect with client parameters", 200, 403, 403, 200, 401, 401, 401, 401},
	{"GET /v1/auth", 200, 200, 200, 200, 401, 401, 401, 401},
	{"GET /v1/owners/{owner}/events", 200, 200, 403, 403, 401, 401, 401, 401},
	{"GET /v1/state?owner=", 200, 403, 403, 403, 401, 401, 401, 401},
}

// authzOutlive issues a token that would outlive every caller of the
// matrix but the admin (whose bootstrap token is exempt as ledger:admin):
// the callers got the default lifetime before the cell runs, and the
// request asks for an hour more.
const authzOutlive = "POST /v1/tokens outliving the caller"

// authzCaller is one caller of a matrix cell.
type authzCaller struct {
	name, owner string
	// secret is "" for the caller without credentials.
	secret string
}

// authzTarget is the token a matrix cell acts on, fresh for every cell.
type authzTarget struct {
	owner, secret string
	id            domain.TokenID
}

// authzRoute sends one route of the matrix and checks a success.
type authzRoute struct {
	send func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp
	// appends is how many events a success records.
	appends uint64
	// check verifies the answer and effect of a success.
	check func(t *testing.T, s *apitest.Stack, res resp, c authzCaller, tg authzTarget)
}

func authzRoutes() map[string]authzRoute {
	form := func(secret string) string { return "token=" + url.QueryEscape(secret) }
	// clientForm is what OAuth client libraries send: the token, a hint and
	// the client's own credentials, here those of the gateway's client.
	clientForm := func(secret string) string {
		return "client_id=gateway&client_secret=gateway-secret&token=" + url.QueryEscape(secret) + "&token_type_hint=access_token"
	}
	return map[string]authzRoute{
		"POST /v1/tokens": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				return do(t, s, req{method: "POST", path: "/v1/tokens", secret: c.secret,
					body: sdk.IssueRequest{Owner: tg.owner, Name: "by " + c.name, Scopes: []string{"read"}}})
			},
			appends: 1,
			check: func(t *testing.T, s *apitest.Stack, res resp, c authzCaller, tg authzTarget) {
				var got sdk.IssuedToken
				res.decode(t, &got)
				if got.Owner != tg.owner || !slices.Equal(got.Scopes, []string{"read"}) || got.Secret == "" {
					t.Errorf("issued %+v, want a token of %s with scope read", got.TokenMetadata, tg.owner)
				}
			},
		},
		authzOutlive: {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				return do(t, s, req{method: "POST", path: "/v1/tokens", secret: c.secret,
					body: sdk.IssueRequest{Owner: tg.owner, Name: "by " + c.name, Scopes: []string{"read"},
						ExpiresIn: ptr(sdk.Duration(s.Policy.DefaultLifetime + time.Hour))}})
			},
			appends: 1,
			check: func(t *testing.T, s *apitest.Stack, res resp, c authzCaller, tg authzTarget) {
				var got sdk.IssuedToken
				res.decode(t, &got)
				want := s.Clock.Now().Add(s.Policy.DefaultLifetime + time.Hour)
				if got.Owner != tg.owner || got.ExpiresAt == nil || !got.ExpiresAt.Equal(want) {
					t.Errorf("issued %+v, want a token of %s expiring at %v", got.TokenMetadata, tg.owner, want)
				}
			},
		},
		"GET /v1/tokens?owner=": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				return do(t, s, req{method: "GET", path: "/v1/tokens?owner=" + url.QueryEscape(tg.owner), secret: c.secret})
			},
			check: func(t *testing.T, s *apitest.Stack, res resp, c authzCaller, tg authzTarget) {
				var page sdk.TokenPage
				res.decode(t, &page)
				for _, it := range page.Items {
					if it.Owner != tg.owner {
						t.Errorf("listing %s shows a token of %s", tg.owner, it.Owner)
					}
				}
			},
		},
		"GET /v1/tokens/{id}": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				return do(t, s, req{method: "GET", path: "/v1/tokens/" + tg.id.String(), secret: c.secret})
			},
			check: func(t *testing.T, s *apitest.Stack, res resp, c authzCaller, tg authzTarget) {
				var got sdk.Token
				res.decode(t, &got)
				if got.ID != tg.id.String() || got.Owner != tg.owner {
					t.Errorf("got %+v, want token %s of %s", got, tg.id, tg.owner)
				}
			},
		},
		"PATCH /v1/tokens/{id}": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				at := authzShortened(s)
				return do(t, s, req{method: "PATCH", path: "/v1/tokens/" + tg.id.String(), secret: c.secret, body: sdk.SetExpiryRequest{ExpiresAt: &at}})
			},
			appends: 1,
			check: func(t *testing.T, s *apitest.Stack, res resp, c authzCaller, tg authzTarget) {
				var got sdk.Token
				res.decode(t, &got)
				if want := authzShortened(s); got.ExpiresAt == nil || !got.ExpiresAt.Equal(want) {
					t.Errorf("expires_at %v, want %v", got.ExpiresAt, want)
				}
			},
		},
		"DELETE /v1/tokens/{id}": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				return do(t, s, req{method: "DELETE", path: "/v1/tokens/" + tg.id.String(), secret: c.secret})
			},
			appends: 1,
			check:   authzTargetRefused,
		},
		"POST /v1/tokens/{id}/rotate": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				return do(t, s, req{method: "POST", path: "/v1/tokens/" + tg.id.String() + "/rotate", secret: c.secret})
			},
			appends: 2,
			check: func(t *testing.T, s *apitest.Stack, res resp, c authzCaller, tg authzTarget) {
				var got sdk.RotatedToken
				res.decode(t, &got)
				if got.RotatedFrom == nil || *got.RotatedFrom != tg.id.String() || got.Owner != tg.owner {
					t.Errorf("rotated %+v, want a successor of %s", got.TokenMetadata, tg.id)
				}
			},
		},
		"GET /v1/tokens/{id}/events": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				return do(t, s, req{method: "GET", path: "/v1/tokens/" + tg.id.String() + "/events", secret: c.secret})
			},
			check: func(t *testing.T, s *apitest.Stack, res resp, c authzCaller, tg authzTarget) {
				var got sdk.EventList
				res.decode(t, &got)
				if len(got.Items) == 0 || got.Items[0].Type != "token.issued.v1" || got.Items[0].AggregateID != tg.id.String() {
					t.Errorf("events %s, want the history of %s", redact(res.body), tg.id)
				}
			},
		},
		"POST /v1/owners/{owner}/revoke": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				return do(t, s, req{method: "POST", path: "/v1/owners/" + url.PathEscape(tg.owner) + "/revoke", secret: c.secret})
			},
			appends: 1,
			check: func(t *testing.T, s *apitest.Stack, res resp, c authzCaller, tg authzTarget) {
				var got sdk.OwnerRevocation
				res.decode(t, &got)
				if got.Owner != tg.owner {
					t.Errorf("revoked owner %q, want %q", got.Owner, tg.owner)
				}
				authzTargetRefused(t, s, res, c, tg)
			},
		},
		"POST /v1/revoke": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				return do(t, s, req{method: "POST", path: "/v1/revoke", secret: c.secret, body: form(tg.secret), contentType: "application/x-www-form-urlencoded"})
			},
			appends: 1,
			check:   authzTargetRefused,
		},
		"POST /v1/introspect": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				return do(t, s, req{method: "POST", path: "/v1/introspect", secret: c.secret, body: form(tg.secret), contentType: "application/x-www-form-urlencoded"})
			},
			check: func(t *testing.T, s *apitest.Stack, res resp, c authzCaller, tg authzTarget) {
				var got sdk.Introspection
				res.decode(t, &got)
				if !got.Active || got.Subject != tg.owner || got.JTI != tg.id.String() {
					t.Errorf("introspection %s, want %s of %s active", redact(res.body), tg.id, tg.owner)
				}
			},
		},
		"POST /v1/revoke with client parameters": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				return do(t, s, req{method: "POST", path: "/v1/revoke", secret: c.secret, body: clientForm(tg.secret), contentType: "application/x-www-form-urlencoded"})
			},
			appends: 1,
			check:   authzTargetRefused,
		},
		"POST /v1/introspect with client parameters": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				return do(t, s, req{method: "POST", path: "/v1/introspect", secret: c.secret, body: clientForm(tg.secret), contentType: "application/x-www-form-urlencoded"})
			},
			check: func(t *testing.T, s *apitest.Stack, res resp, c authzCaller, tg authzTarget) {
				var got sdk.Introspection
				res.decode(t, &got)
				if !got.Active || got.Subject != tg.owner || got.JTI != tg.id.String() {
					t.Errorf("introspection %s, want %s of %s active", redact(res.body), tg.id, tg.owner)
				}
			},
		},
		"GET /v1/owners/{owner}/events": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				s.WaitProjected(t)
				return do(t, s, req{method: "GET", path: "/v1/owners/" + url.PathEscape(tg.owner) + "/events", secret: c.secret})
			},
			check: func(t *testing.T, s *apitest.Stack, res resp, c authzCaller, tg authzTarget) {
				var got sdk.EventList
				res.decode(t, &got)
				found := false
				for _, e := range got.Items {
					found = found || (e.Type == "token.issued.v1" && e.AggregateID == tg.id.String())
				}
				if !found {
					t.Errorf("owner events %s lack the issue of %s", redact(res.body), tg.id)
				}
			},
		},
		"GET /v1/state?owner=": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				at := url.QueryEscape(s.Clock.Now().Add(time.Second).Format(time.RFC3339Nano))
				return do(t, s, req{method: "GET", path: "/v1/state?owner=" + url.QueryEscape(tg.owner) + "&at=" + at, secret: c.secret})
			},
			check: func(t *testing.T, s *apitest.Stack, res resp, c authzCaller, tg authzTarget) {
				var got sdk.StateAt
				res.decode(t, &got)
				if len(got.Items) == 0 || got.Items[0].Owner != tg.owner {
					t.Errorf("state %s, want the tokens of %s", redact(res.body), tg.owner)
				}
			},
		},
		"GET /v1/auth": {
			send: func(t *testing.T, s *apitest.Stack, c authzCaller, tg authzTarget) resp {
				return do(t, s, req{method: "GET", path: "/v1/auth", secret: c.secret})
			},
			check: func(t *testing.T, s *apitest.Stack, res resp, c authzCaller, tg authzTarget) {
				if got := res.header.Get("X-Token-Owner"); got != c.owner {
					t.Errorf("X-Token-Owner %q, want the caller's owner %q", got, c.owner)
				}
			},
		},
	}
}

// authzShortened is the expiry the matrix's PATCH sets: an hour from now,
// well before the default lifetime the targets get.
func authzShortened(s *apitest.Stack) time.Time {
	return s.Clock.Now().Add(time.Hour).Truncate(time.Second)
}

// authzTargetRefused checks that the cell's target no longer authenticates.
func authzTargetRefused(t *testing.T, s *apitest.Stack, _ resp, _ authzCaller, tg authzTarget) {
	t.Helper()
	if got := authStatus(t, s, tg.secret); got != http.StatusUnauthorized {
		t.Errorf("the target still authenticates after the call (%d)", got)
	}
}

// authzErrorCode is the code a refusal of route with status must carry
// for caller.
func authzErrorCode(route, caller string, status int) string {
	switch status {
	case http.StatusUnauthorized:
		if route == "GET /v1/auth" {
			return sdk.CodeInvalidToken
		}
		return sdk.CodeUnauthorized
	case http.StatusForbidden:
		if route == authzOutlive && caller == "own" {
			return sdk.CodeLifetimeExceedsCaller
		}
		return sdk.CodeForbidden
	case http.StatusNotFound:
		return sdk.CodeNotFound
	}
	return fmt.Sprintf("(no code expected for %d)", status)
}

// TestAuthorizationMatrix sends every management route as every kind of
// caller, each cell against a fresh owner and token so no cell sees
// another's effect, and checks the status against authzMatrix. A refusal
// must be a JSON error, record nothing and leave the target working; a
// success must record exactly what the route records.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	routes := authzRoutes()
	if len(routes) != len(authzMatrix) {
		t.Fatalf("%d route drivers for %d matrix rows", len(routes), len(authzMatrix))
	}

	// The expired caller is issued first and the clock moved past its
	// expiry before any other token exists, so every other token is
	// unaffected by the move.
	expired, _ := issueDirect(t, s, "late", []string{"ledger:admin"}, time.Minute)
	s.Clock.Advance(2 * time.Minute)
	revoked, revokedID := issueDirect(t, s, "gone", []string{"ledger:admin"}, 0)
	if res := do(t, s, req{method: "DELETE", path: "/v1/tokens/" + revokedID.String(), secret: s.Admin}); res.status != http.StatusNoContent {
		t.Fatalf("revoke the revoked caller: %d %s", res.status, redact(res.body))
	}
	// The rotated caller is rotated without grace; the cells start once
	// the validator knows the rotation, so that its first presentation is
	// the reuse.
	rotated, rotatedID := issueDirect(t, s, authzReusedOwner, []string{"ledger:admin"}, 0)
	successor := rotateWithGrace(t, s, rotatedID, 0)
	rotation := s.LastSequence(t)
	waitFor(t, "the validator to apply the rotation", func() bool { return s.API.Validator.Status().AppliedSequence >= rotation })
	other, _ := issueDirect(t, s, "mallory", []string{"read", "write"}, 0)
	introspector, _ := issueDirect(t, s, "gateway", []string{"ledger:introspect"}, 0)
	fixed := map[string]authzCaller{
		"admin":      {name: "admin", owner: "admin", secret: s.Admin},
		"other":      {name: "other", owner: "mallory", secret: other},
		"introspect": {name: "introspect", owner: "gateway", secret: introspector},
		"expired":    {name: "expired", owner: "late", secret: expired},
		"rotated":    {name: "rotated", owner: authzReusedOwner, secret: rotated},
		"revoked":    {name: "revoked", owner: "gone", secret: revoked},
		"none":       {name: "none"},
	}

	cell := 0
	for _, row := range authzMatrix {
		route, ok := routes[row.route]
		if !ok {
			t.Fatalf("no driver for %s", row.route)
		}
		for _, name := range authzCallers {
			cell++
			n := cell
			t.Run(row.route+"/"+name, func(t *testing.T) {
				var tg authzTarget
				tg.owner = fmt.Sprintf("target-%02d", n)
				tg.secret, tg.id = issueDirect(t, s, tg.owner, []string{"read", "write"}, 0)
				c, ok := fixed[name]
				if name == "own" {
					c, ok = authzCaller{name: "own", owner: tg.owner}, true
					c.secret, _ = issueDirect(t, s, tg.owner, []string{"read", "write"}, 0)
				}
				if !ok {
					t.Fatalf("no caller %s", name)
				}
				want := row.want(name)

				before := s.LastSequence(t)
				res := route.send(t, s, c, tg)
				if name == "rotated" && want == http.StatusUnauthorized {
					// The reuse is recorded off the validation path: wait
					// for the family's revocation the first presentation
					// causes, so that it lands within this cell.
					waitFor(t, "the rotated caller's family to be revoked", func() bool {
						return len(familyRevocations(t, s, 0)) == 1
					})
				}
				after := s.LastSequence(t)
				if res.status != want {
					t.Fatalf("%s as %s: %d %s, want %d", row.route, name, res.status, redact(res.body), want)
				}
				if want >= 400 {
					if code, wantCode := res.errorCode(t), authzErrorCode(row.route, name, want); code != wantCode {
						t.Errorf("code %q, want %q", code, wantCode)
					}
					if name == "rotated" {
						// The one thing a reused rotated-out secret may
						// record is the revocation of its family.
						if got := familyRevocations(t, s, before); after-before > 1 || uint64(len(got)) != after-before {
							t.Errorf("a refused call of the rotated caller moved the stream from %d to %d with %d family revocations", before, after, len(got))
						}
					} else if after != before {
						t.Errorf("a refused call moved the stream from %d to %d", before, after)
					}
					if got := authStatus(t, s, tg.secret); got != http.StatusOK {
						t.Errorf("the target no longer authenticates after a refused call (%d)", got)
					}
					return
				}
				if after-before != route.appends {
					t.Errorf("the call appended %d events, want %d", after-before, route.appends)
				}
				route.check(t, s, res, c, tg)
			})
		}
	}

	// Presented at every route, the rotated-out secret revoked its family
	// once, with one event: its successor is refused too.
	if got := familyRevocations(t, s, 0); len(got) != 1 || got[0].Family != rotatedID || got[0].Reuse == nil || got[0].Reuse.Token != rotatedID {
		t.Errorf("family revocations %+v, want one of family %s for the reuse of its secret", got, rotatedID)
	}
	if got := authStatus(t, s, successor.Secret); got != http.StatusUnauthorized {
		t.Errorf("the successor of the rotated caller authenticates (%d) after the reuse", got)
	}
}

// authzReusedOwner is the owner of the matrix's rotated caller.
const authzReusedOwner = "reused"

// familyRevocations returns the owner.family_revoked events of the
// matrix's rotated caller stored after sequence after.
func familyRevocations(t *testing.T, s *apitest.Stack, after uint64) []domain.OwnerFamilyRevoked {
	t.Helper()
	var out []domain.OwnerFamilyRevoked
	_, err := s.Store.Read(context.Background(), after+1, func(e domain.Envelope) error {
		if d, ok := e.Data.(domain.OwnerFamilyRevoked); ok && d.Owner == authzReusedOwner {
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read the stream: %v", err)
	}
	return out
}

// TestEscalationAppendsNothing tries every way a non-admin caller could
// gain more than it holds (scopes, owners, lifetimes, expiries), each of
// which must be refused with nothing recorded, and then shows the same
// caller's legitimate shortening does record its one event.
func TestEscalationAppendsNothing(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	reader, readerID := issueDirect(t, s, "eve", []string{"read"}, 0)
	path := "/v1/tokens/" + readerID.String()
	res := do(t, s, req{method: "GET", path: path, secret: reader})
	var orig sdk.Token
	res.decode(t, &orig)
	if res.status != http.StatusOK || orig.ExpiresAt == nil {
		t.Fatalf("get the caller's own token: %d %s", res.status, redact(res.body))
	}
	later := orig.ExpiresAt.Add(24 * time.Hour)
	shortReader, _ := issueDirect(t, s, "eve", []string{"read"}, 2*time.Hour)

	for _, c := range []struct {
		name, method, path, secret string
		body                       any
		status                     int
		code                       string
	}{
		{"issue with a scope the caller lacks", "POST", "/v1/tokens", reader,
			sdk.IssueRequest{Scopes: []string{"read", "write"}}, 403, sdk.CodeForbidden},
		{"issue with ledger:admin", "POST", "/v1/tokens", reader,
			sdk.IssueRequest{Scopes: []string{"ledger:admin"}}, 403, sdk.CodeForbidden},
		{"issue with ledger:introspect", "POST", "/v1/tokens", reader,
			sdk.IssueRequest{Scopes: []string{"ledger:introspect"}}, 403, sdk.CodeForbidden},
		{"issue for another owner", "POST", "/v1/tokens", reader,
			sdk.IssueRequest{Owner: "alice", Scopes: []string{"read"}}, 403, sdk.CodeForbidden},
		{"issue beyond the maximum lifetime", "POST", "/v1/tokens", reader,
			sdk.IssueRequest{Scopes: []string{"read"}, ExpiresIn: ptr(sdk.Duration(s.Policy.MaxLifetime + time.Hour))}, 400, sdk.CodePolicyViolation},
		{"issue a token that never expires", "POST", "/v1/tokens", reader,
			sdk.IssueRequest{Scopes: []string{"read"}, NeverExpires: true}, 400, sdk.CodePolicyViolation},
		{"issue a token that outlives the caller", "POST", "/v1/tokens", reader,
			sdk.IssueRequest{Scopes: []string{"read"}, ExpiresAt: ptr(orig.ExpiresAt.Add(time.Hour))}, 403, sdk.CodeLifetimeExceedsCaller},
		{"issue a session that outlives the caller", "POST", "/v1/tokens", shortReader,
			sdk.IssueRequest{Scopes: []string{"read"}, Kind: "session", ExpiresIn: ptr(sdk.Duration(3 * time.Hour))}, 403, sdk.CodeLifetimeExceedsCaller},
		{"extend its own token", "PATCH", path, reader,
			sdk.SetExpiryRequest{ExpiresAt: &later}, 403, sdk.CodeForbidden},
		{"clear its own token's expiry", "PATCH", path, reader,
			map[string]any{"expires_at": nil}, 403, sdk.CodeForbidden},
		{"introspect naming the gateway's client in the body", "POST", "/v1/introspect", reader,
			map[string]string{"token": reader, "client_id": "gateway", "client_secret": "gateway-secret", "token_type_hint": "access_token"}, 403, sdk.CodeForbidden},
		{"admin extends beyond the maximum lifetime", "PATCH", path, s.Admin,
			sdk.SetExpiryRequest{ExpiresAt: ptr(orig.CreatedAt.Add(s.Policy.MaxLifetime + time.Hour))}, 400, sdk.CodePolicyViolation},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := s.LastSequence(t)
			res := do(t, s, req{method: c.method, path: c.path, secret: c.secret, body: c.body})
			if res.status != c.status {
				t.Errorf("%d %s, want %d %s", res.status, redact(res.body), c.status, c.code)
			} else if code := res.errorCode(t); code != c.code {
				t.Errorf("code %q, want %q", code, c.code)
			}
			if after := s.LastSequence(t); after != before {
				t.Errorf("the stream moved from %d to %d", before, after)
			}
		})
	}

	res = do(t, s, req{method: "GET", path: path, secret: s.Admin})
	var now sdk.Token
	res.decode(t, &now)
	if now.ExpiresAt == nil || !now.ExpiresAt.Equal(*orig.ExpiresAt) || !slices.Equal(now.Scopes, []string{"read"}) {
		t.Errorf("after the refusals the caller's token is %s, want it unchanged", redact(res.body))
	}

	shorter := s.Clock.Now().Add(time.Hour).Truncate(time.Second)
	before := s.LastSequence(t)
	res = do(t, s, req{method: "PATCH", path: path, secret: reader, body: sdk.SetExpiryRequest{ExpiresAt: &shorter}})
	var got sdk.Token
	res.decode(t, &got)
	if res.status != http.StatusOK || got.ExpiresAt == nil || !got.ExpiresAt.Equal(shorter) {
		t.Fatalf("shorten its own token: %d %s", res.status, redact(res.body))
	}
	if after := s.LastSequence(t); after != before+1 {
		t.Errorf("shortening appended %d events, want 1", after-before)
	}
}
