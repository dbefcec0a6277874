package domain

import (
	"fmt"
	"io"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

// TokenID is the public, non-secret identity of a token: a ULID whose
// timestamp is the instant the token was issued. It is embedded in the
// token's secret, so a validator can find a token's history from the secret
// alone.
type TokenID ulid.ULID

// NewTokenID returns a fresh TokenID stamped with t, its randomness drawn
// from entropy (nil means crypto/rand).
func NewTokenID(t time.Time, entropy io.Reader) (TokenID, error) {
	id, err := newULID(t, entropy)
	return TokenID(id), err
}

// ParseTokenID parses the 26-character canonical form of a TokenID.
func ParseTokenID(s string) (TokenID, error) {
	id, err := ulid.ParseStrict(s)
	if err != nil {
		return TokenID{}, fmt.Errorf("%w: token id %q is not a ULID", ErrInvalidArgument, truncateForError(s))
	}
	return TokenID(id), nil
}

// String returns the 26-character canonical form.
func (id TokenID) String() string { return ulid.ULID(id).String() }

// Time returns the issue instant encoded in the id (millisecond precision).
func (id TokenID) Time() time.Time { return ulid.ULID(id).Timestamp().UTC() }

// IsZero reports whether id is the zero value.
func (id TokenID) IsZero() bool { return ulid.ULID(id).IsZero() }

// Compare orders ids by issue time, then randomness.
func (id TokenID) Compare(other TokenID) int { return ulid.ULID(id).Compare(ulid.ULID(other)) }

// MarshalText implements encoding.TextMarshaler.
func (id TokenID) MarshalText() ([]byte, error) { return ulid.ULID(id).MarshalText() }

// UnmarshalText implements encoding.TextUnmarshaler; it accepts only the
// canonical form.
func (id *TokenID) UnmarshalText(b []byte) error {
	parsed, err := ParseTokenID(string(b))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}

// EventID identifies one recorded event. It doubles as the deduplication key
// of the event store, so retrying an append with the same EventID never
// stores the event twice.
type EventID ulid.ULID

// NewEventID returns a fresh EventID stamped with t.
func NewEventID(t time.Time, entropy io.Reader) (EventID, error) {
	id, err := newULID(t, entropy)
	return EventID(id), err
}

// ParseEventID parses the canonical form of an EventID.
func ParseEventID(s string) (EventID, error) {
	id, err := ulid.ParseStrict(s)
	if err != nil {
		return EventID{}, fmt.Errorf("%w: event id %q is not a ULID", ErrInvalidArgument, truncateForError(s))
	}
	return EventID(id), nil
}

// String returns the 26-character canonical form.
func (id EventID) String() string { return ulid.ULID(id).String() }

// IsZero reports whether id is the zero value.
func (id EventID) IsZero() bool { return ulid.ULID(id).IsZero() }

// MarshalText implements encoding.TextMarshaler.
func (id EventID) MarshalText() ([]byte, error) { return ulid.ULID(id).MarshalText() }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *EventID) UnmarshalText(b []byte) error {
	parsed, err := ParseEventID(string(b))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}

func newULID(t time.Time, entropy io.Reader) (ulid.ULID, error) {
	if entropy == nil {
		entropy = defaultEntropy
	}
	id, err := ulid.New(ulid.Timestamp(t), entropy)
	if err != nil {
		return ulid.ULID{}, fmt.Errorf("new ulid: %w", err)
	}
	return id, nil
}

// OwnerID names whoever a token belongs to: a user, a service, a tenant. It
// is free text chosen by the caller (dots, spaces, '*', '>' and non-ASCII are
// all allowed) within the limits ValidateOwner enforces; storage layers must
// encode it before using it in a subject or a path.
type OwnerID string

// MaxOwnerLen is the largest owner id accepted, in bytes.
const MaxOwnerLen = 256

// ValidateOwner reports whether o is an acceptable owner id: 1 to
// MaxOwnerLen bytes of valid UTF-8 without control characters.
func ValidateOwner(o OwnerID) error {
	return validateText("owner", string(o), 1, MaxOwnerLen)
}

// validateText checks that s is valid UTF-8 of min..max bytes with no
// control characters (NUL, newlines, DEL, ...).
func validateText(field, s string, minLen, maxLen int) error {
	switch {
	case len(s) < minLen && minLen == 1:
		return fmt.Errorf("%w: %s must not be empty", ErrInvalidArgument, field)
	case len(s) < minLen:
		return fmt.Errorf("%w: %s must be at least %d bytes", ErrInvalidArgument, field, minLen)
	case len(s) > maxLen:
		return fmt.Errorf("%w: %s is %d bytes, at most %d allowed", ErrInvalidArgument, field, len(s), maxLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidArgument, field)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s contains the control character %U", ErrInvalidArgument, field, r)
		}
	}
	return nil
}

// truncateForError keeps error messages bounded when echoing caller input.
func truncateForError(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
