package secretscan

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// The headers of a partner report.
const (
	HeaderKeyID     = "Github-Public-Key-Identifier"
	HeaderSignature = "Github-Public-Key-Signature"
)

// DefaultKeysURL is where GitHub publishes the keys of secret scanning.
const DefaultKeysURL = "https://api.github.com/meta/public_keys/secret_scanning"

var (
	// ErrBadSignature: the report is not signed by a published key.
	ErrBadSignature = errors.New("bad secret scanning signature")
	// ErrKeysUnavailable: the published keys could not be fetched.
	ErrKeysUnavailable = errors.New("secret scanning keys unavailable")
)

// maxKeysBytes bounds the keys document.
const maxKeysBytes = 1 << 20

// Verifier checks report signatures against published keys. It is safe
// for concurrent use.
type Verifier struct {
	url    string
	client *http.Client
	now    func() time.Time

	mu        sync.Mutex
	keys      map[string]*ecdsa.PublicKey
	fetched   bool
	refreshes []time.Time
	tried     map[string]bool
	fetches   int
}

// NewVerifier returns a verifier of the keys published at url; client nil
// means a client with a 10 s timeout.
func NewVerifier(url string, client *http.Client) *Verifier {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Verifier{url: url, client: client, now: time.Now, tried: map[string]bool{}}
}

// Fetches reports how many times the keys were fetched.
func (v *Verifier) Fetches() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.fetches
}

// Verify checks that signature (base64 DER ECDSA) signs body with the key
// keyID. It returns ErrBadSignature when it does not (an unknown key id
// after a refresh, a malformed signature, a signature that does not
// verify) and ErrKeysUnavailable when the keys could not be fetched.
func (v *Verifier) Verify(ctx context.Context, keyID, signature string, body []byte) error {
	if keyID == "" || signature == "" {
		return fmt.Errorf("%w: missing %s or %s", ErrBadSignature, HeaderKeyID, HeaderSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("%w: the signature is not base64", ErrBadSignature)
	}
	key, err := v.key(ctx, keyID)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(key, sum[:], sig) {
		return fmt.Errorf("%w: the signature does not verify with key %q", ErrBadSignature, keyID)
	}
	return nil
}

// key returns the key keyID, fetching the keys on first use and again for
// an id it does not know: once per unknown id, and at most refreshBurst
// times per refreshWindow, so that requests naming made-up ids cannot make
// it fetch without end.
func (v *Verifier) key(ctx context.Context, keyID string) (*ecdsa.PublicKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if k, ok := v.keys[keyID]; ok {
		return k, nil
	}
	if v.fetched && (v.tried[keyID] || !v.mayRefresh()) {
		if v.keys == nil {
			return nil, fmt.Errorf("%w: the last fetch failed", ErrKeysUnavailable)
		}
		return nil, fmt.Errorf("%w: unknown key %q", ErrBadSignature, keyID)
	}
	if err := v.fetch(ctx); err != nil {
		return nil, err
	}
	if k, ok := v.keys[keyID]; ok {
		return k, nil
	}
	if len(v.tried) >= maxTried {
		clear(v.tried)
	}
	v.tried[keyID] = true
	return nil, fmt.Errorf("%w: unknown key %q", ErrBadSignature, keyID)
}

// Refreshes for unknown key ids: at most refreshBurst per refreshWindow;
// maxTried bounds the memory of ids that were not found after a refresh.
const (
	refreshBurst  = 10
	refreshWindow = time.Minute
	maxTried      = 1024
)

// mayRefresh reports whether another refresh fits in the window; v.mu is
// held.
func (v *Verifier) mayRefresh() bool {
	now := v.now()
	recent := v.refreshes[:0]
	for _, at := range v.refreshes {
		if now.Sub(at) < refreshWindow {
			recent = append(recent, at)
		}
	}
	v.refreshes = recent
	return len(recent) < refreshBurst
}

// keysDocument is GitHub's JSON form of the published keys.
type keysDocument struct {
	PublicKeys []struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
		IsCurrent     bool   `json:"is_current"`
	} `json:"public_keys"`
}

// fetch replaces the keys with the published ones; v.mu is held.
func (v *Verifier) fetch(ctx context.Context) error {
	v.fetches++
	v.refreshes = append(v.refreshes, v.now())
	v.fetched = true
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.url, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := v.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s answered %s", ErrKeysUnavailable, v.url, res.Status)
	}
	var doc keysDocument
	if err := json.NewDecoder(io.LimitReader(res.Body, maxKeysBytes)).Decode(&doc); err != nil {
		return fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
	}
	keys := make(map[string]*ecdsa.PublicKey, len(doc.PublicKeys))
	for _, k := range doc.PublicKeys {
		block, _ := pem.Decode([]byte(k.Key))
		if block == nil {
			continue
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			continue
		}
		if ek, ok := pub.(*ecdsa.PublicKey); ok && k.KeyIdentifier != "" {
			keys[k.KeyIdentifier] = ek
		}
	}
	v.keys = keys
	return nil
}
