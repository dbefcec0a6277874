package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers every delivery carries.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every signing secret as it is shown: "whsec_"
// followed by the standard base64 of the key.
const SecretPrefix = "whsec_"

// secretSize is the size of a signing key, in bytes.
const secretSize = 32

// Secret is an endpoint's signing key. Its String never shows it; Reveal
// does, once, to whoever registered the endpoint.
type Secret struct{ key []byte }

// NewSecret returns a fresh signing key from crypto/rand.
func NewSecret() Secret {
	key := make([]byte, secretSize)
	_, _ = rand.Read(key) // never fails (crypto/rand panics instead)
	return Secret{key: key}
}

// ParseSecret reads a secret as Reveal writes it.
func ParseSecret(s string) (Secret, error) {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return Secret{}, fmt.Errorf("a webhook secret starts with %q", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(key) < 24 {
		return Secret{}, fmt.Errorf("a webhook secret is %q and the base64 of at least 24 bytes", SecretPrefix)
	}
	return Secret{key: key}, nil
}

// Reveal returns the secret as receivers configure it: "whsec_<base64>".
func (s Secret) Reveal() string { return SecretPrefix + base64.StdEncoding.EncodeToString(s.key) }

// String hides the secret.
func (Secret) String() string { return "whsec_[redacted]" }

// GoString hides the secret.
func (Secret) GoString() string { return "webhooks.Secret{[redacted]}" }

// Sign returns the webhook-signature header value of a message with id
// msgID sent at ts with body: "v1," and the standard base64 of the
// HMAC-SHA256, under the key, of "<msgID>.<unix seconds>.<body>".
func (s Secret) Sign(msgID string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(msgID))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
