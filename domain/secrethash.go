package domain

import (
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

// SecretHash is the SHA-256 of a token's secret: the only form of the secret
// tokenledger keeps. It is encoded as lowercase hex.
type SecretHash [32]byte

// String returns the hash as lowercase hex.
func (h SecretHash) String() string { return hex.EncodeToString(h[:]) }

// Equal compares two hashes in constant time.
func (h SecretHash) Equal(other SecretHash) bool {
	return subtle.ConstantTimeCompare(h[:], other[:]) == 1
}

// IsZero reports whether h is all zeroes (no hash).
func (h SecretHash) IsZero() bool { return h == SecretHash{} }

// MarshalText implements encoding.TextMarshaler.
func (h SecretHash) MarshalText() ([]byte, error) {
	out := make([]byte, hex.EncodedLen(len(h)))
	hex.Encode(out, h[:])
	return out, nil
}

// UnmarshalText implements encoding.TextUnmarshaler; it accepts exactly 64
// hex digits.
func (h *SecretHash) UnmarshalText(b []byte) error {
	if len(b) != hex.EncodedLen(len(h)) {
		return fmt.Errorf("secret hash: want %d hex digits, got %d", hex.EncodedLen(len(h)), len(b))
	}
	var out SecretHash
	if _, err := hex.Decode(out[:], b); err != nil {
		return fmt.Errorf("secret hash: %w", err)
	}
	*h = out
	return nil
}
