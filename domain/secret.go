package domain

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"strconv"
	"unsafe"

	"github.com/oklog/ulid/v2"
)

// The secret format. A secret is
//
//	tlk_<token id>_<random><checksum>
//
// where <token id> is the token's 26-character ULID (uppercase Crockford
// base32), <random> is SecretRandomLen base62 characters drawn uniformly from
// crypto/rand (62^43 ≈ 2^256.03, so at least 256 bits), and <checksum> is the
// CRC-32 (IEEE) of everything before it, written as SecretChecksumLen base62
// digits, most significant first, zero-padded. The checksum lets a typo be
// rejected without a lookup: CRC-32 detects every error confined to 32
// consecutive bits, so every single-character substitution is caught.
const (
	// SecretPrefix starts every secret; secret scanners key on it.
	SecretPrefix = "tlk_"
	// SecretRandomLen is the number of random base62 characters.
	SecretRandomLen = 43
	// SecretChecksumLen is the number of base62 characters of the checksum.
	SecretChecksumLen = 6
	// SecretLen is the length of every secret, in bytes.
	SecretLen = len(SecretPrefix) + ulid.EncodedSize + 1 + SecretRandomLen + SecretChecksumLen
	// SecretPattern is a regular expression (RE2 and PCRE syntax) that
	// matches every secret tokenledger generates, for secret scanners. Every
	// string ParseSecret accepts matches it; the converse does not hold (the
	// checksum and the ULID range are not expressible in a pattern).
	SecretPattern = `tlk_[0-9A-HJKMNP-TV-Z]{26}_[0-9A-Za-z]{49}`
)

const (
	secretIDStart       = len(SecretPrefix)
	secretSepPos        = secretIDStart + ulid.EncodedSize
	secretRandomStart   = secretSepPos + 1
	secretChecksumStart = secretRandomStart + SecretRandomLen
	// redactedKeep is how much of a secret its redacted form shows: the
	// prefix and the first characters of the (non-secret) token id, enough
	// to tell secrets apart in a log without making one usable.
	redactedKeep = secretIDStart + 4
	redactedMark = "…[redacted]"
)

const (
	base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// crockfordAlphabet is the ULID alphabet in the case oklog/ulid prints.
	crockfordAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	// base62Accept is the rejection-sampling bound: 248 = 4·62 is the
	// largest multiple of 62 that fits in a byte, so b%62 of a byte b below
	// it is uniform over the alphabet.
	base62Accept = 4 * 62
	invalidDigit = 0xFF
)

// base62Digit and crockfordDigit map a byte to its digit value, or
// invalidDigit.
var base62Digit, crockfordDigit = digitTable(base62Alphabet), digitTable(crockfordAlphabet)

func digitTable(alphabet string) *[256]byte {
	var t [256]byte
	for i := range t {
		t[i] = invalidDigit
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return &t
}

// Secret is a freshly generated token secret. It exists only between issue
// and the response that shows it once; tokenledger stores only its Hash.
//
// Reveal is the only way to get the secret out. Every other rendering —
// String, GoString, every fmt verb, JSON, text marshalling and slog — gives
// a redacted form such as "tlk_01JD…[redacted]", so a secret printed or
// logged by mistake leaks nothing. The secret itself is held by a closure,
// so even printers that walk values by reflection (fmt on a struct holding a
// Secret in an unexported field, debugging dumpers) reach only a function
// address. The zero Secret holds nothing and renders as "". A Secret is
// immutable and safe for concurrent use.
type Secret struct {
	v *secretValue
}

type secretValue struct {
	reveal   func() string
	redacted string
	id       TokenID
	hash     SecretHash
}

// GenerateSecret returns a new secret for the token id, its random part drawn
// from entropy; nil entropy means crypto/rand. Outside tests entropy must be
// a cryptographically secure source.
func GenerateSecret(id TokenID, entropy io.Reader) (Secret, error) {
	if id.IsZero() {
		return Secret{}, fmt.Errorf("generate secret: %w: zero token id", ErrInvalidArgument)
	}
	if entropy == nil {
		entropy = rand.Reader
	}
	var b [SecretLen]byte
	copy(b[:], SecretPrefix)
	if err := ulid.ULID(id).MarshalTextTo(b[secretIDStart:secretSepPos]); err != nil {
		return Secret{}, fmt.Errorf("generate secret for token %s: %w", id, err)
	}
	b[secretSepPos] = '_'
	if err := fillBase62(b[secretRandomStart:secretChecksumStart], entropy); err != nil {
		return Secret{}, fmt.Errorf("generate secret for token %s: %w", id, err)
	}
	putChecksum(b[secretChecksumStart:], crc32.ChecksumIEEE(b[:secretChecksumStart]))
	s := string(b[:])
	clear(b[:])
	return Secret{v: &secretValue{
		reveal:   func() string { return s },
		redacted: s[:redactedKeep] + redactedMark,
		id:       id,
		hash:     HashSecret(s),
	}}, nil
}

// fillBase62 fills dst with uniformly distributed base62 characters by
// rejection sampling bytes from entropy.
func fillBase62(dst []byte, entropy io.Reader) error {
	var buf [64]byte
	n := 0
	for n < len(dst) {
		if _, err := io.ReadFull(entropy, buf[:]); err != nil {
			return fmt.Errorf("read entropy: %w", err)
		}
		for _, c := range buf {
			if c >= base62Accept {
				continue
			}
			dst[n] = base62Alphabet[c%62]
			n++
			if n == len(dst) {
				break
			}
		}
	}
	clear(buf[:])
	return nil
}

// putChecksum writes sum as len(dst) base62 digits, most significant first.
func putChecksum(dst []byte, sum uint32) {
	v := uint64(sum)
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = base62Alphabet[v%62]
		v /= 62
	}
}

// Reveal returns the secret itself: the only method that does.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return s.v.reveal()
}

// TokenID returns the id of the token the secret belongs to.
func (s Secret) TokenID() TokenID {
	if s.v == nil {
		return TokenID{}
	}
	return s.v.id
}

// Hash returns the SHA-256 of the secret, the form that is stored.
func (s Secret) Hash() SecretHash {
	if s.v == nil {
		return SecretHash{}
	}
	return s.v.hash
}

// IsZero reports whether s holds no secret.
func (s Secret) IsZero() bool { return s.v == nil }

func (s Secret) redacted() string {
	if s.v == nil {
		return ""
	}
	return s.v.redacted
}

// String returns the redacted form, never the secret.
func (s Secret) String() string { return s.redacted() }

// GoString returns the redacted form, quoted, never the secret.
func (s Secret) GoString() string { return strconv.Quote(s.redacted()) }

// Format implements fmt.Formatter: every verb prints the redacted form (%q
// quoted), never the secret.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' || (verb == 'v' && f.Flag('#')) {
		_, _ = io.WriteString(f, strconv.Quote(s.redacted()))
		return
	}
	_, _ = io.WriteString(f, s.redacted())
}

// MarshalJSON encodes the redacted form as a JSON string, never the secret.
// Use Reveal to put the secret into a response deliberately.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.redacted())), nil }

// MarshalText returns the redacted form, never the secret.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.redacted()), nil }

// LogValue implements slog.LogValuer with the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.redacted()) }

// secretError is a malformed-secret error. The values are preallocated so
// that rejecting a presented secret allocates nothing, and they never contain
// the input, so a rejected secret is not echoed into logs.
type secretError struct{ msg string }

func (e *secretError) Error() string { return e.msg }

// Unwrap makes every secretError match ErrMalformedSecret.
func (e *secretError) Unwrap() error { return ErrMalformedSecret }

var (
	errSecretLength    = &secretError{"malformed secret: not " + strconv.Itoa(SecretLen) + " characters long"}
	errSecretPrefix    = &secretError{"malformed secret: does not start with " + strconv.Quote(SecretPrefix)}
	errSecretSeparator = &secretError{"malformed secret: no '_' after the token id"}
	errSecretID        = &secretError{"malformed secret: the token id is not an uppercase ULID"}
	errSecretCharset   = &secretError{"malformed secret: a character after the token id is not base62"}
	errSecretChecksum  = &secretError{"malformed secret: checksum mismatch"}
)

// unsafeBytes views s as a byte slice without copying. The slice aliases the
// string's immutable memory and must only be read; it is passed only to
// functions that read their input (crc32, sha256, the ULID decoder).
func unsafeBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// ParseSecret checks that s is a well-formed secret — length, prefix,
// separator, character sets and checksum — and returns the token id it
// embeds. It does not say whether the secret belongs to a token: that takes
// comparing HashSecret(s) with the stored hash. Every failure wraps
// ErrMalformedSecret and never contains s. ParseSecret allocates nothing,
// neither on success nor on failure.
func ParseSecret(s string) (TokenID, error) {
	if len(s) != SecretLen {
		return TokenID{}, errSecretLength
	}
	if s[:secretIDStart] != SecretPrefix {
		return TokenID{}, errSecretPrefix
	}
	if s[secretSepPos] != '_' {
		return TokenID{}, errSecretSeparator
	}
	for i := secretIDStart; i < secretSepPos; i++ {
		if crockfordDigit[s[i]] == invalidDigit {
			return TokenID{}, errSecretID
		}
	}
	// 26 base32 digits hold 130 bits; a first digit above 7 overflows 128.
	if s[secretIDStart] > '7' {
		return TokenID{}, errSecretID
	}
	var sum uint64
	for i := secretRandomStart; i < SecretLen; i++ {
		d := base62Digit[s[i]]
		if d == invalidDigit {
			return TokenID{}, errSecretCharset
		}
		if i >= secretChecksumStart {
			sum = sum*62 + uint64(d)
		}
	}
	if sum != uint64(crc32.ChecksumIEEE(unsafeBytes(s[:secretChecksumStart]))) {
		return TokenID{}, errSecretChecksum
	}
	var id ulid.ULID
	if err := id.UnmarshalText(unsafeBytes(s[secretIDStart:secretSepPos])); err != nil {
		// Unreachable: the characters and the overflow were checked above.
		return TokenID{}, errSecretID
	}
	return TokenID(id), nil
}

// HashSecret returns the SHA-256 of the exact string s, the form in which a
// secret is stored and compared. It allocates nothing.
func HashSecret(s string) SecretHash {
	return sha256.Sum256(unsafeBytes(s))
}

// CheckSecret parses s (see ParseSecret) and hashes it (see HashSecret): the
// first step of validating a presented secret. It allocates nothing.
func CheckSecret(s string) (TokenID, SecretHash, error) {
	id, err := ParseSecret(s)
	if err != nil {
		return TokenID{}, SecretHash{}, err
	}
	return id, HashSecret(s), nil
}
