package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/sdk"
)

// Lifetimes are thought of in days: expires_in, idle_timeout, grace and the
// list filters take "30d", "2w" and "1d12h" next to Go durations and
// seconds, and GET /v1/state takes ?at= as every command takes a time.
func TestDurationsInDaysAndTimesAsPeopleWriteThem(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	now := s.Clock.Now()

	for _, tt := range []struct {
		expiresIn string
		want      time.Duration
	}{
		{"30d", 30 * domain.Day},
		{"2w", 14 * domain.Day},
		{"1d12h", 36 * time.Hour},
	} {
		res := do(t, s, req{method: "POST", path: "/v1/tokens", secret: s.Admin,
			body: `{"owner": "alice", "expires_in": "` + tt.expiresIn + `"}`})
		if res.status != http.StatusCreated {
			t.Fatalf("expires_in %q: %d %s", tt.expiresIn, res.status, redact(res.body))
		}
		var got sdk.IssuedToken
		res.decode(t, &got)
		if want := now.Add(tt.want); got.ExpiresAt == nil || !got.ExpiresAt.Equal(want) {
			t.Errorf("expires_in %q: expires_at %v, want %v", tt.expiresIn, got.ExpiresAt, want)
		}
	}

	res := do(t, s, req{method: "POST", path: "/v1/tokens", secret: s.Admin,
		body: `{"owner": "alice", "kind": "session", "expires_in": "1d", "idle_timeout": "1d"}`})
	if res.status != http.StatusCreated {
		t.Fatalf("a session with idle_timeout 1d: %d %s", res.status, redact(res.body))
	}
	var session sdk.IssuedToken
	res.decode(t, &session)
	if session.IdleTimeout == nil || time.Duration(*session.IdleTimeout) != domain.Day {
		t.Errorf("idle_timeout %v, want 24h", session.IdleTimeout)
	}

	res = do(t, s, req{method: "POST", path: "/v1/tokens/" + session.ID + "/rotate", secret: s.Admin, body: `{"grace": "1d"}`})
	if res.status != http.StatusCreated {
		t.Fatalf("rotate with grace 1d: %d %s", res.status, redact(res.body))
	}
	var rotated sdk.RotatedToken
	res.decode(t, &rotated)
	if want := now.Add(domain.Day); !rotated.PreviousExpiresAt.Equal(want) {
		t.Errorf("previous_expires_at %v, want %v", rotated.PreviousExpiresAt, want)
	}

	for _, q := range []string{"unused_for=30d", "expiring_within=2w", "unused_for=1w2d&expiring_within=1d12h"} {
		if res := do(t, s, req{method: "GET", path: "/v1/tokens?" + q, secret: s.Admin}); res.status != http.StatusOK {
			t.Errorf("GET /v1/tokens?%s: %d %s", q, res.status, res.body)
		}
	}
	for _, body := range []string{`{"owner": "alice", "expires_in": "1.5d"}`, `{"owner": "alice", "expires_in": "30days"}`, `{"owner": "alice", "expires_in": "-1d"}`} {
		before := s.LastSequence(t)
		res := do(t, s, req{method: "POST", path: "/v1/tokens", secret: s.Admin, body: body})
		if res.status != http.StatusBadRequest || res.errorCode(t) != sdk.CodeInvalidRequest {
			t.Errorf("%s: %d %s, want 400 invalid_request", body, res.status, res.body)
		}
		if after := s.LastSequence(t); after != before {
			t.Errorf("%s moved the stream from %d to %d", body, before, after)
		}
	}

	s.WaitProjected(t)
	for _, at := range []string{"now", "-2h", "2026-01-01", now.Format(time.RFC3339Nano)} {
		if res := do(t, s, req{method: "GET", path: "/v1/state?at=" + at, secret: s.Admin}); res.status != http.StatusOK {
			t.Errorf("GET /v1/state?at=%s: %d %s", at, res.status, res.body)
		}
	}
	if res := do(t, s, req{method: "GET", path: "/v1/state?at=yesterday", secret: s.Admin}); res.status != http.StatusBadRequest {
		t.Errorf("GET /v1/state?at=yesterday: %d %s, want 400", res.status, res.body)
	}
}
