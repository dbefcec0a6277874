package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/sdk"
)

// lockedBuffer collects log output written from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Bytes returns a copy of everything written so far.
func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// debugJSONLogger logs everything, Debug included, as JSON into w.
func debugJSONLogger(w *lockedBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// windowLen is the length of the pieces of a secret's random part searched
// for: a fragment that long is still 71 bits of the secret.
const windowLen = 12

// leakNeedle is one form of a secret the search looks for.
type leakNeedle struct {
	secret string // which secret, for messages
	form   string // which form of it
	value  []byte
}

// secretNeedles returns the forms of secret searched for, strongest first:
// the secret, its random part, every windowLen-character window of the
// random part, and the secret hex- and base64-encoded (as a bytea column or
// a []byte field would hold it).
func secretNeedles(label, secret string) []leakNeedle {
	random := randomPart(secret)
	n := []leakNeedle{
		{label, "whole", []byte(secret)},
		{label, "its random part", []byte(random)},
		{label, "hex-encoded", []byte(hex.EncodeToString([]byte(secret)))},
		{label, "in base64", []byte(base64.StdEncoding.EncodeToString([]byte(secret)))},
		{label, "in URL base64", []byte(base64.RawURLEncoding.EncodeToString([]byte(secret)))},
	}
	for i := 0; i+windowLen <= len(random); i++ {
		n = append(n, leakNeedle{label, fmt.Sprintf("characters %d-%d of its random part", i+1, i+windowLen), []byte(random[i : i+windowLen])})
	}
	return n
}

// randomPart is the SecretRandomLen random characters of a secret.
func randomPart(secret string) string {
	start := len(domain.SecretPrefix) + 26 + 1
	return secret[start : start+domain.SecretRandomLen]
}

// leakSearch returns, for each secret with a form in haystack, the
// strongest form found.
func leakSearch(haystack []byte, needles []leakNeedle) []leakNeedle {
	var found []leakNeedle
	for _, n := range needles {
		if slices.ContainsFunc(found, func(f leakNeedle) bool { return f.secret == n.secret }) {
			continue
		}
		if bytes.Contains(haystack, n.value) {
			found = append(found, n)
		}
	}
	return found
}

// leakedSecret is a token's secret the test came to know and searches for;
// label names it in messages ("the secret of <label>").
type leakedSecret struct {
	label, secret string
}

// secretHashHex is the lowercase hex SHA-256 of secret.
func secretHashHex(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// searchFindsPlantedSecrets checks that the searcher finds a secret, its
// random part and any window of it that a logger wrote into a buffer of its
// own, and not the redacted form: without it TestNoSecretAnywhere proves
// nothing.
func searchFindsPlantedSecrets(t *testing.T) {
	id, err := domain.NewTokenID(time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := domain.GenerateSecret(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	secret := sec.Reveal()
	random := randomPart(secret)
	needles := secretNeedles("planted", secret)
	for _, c := range []struct {
		name   string
		logged any
		want   string
	}{
		{"the secret", secret, "whole"},
		{"the random part alone", random, "its random part"},
		{"one window of the random part", "…" + random[20:20+windowLen] + "…", "characters 21-32 of its random part"},
		{"the secret as bytes", []byte(secret), "in base64"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var planted lockedBuffer
			debugJSONLogger(&planted).Debug("oops", "value", c.logged)
			found := leakSearch(planted.Bytes(), needles)
			if len(found) != 1 || found[0].form != c.want {
				t.Errorf("search of %s found %v, want %q", planted.Bytes(), found, c.want)
			}
		})
	}
	var clean lockedBuffer
	debugJSONLogger(&clean).Debug("fine", "secret", sec, "token", id)
	if found := leakSearch(clean.Bytes(), needles); len(found) != 0 {
		t.Errorf("the redacted secret %s matched %v", clean.Bytes(), found)
	}
}

// TestNoSecretAnywhere runs every route that handles a secret against a
// real stack logging at Debug, waits until the uses are in PostgreSQL, and
// then looks for each secret it saw — whole, its random part, every
// 12-character window of that part, hex or base64 — in the logs, in every
// column of every table, and in every message (data and headers) of every
// JetStream stream. A secret's SHA-256 may be in its token.issued event and
// in tokens.secret_hash, and nowhere else: never in the logs.
func TestNoSecretAnywhere(t *testing.T) {
	t.Run("the search finds planted secrets", searchFindsPlantedSecrets)
	var logs lockedBuffer
	s := apitest.Start(t, apitest.Options{Log: debugJSONLogger(&logs)})
	ctx := context.Background()

	var secrets []leakedSecret
	keep := func(label, secret string) {
		t.Helper()
		if !strings.HasPrefix(secret, domain.SecretPrefix) || len(secret) != domain.SecretLen {
			t.Fatalf("%s: %q is not a secret", label, secret)
		}
		secrets = append(secrets, leakedSecret{label: label, secret: secret})
	}
	// answers holds every response but the issue and rotate answers, which
	// alone may carry a secret.
	type answer struct {
		what string
		body []byte
	}
	var answers []answer
	call := func(what string, rq req, status int) resp {
		t.Helper()
		res := do(t, s, rq)
		if res.status != status {
			t.Errorf("%s: %d %s, want %d", what, res.status, res.body, status)
		}
		answers = append(answers, answer{what, res.body})
		return res
	}
	form := func(secret string) string { return "token=" + url.QueryEscape(secret) }
	const formType = "application/x-www-form-urlencoded"

	keep("the bootstrap admin", s.Admin)
	// API tokens and sessions, issued by the admin and by an owner.
	alice := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Name: "alice's key", Scopes: []string{"repo:read", "repo:write"}})
	keep("alice (api, by the admin)", alice.Secret)
	aliceSession := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Kind: "session", IdleTimeout: ptr(sdk.Duration(10 * time.Minute))})
	keep("alice's session (by the admin)", aliceSession.Secret)
	ci := issue(t, s, alice.Secret, sdk.IssueRequest{Name: "ci", Scopes: []string{"repo:read"}})
	keep("alice's ci (api, by alice)", ci.Secret)
	ownSession := issue(t, s, alice.Secret, sdk.IssueRequest{Kind: "session", Scopes: []string{"repo:read"}})
	keep("alice's session (by alice)", ownSession.Secret)
	gateway := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "gateway", Scopes: []string{"ledger:introspect"}})
	keep("the gateway", gateway.Secret)
	bob := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "bob", Name: "deploy", Scopes: []string{"deploy"}})
	keep("bob", bob.Secret)
	carol := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "carol", Scopes: []string{"x"}})
	keep("carol (by the admin)", carol.Secret)
	carolOwn := issue(t, s, carol.Secret, sdk.IssueRequest{Name: "carol's own", Scopes: []string{"x"}})
	keep("carol (by carol)", carolOwn.Secret)

	used := map[string]string{ // token id → secret, for the usage wait
		s.AdminID.String(): s.Admin, alice.ID: alice.Secret, aliceSession.ID: aliceSession.Secret, ci.ID: ci.Secret,
		ownSession.ID: ownSession.Secret, gateway.ID: gateway.Secret, bob.ID: bob.Secret, carol.ID: carol.Secret, carolOwn.ID: carolOwn.Secret,
	}
	for range 3 {
		for id, secret := range used {
			call("auth of "+id, req{method: "GET", path: "/v1/auth", secret: secret}, 200)
		}
	}
	call("auth of alice with a scope", req{method: "GET", path: "/v1/auth?scope=repo:write", secret: alice.Secret}, 200)
	call("auth of ci lacking a scope", req{method: "GET", path: "/v1/auth?scope=repo:write", secret: ci.Secret}, 403)

	// Management calls with those secrets as bearers.
	s.WaitProjected(t)
	call("admin lists alice's tokens", req{method: "GET", path: "/v1/tokens?owner=alice", secret: s.Admin}, 200)
	call("alice lists her tokens", req{method: "GET", path: "/v1/tokens", secret: alice.Secret}, 200)
	call("alice's session lists her tokens", req{method: "GET", path: "/v1/tokens?status=active", secret: ownSession.Secret}, 200)
	call("alice gets ci", req{method: "GET", path: "/v1/tokens/" + ci.ID, secret: alice.Secret}, 200)
	call("the admin gets ci", req{method: "GET", path: "/v1/tokens/" + ci.ID, secret: s.Admin}, 200)
	call("alice reads ci's events", req{method: "GET", path: "/v1/tokens/" + ci.ID + "/events", secret: alice.Secret}, 200)
	shorter := s.Clock.Now().Add(2 * time.Hour).Truncate(time.Second)
	call("alice shortens ci", req{method: "PATCH", path: "/v1/tokens/" + ci.ID, secret: alice.Secret, body: sdk.SetExpiryRequest{ExpiresAt: &shorter}}, 200)
	res := do(t, s, req{method: "POST", path: "/v1/tokens/" + ci.ID + "/rotate", secret: alice.Secret, body: sdk.RotateRequest{Grace: ptr(sdk.Duration(time.Hour))}})
	if res.status != http.StatusCreated {
		t.Fatalf("rotate: %d %s", res.status, res.body)
	}
	var rotated sdk.RotatedToken
	res.decode(t, &rotated)
	keep("ci's successor (rotated by alice)", rotated.Secret)
	used[rotated.ID] = rotated.Secret
	for range 3 {
		call("auth of the rotated ci", req{method: "GET", path: "/v1/auth", secret: ci.Secret}, 200)
		call("auth of ci's successor", req{method: "GET", path: "/v1/auth", secret: rotated.Secret}, 200)
	}
	call("the successor gets itself", req{method: "GET", path: "/v1/tokens/" + rotated.ID, secret: rotated.Secret}, 200)
	in := call("the gateway introspects alice's (form)", req{method: "POST", path: "/v1/introspect", secret: gateway.Secret, body: form(alice.Secret), contentType: formType}, 200)
	if !bytes.Contains(in.body, []byte(`"active":true`)) {
		t.Errorf("introspection of alice's token: %s", in.body)
	}
	call("the gateway introspects the successor (JSON)", req{method: "POST", path: "/v1/introspect", secret: gateway.Secret, body: sdk.SecretRequest{Token: rotated.Secret}}, 200)
	call("the admin revokes bob's", req{method: "DELETE", path: "/v1/tokens/" + bob.ID, secret: s.Admin, body: sdk.RevokeRequest{Reason: "left the team"}}, 204)
	call("alice's session revoked by its secret (RFC 7009)", req{method: "POST", path: "/v1/revoke", body: form(aliceSession.Secret) + "&token_type_hint=access_token", contentType: formType}, 200)
	call("carol revokes every token of carol", req{method: "POST", path: "/v1/owners/carol/revoke", secret: carol.Secret, body: sdk.OwnerRevokeRequest{Reason: "offboarded"}}, 200)
	for what, secret := range map[string]string{"bob's": bob.Secret, "alice's session": aliceSession.Secret, "carol's": carol.Secret, "carol's own": carolOwn.Secret} {
		call("auth of the revoked "+what, req{method: "GET", path: "/v1/auth", secret: secret}, 401)
		call("the revoked "+what+" as a bearer", req{method: "GET", path: "/v1/tokens", secret: secret}, 401)
	}
	call("the gateway introspects bob's", req{method: "POST", path: "/v1/introspect", secret: gateway.Secret, body: form(bob.Secret), contentType: formType}, 200)

	// Secrets where they do not belong.
	typo := alice.Secret[:40] + otherBase62(alice.Secret[40]) + alice.Secret[41:]
	call("a secret as the token id in the path", req{method: "GET", path: "/v1/tokens/" + alice.Secret, secret: s.Admin}, 400)
	call("a secret as the token id of a revocation", req{method: "DELETE", path: "/v1/tokens/" + ci.Secret, secret: s.Admin}, 400)
	call("a secret in an unknown JSON field", req{method: "POST", path: "/v1/tokens", secret: s.Admin,
		body: `{"owner":"alice","name":"x","secret":"` + alice.Secret + `"}`}, 400)
	call("a secret in a query parameter of /v1/auth", req{method: "GET", path: "/v1/auth?access_token=" + gateway.Secret, secret: alice.Secret}, 400)
	call("a secret in a query parameter of /v1/auth, no header", req{method: "GET", path: "/v1/auth?access_token=" + gateway.Secret}, 401)
	call("a secret with a typo at /v1/auth", req{method: "GET", path: "/v1/auth", secret: typo}, 401)
	call("a secret with a typo, introspected", req{method: "POST", path: "/v1/introspect", secret: gateway.Secret, body: form(typo), contentType: formType}, 200)
	call("a secret with a typo, revoked by secret", req{method: "POST", path: "/v1/revoke", body: sdk.SecretRequest{Token: typo}}, 200)
	call("a secret with a typo as a bearer", req{method: "GET", path: "/v1/tokens", secret: typo}, 401)
	call("a secret under another scheme", req{method: "GET", path: "/v1/tokens", header: http.Header{"Authorization": {"Token " + ci.Secret}}}, 401)
	call("a secret as the request id", req{method: "GET", path: "/v1/tokens", secret: alice.Secret, header: http.Header{"X-Request-Id": {rotated.Secret}}}, 200)
	res = do(t, s, req{method: "POST", path: "/v1/tokens", secret: s.Admin, body: sdk.IssueRequest{Owner: "dave"},
		header: http.Header{"X-Request-Id": {gateway.Secret}}})
	if res.status != http.StatusCreated {
		t.Fatalf("issue with a secret as the request id: %d %s", res.status, res.body)
	}
	var dave sdk.IssuedToken
	res.decode(t, &dave)
	keep("dave (issued with a secret as the request id)", dave.Secret)
	call("dave's events", req{method: "GET", path: "/v1/tokens/" + dave.ID + "/events", secret: s.Admin}, 200)
	call("a secret as an owner", req{method: "POST", path: "/v1/owners/" + url.PathEscape(gateway.Secret) + "/revoke", secret: alice.Secret}, 403)

	// The usage path must have run: every used token's uses reach
	// PostgreSQL through the usage stream.
	ids := make([]string, 0, len(used))
	for id := range used {
		ids = append(ids, tokenUUID(t, id))
	}
	stacktest.Eventually(t, 30*time.Second, func() bool {
		var n int
		err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM token_usage WHERE token_id = ANY($1::uuid[]) AND use_count > 0`, ids).Scan(&n)
		return err == nil && n == len(ids)
	}, "the uses of every used token did not reach token_usage")
	s.WaitProjected(t)

	var needles []leakNeedle
	for _, sc := range secrets {
		needles = append(needles, secretNeedles(sc.label, sc.secret)...)
	}

	t.Run("responses", func(t *testing.T) {
		for _, a := range answers {
			for _, f := range leakSearch(a.body, needles) {
				t.Errorf("the answer to %q holds the secret of %s (%s): %s", a.what, f.secret, f.form, a.body)
			}
		}
	})

	t.Run("logs", func(t *testing.T) {
		logged := logs.Bytes()
		if !bytes.Contains(logged, []byte(`"level":"DEBUG"`)) || !bytes.Contains(logged, []byte(`"msg":"token issued"`)) {
			t.Fatalf("the log holds no Debug line of an issue: the search would prove nothing:\n%s", logged)
		}
		for _, f := range leakSearch(logged, needles) {
			t.Errorf("the log holds the secret of %s (%s):\n%s", f.secret, f.form, linesWith(logged, f.value))
		}
		lower := bytes.ToLower(logged)
		for _, sc := range secrets {
			if h := secretHashHex(sc.secret); bytes.Contains(lower, []byte(h)) {
				t.Errorf("the log holds the SHA-256 of the secret of %s:\n%s", sc.label, linesWith(lower, []byte(h)))
			}
		}
	})

	t.Run("postgres", func(t *testing.T) {
		cols := postgresColumns(t, s)
		var scanned []string
		hashAt := map[string][]string{} // secret label → columns holding its hash
		for _, c := range cols {
			scanned = append(scanned, c.where)
			for _, f := range leakSearch(c.values, needles) {
				t.Errorf("%s holds the secret of %s (%s)", c.where, f.secret, f.form)
			}
			for _, sc := range secrets {
				sum := sha256.Sum256([]byte(sc.secret))
				if bytes.Contains(c.values, []byte(hex.EncodeToString(sum[:]))) || (c.raw && bytes.Contains(c.values, sum[:])) {
					hashAt[sc.label] = append(hashAt[sc.label], c.where)
				}
			}
		}
		t.Logf("scanned %d columns: %s", len(scanned), strings.Join(scanned, " "))
		for _, want := range []string{"public.tokens.secret_hash", "public.token_usage.token_id", "public.owner_revocations.reason"} {
			if !slices.Contains(scanned, want) {
				t.Errorf("column %s was not scanned; scanned %v", want, scanned)
			}
		}
		for _, sc := range secrets {
			// Found, it also proves the scan reads the bytea column.
			if got := slices.Compact(hashAt[sc.label]); !slices.Equal(got, []string{"public.tokens.secret_hash"}) {
				t.Errorf("the SHA-256 of the secret of %s is in %v, want it in public.tokens.secret_hash only", sc.label, got)
			}
		}
	})

	t.Run("jetstream", func(t *testing.T) {
		msgs := streamMessages(t, s)
		cfg := s.Store.Config()
		perStream := map[string]int{}
		hashIn := map[string][]string{} // secret label → messages holding its hash
		for _, m := range msgs {
			perStream[m.stream]++
			for _, f := range leakSearch(m.content, needles) {
				t.Errorf("%s holds the secret of %s (%s):\n%s", m.where, f.secret, f.form, m.content)
			}
			for _, sc := range secrets {
				if bytes.Contains(bytes.ToLower(m.content), []byte(secretHashHex(sc.secret))) {
					hashIn[sc.label] = append(hashIn[sc.label], m.where+" ("+m.eventType+")")
				}
			}
		}
		t.Logf("scanned the messages of every stream: %v", perStream)
		if perStream[cfg.Stream] == 0 || perStream[cfg.UsageStream] == 0 {
			t.Errorf("messages read per stream: %v, want some in %s and in %s", perStream, cfg.Stream, cfg.UsageStream)
		}
		for _, sc := range secrets {
			got := hashIn[sc.label]
			if len(got) != 1 || !strings.HasSuffix(got[0], "("+string(domain.TypeTokenIssued)+")") {
				t.Errorf("the SHA-256 of the secret of %s is in %v, want it in its token.issued event only", sc.label, got)
			}
		}
	})
}

// otherBase62 returns a base62 character other than c.
func otherBase62(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

// tokenUUID is the PostgreSQL uuid of a token id.
func tokenUUID(t *testing.T, id string) string {
	t.Helper()
	tid, err := domain.ParseTokenID(id)
	if err != nil {
		t.Fatalf("token id %q: %v", id, err)
	}
	b := [16]byte(tid)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// linesWith returns the lines of text that hold needle, for messages.
func linesWith(text, needle []byte) string {
	var out []string
	for line := range bytes.Lines(text) {
		if bytes.Contains(line, needle) {
			out = append(out, string(bytes.TrimSpace(line)))
		}
	}
	return strings.Join(out, "\n")
}

// pgColumn is every value of one column, as text one per line; a bytea
// column's raw bytes follow its text form.
type pgColumn struct {
	where  string // schema.table.column
	raw    bool
	values []byte
}

// postgresColumns reads every column of every table outside PostgreSQL's
// own schemas.
func postgresColumns(t *testing.T, s *apitest.Stack) []pgColumn {
	t.Helper()
	ctx := context.Background()
	rows, err := s.Pool.Query(ctx, `
		SELECT c.table_schema, c.table_name, c.column_name, c.data_type
		FROM information_schema.columns c
		JOIN information_schema.tables t USING (table_schema, table_name)
		WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
		ORDER BY 1, 2, c.ordinal_position`)
	if err != nil {
		t.Fatalf("list columns: %v", err)
	}
	type column struct{ schema, table, name, typ string }
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		err := r.Scan(&c.schema, &c.table, &c.name, &c.typ)
		return c, err
	})
	if err != nil {
		t.Fatalf("list columns: %v", err)
	}
	var out []pgColumn
	for _, c := range cols {
		col, table := pgx.Identifier{c.name}.Sanitize(), pgx.Identifier{c.schema, c.table}.Sanitize()
		pc := pgColumn{where: c.schema + "." + c.table + "." + c.name, raw: c.typ == "bytea"}
		texts, err := queryColumn[*string](ctx, s, fmt.Sprintf(`SELECT %s::text FROM %s`, col, table))
		if err != nil {
			t.Fatalf("read %s: %v", pc.where, err)
		}
		for _, v := range texts {
			if v != nil {
				pc.values = append(append(pc.values, *v...), '\n')
			}
		}
		if pc.raw {
			raws, err := queryColumn[[]byte](ctx, s, fmt.Sprintf(`SELECT %s FROM %s`, col, table))
			if err != nil {
				t.Fatalf("read %s: %v", pc.where, err)
			}
			for _, v := range raws {
				pc.values = append(append(pc.values, v...), '\n')
			}
		}
		out = append(out, pc)
	}
	return out
}

func queryColumn[T any](ctx context.Context, s *apitest.Stack, sql string) ([]T, error) {
	rows, err := s.Pool.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[T])
}

// streamMessage is one stored JetStream message: its subject, headers and
// data.
type streamMessage struct {
	stream, where, eventType string
	content                  []byte
}

// streamMessages reads every message stored in every stream of the
// account, the lifecycle and usage streams among them.
func streamMessages(t *testing.T, s *apitest.Stack) []streamMessage {
	t.Helper()
	ctx := context.Background()
	js, err := jetstream.New(s.Store.Conn())
	if err != nil {
		t.Fatal(err)
	}
	names := js.StreamNames(ctx)
	var out []streamMessage
	for name := range names.Name() {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		for seq := info.State.FirstSeq; seq != 0 && seq <= info.State.LastSeq; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				t.Fatalf("stream %s message %d: %v", name, seq, err)
			}
			var b bytes.Buffer
			b.WriteString(m.Subject + "\n")
			for k, vs := range m.Header {
				for _, v := range vs {
					b.WriteString(k + ": " + v + "\n")
				}
			}
			b.Write(m.Data)
			typ := "undecodable"
			if e, err := decodeStored(s.Store.Registry(), m.Data); err == nil {
				typ = string(e.Type)
			}
			out = append(out, streamMessage{stream: name, where: fmt.Sprintf("stream %s message %d", name, seq), eventType: typ, content: b.Bytes()})
		}
	}
	if err := names.Err(); err != nil {
		t.Fatalf("list streams: %v", err)
	}
	return out
}

// decodeStored decodes a stored message's body: a usage batch in its
// binary form, any other event as JSON.
func decodeStored(reg *domain.Registry, data []byte) (domain.Envelope, error) {
	if domain.IsUsageBatch(data) {
		return reg.UnmarshalUsageBatch(data)
	}
	return reg.Unmarshal(data)
}
