package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/sdk"
)

// scanKeys is a local stand-in for GitHub's public keys URL: a real HTTP
// server publishing the keys it is given, in GitHub's JSON format, and
// counting how often they are fetched.
type scanKeys struct {
	srv *httptest.Server

	mu        sync.Mutex
	published map[string]*ecdsa.PrivateKey
	fetches   int
}

func newScanKeys(t *testing.T) *scanKeys {
	t.Helper()
	k := &scanKeys{published: map[string]*ecdsa.PrivateKey{}}
	k.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		defer k.mu.Unlock()
		k.fetches++
		type key struct {
			ID        string `json:"key_identifier"`
			Key       string `json:"key"`
			IsCurrent bool   `json:"is_current"`
		}
		var doc struct {
			PublicKeys []key `json:"public_keys"`
		}
		for id, priv := range k.published {
			der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			doc.PublicKeys = append(doc.PublicKeys, key{ID: id, Key: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), IsCurrent: true})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(k.srv.Close)
	return k
}

// publish makes a new key pair and publishes it under id.
func (k *scanKeys) publish(t *testing.T, id string) *ecdsa.PrivateKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k.mu.Lock()
	k.published[id] = priv
	k.mu.Unlock()
	return priv
}

func (k *scanKeys) fetched() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.fetches
}

// sign returns the signature header of body by priv, as GitHub makes it.
func sign(t *testing.T, priv *ecdsa.PrivateKey, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// postReport posts a secret scanning report and returns the status and
// the labels.
func postReport(t *testing.T, s *apitest.Stack, keyID, signature string, body []byte) (int, []sdk.SecretScanningLabel) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/v1/secret-scanning/github", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Github-Public-Key-Identifier", keyID)
	req.Header.Set("Github-Public-Key-Signature", signature)
	res, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var labels []sdk.SecretScanningLabel
	if res.StatusCode == http.StatusOK {
		if err := json.NewDecoder(res.Body).Decode(&labels); err != nil {
			t.Fatal(err)
		}
	}
	return res.StatusCode, labels
}

func reportBody(t *testing.T, reports ...sdk.SecretScanningReport) []byte {
	t.Helper()
	b, err := json.Marshal(reports)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGitHubSecretScanning: a report signed with a published key revokes
// the leaked token within the request (then /v1/auth refuses it) with the
// report in its history, and labels each finding; a tampered body or
// signature is 401 and changes nothing; a report signed with a key id not
// known yet makes the server fetch the keys exactly once more (an id
// nobody published, once, however often it is named); a
// malformed body is 400.
func TestGitHubSecretScanning(t *testing.T) {
	t.Parallel()
	keys := newScanKeys(t)
	first := keys.publish(t, "key-1")
	s := apitest.Start(t, apitest.Options{SecretScanningKeysURL: keys.srv.URL})
	client, err := sdk.New(s.URL, sdk.WithToken(s.Admin), sdk.WithHTTPClient(s.Client()))
	if err != nil {
		t.Fatal(err)
	}
	// Two more API nodes, each with a validator of its own: the one that
	// handles the report refuses the token at once, the others within the
	// propagation bound.
	var others []*sdk.Client
	for range 2 {
		c, err := sdk.New(s.StartNode(t), sdk.WithToken(s.Admin), sdk.WithHTTPClient(s.Client()))
		if err != nil {
			t.Fatal(err)
		}
		others = append(others, c)
	}
	ctx := context.Background()
	leaked, err := client.Issue(ctx, sdk.IssueRequest{Owner: "alice", Name: "pushed to a public repo"})
	if err != nil {
		t.Fatal(err)
	}
	bystander, err := client.Issue(ctx, sdk.IssueRequest{Owner: "alice", Name: "never leaked"})
	if err != nil {
		t.Fatal(err)
	}
	authStatusAt := func(c *sdk.Client, secret string) int {
		t.Helper()
		_, err := c.Auth(ctx, secret, "")
		var e *sdk.Error
		switch {
		case err == nil:
			return http.StatusOK
		case errors.As(err, &e):
			return e.Status
		}
		t.Fatal(err)
		return 0
	}
	authStatus := func(secret string) int { t.Helper(); return authStatusAt(client, secret) }
	for i, c := range append([]*sdk.Client{client}, others...) {
		if got := authStatusAt(c, leaked.Secret); got != http.StatusOK {
			t.Fatalf("before the report: /v1/auth on node %d: %d", i+1, got)
		}
	}

	t.Run("tampered", func(t *testing.T) {
		body := reportBody(t, sdk.SecretScanningReport{Token: bystander.Secret, Type: "tokenledger_token", URL: "https://github.com/x/y/blob/1/a", Source: "content"})
		sig := sign(t, first, body)
		tampered := bytes.Replace(body, []byte("content"), []byte("commit!"), 1)
		for name, c := range map[string]struct {
			body []byte
			sig  string
		}{
			"body changed":      {tampered, sig},
			"signature of none": {body, base64.StdEncoding.EncodeToString([]byte("not a signature"))},
			"no signature":      {body, ""},
			"other key's":       {body, sign(t, keys.publish(t, "unpublished-later"), body)},
		} {
			if status, _ := postReport(t, s, "key-1", c.sig, c.body); status != http.StatusUnauthorized {
				t.Errorf("%s: %d, want 401", name, status)
			}
		}
		if got := authStatus(bystander.Secret); got != http.StatusOK {
			t.Fatalf("a refused report changed the token: /v1/auth %d", got)
		}
	})

	t.Run("leaked", func(t *testing.T) {
		body := reportBody(t,
			sdk.SecretScanningReport{Token: leaked.Secret, Type: "tokenledger_token", URL: "https://github.com/octo/demo/blob/0123abc/config.yml", Source: "content"},
			sdk.SecretScanningReport{Token: "tlk_not_a_token", Type: "tokenledger_token", URL: "https://github.com/octo/demo", Source: "commit"},
		)
		status, labels := postReport(t, s, "key-1", sign(t, first, body), body)
		if status != http.StatusOK || len(labels) != 2 || labels[0].Label != "true_positive" || labels[1].Label != "false_positive" {
			t.Fatalf("report: %d %+v, want true_positive then false_positive", status, labels)
		}
		if got := authStatus(leaked.Secret); got != http.StatusUnauthorized {
			t.Fatalf("after the report: /v1/auth %d, want 401", got)
		}
		for i, c := range others {
			stacktest.Eventually(t, 10*time.Second, func() bool { return authStatusAt(c, leaked.Secret) == http.StatusUnauthorized },
				fmt.Sprintf("the leaked token refused by /v1/auth on node %d", i+2))
		}
		if got := authStatus(bystander.Secret); got != http.StatusOK {
			t.Fatalf("another token: /v1/auth %d, want 200", got)
		}
		events, err := client.Events(ctx, leaked.ID)
		if err != nil {
			t.Fatal(err)
		}
		last := events.Items[len(events.Items)-1]
		raw, _ := json.Marshal(last)
		if last.Type != string(domain.TypeTokenRevoked) || !bytes.Contains(raw, []byte(`"leaked"`)) ||
			!bytes.Contains(raw, []byte("https://github.com/octo/demo/blob/0123abc/config.yml")) || !bytes.Contains(raw, []byte("secret-scanning:github")) {
			t.Fatalf("the token's last event %s does not record the leak with its report", raw)
		}
	})

	t.Run("unknown key id refreshes once", func(t *testing.T) {
		before := keys.fetched()
		second := keys.publish(t, "key-2")
		body := reportBody(t, sdk.SecretScanningReport{Token: leaked.Secret, Type: "tokenledger_token", URL: "https://gist.github.com/x", Source: "gist"})
		status, labels := postReport(t, s, "key-2", sign(t, second, body), body)
		if status != http.StatusOK || len(labels) != 1 || labels[0].Label != "true_positive" {
			t.Fatalf("report signed with a new key: %d %+v, want a true_positive (revoked already)", status, labels)
		}
		if got := keys.fetched() - before; got != 1 {
			t.Fatalf("the keys were fetched %d times for a new key id, want 1", got)
		}
		// A key id nobody published is looked for once, not on every
		// report that names it.
		for range 3 {
			if status, _ = postReport(t, s, "key-3", sign(t, second, body), body); status != http.StatusUnauthorized {
				t.Fatalf("a key id nobody published: %d, want 401", status)
			}
		}
		if got := keys.fetched() - before; got != 2 {
			t.Fatalf("the keys were fetched %d times after three reports naming one unknown key id, want 2 in all", got)
		}
	})

	t.Run("malformed", func(t *testing.T) {
		for _, body := range [][]byte{[]byte(`{"token":"x"}`), []byte(`[{"token":`), []byte(`[{"type":"t"}]`)} {
			if status, _ := postReport(t, s, "key-1", sign(t, first, body), body); status != http.StatusBadRequest {
				t.Errorf("%s: %d, want 400", body, status)
			}
		}
	})
}
