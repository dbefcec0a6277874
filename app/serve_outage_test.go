package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/internal/testkit/storetest"
	"github.com/tokenledger/tokenledger/sdk"
	"github.com/tokenledger/tokenledger/stack"
)

// readiness is the body of an API node's /readyz.
type readiness struct {
	Status   string            `json:"status"`
	Checks   map[string]string `json:"checks"`
	Degraded []string          `json:"degraded"`
}

// TestServeWithPostgresDown stops the PostgreSQL of a running `serve`.
// Every change still answers success, with its event in the stream: PATCH
// used to answer 503 after its event was committed, because it read the
// token's usage from the read model to build its answer; now the answer
// comes from the token's history, marked usage_partial, with the last use
// the node's validator saw. Validation keeps answering from memory, and
// /readyz stays 200 (it used to be 503 on every node, so a load balancer
// would have dropped them all), naming postgres and the projection as
// degraded parts, as tokenledger_degraded{part} does.
func TestServeWithPostgresDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := stacktest.NATS(t)
	pg := stacktest.OwnPostgres(t, stack.PostgresConfig{DataDir: filepath.Join(stacktest.TraversableDir(t), "data")})
	if err := pg.CreateDatabase(ctx, "ledger"); err != nil {
		t.Fatal(err)
	}
	pgURL := pg.URL("ledger") + "&connect_timeout=2"
	if _, err := app.Migrate(ctx, pgURL); err != nil {
		t.Fatal(err)
	}
	boot, err := app.AdminBootstrap(ctx, app.BootstrapConfig{NATSURL: srv.ClientURL(), Store: eventstore.DefaultConfig(), Policy: domain.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.DefaultServeConfig()
	cfg.NATSURL, cfg.PostgresURL, cfg.API.HTTPAddr = srv.ClientURL(), pgURL, "127.0.0.1:0"
	s, stop, err := app.StartServe(ctx, cfg, discard)
	if err != nil {
		t.Fatalf("start serve: %v", err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := stop(stopCtx); err != nil {
			t.Errorf("stop serve: %v", err)
		}
	})
	admin := boot.Secret.Reveal()
	call := func(method, path, secret string, body any, want int, out any) {
		t.Helper()
		var rd io.Reader
		ct := "application/json"
		switch b := body.(type) {
		case nil:
		case url.Values:
			rd, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
		default:
			data, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(data)
		}
		r, err := http.NewRequest(method, s.URL()+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if rd != nil {
			r.Header.Set("Content-Type", ct)
		}
		if secret != "" {
			r.Header.Set("Authorization", "Bearer "+secret)
		}
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		data, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != want {
			t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, data)
		}
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
			}
		}
	}
	issue := func(name string) sdk.IssuedToken {
		t.Helper()
		var tok sdk.IssuedToken
		call("POST", "/v1/tokens", admin, sdk.IssueRequest{Owner: "alice", Name: name, Scopes: []string{"read"}}, http.StatusCreated, &tok)
		return tok
	}
	patched, revoked, rotated := issue("patched"), issue("revoked"), issue("rotated")
	call("GET", "/v1/auth", patched.Secret, nil, http.StatusOK, nil)
	var ready readiness
	call("GET", "/readyz", "", nil, http.StatusOK, &ready)
	if ready.Status != "ready" || len(ready.Degraded) != 0 {
		t.Fatalf("/readyz before the outage: %+v, want ready with nothing degraded", ready)
	}
	before, err := s.Store.StreamLastSequence(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if err := pg.Stop(ctx); err != nil {
		t.Fatalf("stop postgres: %v", err)
	}

	exp := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	var set sdk.Token
	call("PATCH", "/v1/tokens/"+patched.ID, admin, sdk.SetExpiryRequest{ExpiresAt: &exp}, http.StatusOK, &set)
	if set.ExpiresAt == nil || !set.ExpiresAt.Equal(exp) || set.Status != "active" {
		t.Errorf("PATCH answer %+v, want expires_at %s and active", set, exp)
	}
	if !set.UsagePartial || set.LastUsedAt == nil {
		t.Errorf("PATCH answer without the read model: usage_partial %v, last_used_at %v; want partial usage with the validator's last use",
			set.UsagePartial, set.LastUsedAt)
	}
	call("DELETE", "/v1/tokens/"+revoked.ID, admin, nil, http.StatusNoContent, nil)
	var rot sdk.RotatedToken
	call("POST", "/v1/tokens/"+rotated.ID+"/rotate", admin, nil, http.StatusCreated, &rot)
	fresh := issue("issued during the outage")
	var ownerRev sdk.OwnerRevocation
	call("POST", "/v1/owners/bob/revoke", admin, sdk.OwnerRevokeRequest{Reason: "offboarded"}, http.StatusOK, &ownerRev)
	call("POST", "/v1/revoke", "", url.Values{"token": {fresh.Secret}}, http.StatusOK, nil)
	var got sdk.Token
	call("GET", "/v1/tokens/"+patched.ID, admin, nil, http.StatusOK, &got)
	if !got.UsagePartial || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) {
		t.Errorf("GET without the read model: %+v, want the new expiry and partial usage", got)
	}
	// Validation answers from memory, for the tokens changed meanwhile too.
	call("GET", "/v1/auth", rot.Secret, nil, http.StatusOK, nil)
	call("GET", "/v1/auth", revoked.Secret, nil, http.StatusUnauthorized, nil)
	call("GET", "/v1/auth", fresh.Secret, nil, http.StatusUnauthorized, nil)

	// Every change is in the stream, in order.
	type change struct {
		typ       domain.EventType
		aggregate string
	}
	want := []change{
		{domain.TypeTokenExpirySet, patched.ID},
		{domain.TypeTokenRevoked, revoked.ID},
		{domain.TypeTokenExpirySet, rotated.ID},
		{domain.TypeTokenIssued, rot.ID},
		{domain.TypeTokenIssued, fresh.ID},
		{domain.TypeOwnerTokensRevoked, "bob"},
		{domain.TypeTokenRevoked, fresh.ID},
	}
	var changes []change
	for _, e := range storetest.ReadAll(t, s.Store) {
		if e.Sequence > before {
			changes = append(changes, change{e.Type, e.AggregateID})
		}
	}
	if !slices.Equal(changes, want) {
		t.Errorf("events appended during the outage:\n got  %v\n want %v", changes, want)
	}

	call("GET", "/readyz", "", nil, http.StatusOK, &ready)
	if ready.Status != "degraded" || !slices.Equal(ready.Degraded, []string{"postgres", "projection"}) ||
		ready.Checks["validator"] != "ok" || ready.Checks["event_store"] != "ok" || ready.Checks["postgres"] == "ok" {
		t.Errorf("/readyz with PostgreSQL down: %+v, want 200, degraded postgres and projection, validator and event store ok", ready)
	}
	res, err := http.Get(s.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, line := range []string{`tokenledger_degraded{part="postgres"} 1`, `tokenledger_degraded{part="projection"} 1`} {
		if !bytes.Contains(metrics, []byte(line)) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}
