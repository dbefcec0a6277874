package eventstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/tokenledger/tokenledger/domain"
)

// maxEscapedOwner is the longest escaped owner kept verbatim in a subject;
// longer ones are replaced by a hash.
const maxEscapedOwner = 200

// OwnerToken encodes an owner id as one subject token. The encoding is
// injective and subject-safe: the bytes [A-Za-z0-9-] are kept, every other
// byte becomes "_XX" (two uppercase hex digits), and when the escaped form
// is longer than 200 bytes it is replaced by "_h" followed by the
// lowercase hex SHA-256 of the owner. A hashed form cannot equal an
// escaped one, since in an escaped form every "_" is followed by two
// uppercase hex digits. The result never contains '.', '*', '>', white
// space or non-ASCII bytes. An empty owner (which ValidateOwner refuses)
// yields "".
func OwnerToken(owner domain.OwnerID) string {
	s := string(owner)
	n := 0
	for i := 0; i < len(s); i++ {
		if keepOwnerByte(s[i]) {
			n++
		} else {
			n += 3
		}
	}
	if n > maxEscapedOwner {
		sum := sha256.Sum256([]byte(s))
		return "_h" + hex.EncodeToString(sum[:])
	}
	if n == len(s) {
		return s
	}
	const upperHex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keepOwnerByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&0x0f])
	}
	return b.String()
}

func keepOwnerByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

// EventName is the subject token of an event type: the type without its
// aggregate prefix, dots replaced by '_' ("token.issued.v1" →
// "issued_v1", "owner.tokens_revoked.v1" → "tokens_revoked_v1"). It fails
// for a type that would not make a safe subject token.
func EventName(t domain.EventType) (string, error) {
	_, rest, ok := strings.Cut(string(t), ".")
	if !ok || rest == "" {
		return "", fmt.Errorf("%w: event type %q has no aggregate prefix", domain.ErrInvalidArgument, t)
	}
	name := strings.ReplaceAll(rest, ".", "_")
	for i := 0; i < len(name); i++ {
		if c := name[i]; !keepOwnerByte(c) && c != '_' {
			return "", fmt.Errorf("%w: event type %q is not subject-safe", domain.ErrInvalidArgument, t)
		}
	}
	return name, nil
}

// Subjects builds the subjects of one deployment's streams from its
// prefix (Config.SubjectPrefix, "tl" by default):
//
//	tl.token.<TokenID>.<name>   token lifecycle events
//	tl.owner.<owner>.<name>     owner events (owner encoded by OwnerToken)
//	tl.usage.<TokenID>          token.used events, in the usage stream
//	tl.usage.batch              usage batches, in the usage stream
//
// A Subjects is a value and safe for concurrent use.
type Subjects struct {
	prefix string
}

// NewSubjects returns the subject builder for prefix.
func NewSubjects(prefix string) Subjects { return Subjects{prefix: prefix} }

// Prefix returns the subject prefix.
func (s Subjects) Prefix() string { return s.prefix }

// Lifecycle lists the lifecycle stream's subjects.
func (s Subjects) Lifecycle() []string {
	return []string{s.prefix + ".token.>", s.prefix + ".owner.>"}
}

// Usage lists the usage stream's subjects.
func (s Subjects) Usage() []string { return []string{s.UsageFilter()} }

// TokenSubject is the subject an event of type t on token id is stored on.
func (s Subjects) TokenSubject(id domain.TokenID, t domain.EventType) (string, error) {
	name, err := EventName(t)
	if err != nil {
		return "", err
	}
	return s.prefix + ".token." + id.String() + "." + name, nil
}

// TokenFilter matches every lifecycle event of token id; it is the filter
// of the token's optimistic concurrency check.
func (s Subjects) TokenFilter(id domain.TokenID) string {
	return s.prefix + ".token." + id.String() + ".*"
}

// TokenTypeFilter matches every lifecycle event of type t, of any token.
func (s Subjects) TokenTypeFilter(t domain.EventType) (string, error) {
	name, err := EventName(t)
	if err != nil {
		return "", err
	}
	return s.prefix + ".token.*." + name, nil
}

// OwnerSubject is the subject an event of type t on owner is stored on.
func (s Subjects) OwnerSubject(owner domain.OwnerID, t domain.EventType) (string, error) {
	if err := domain.ValidateOwner(owner); err != nil {
		return "", err
	}
	name, err := EventName(t)
	if err != nil {
		return "", err
	}
	return s.prefix + ".owner." + OwnerToken(owner) + "." + name, nil
}

// OwnerFilter matches every event of owner (not the events of its tokens);
// it is the filter of the owner's optimistic concurrency check.
func (s Subjects) OwnerFilter(owner domain.OwnerID) string {
	return s.prefix + ".owner." + OwnerToken(owner) + ".*"
}

// UsageSubject is the usage stream subject of token id.
func (s Subjects) UsageSubject(id domain.TokenID) string {
	return s.prefix + ".usage." + id.String()
}

// UsageBatchSubject is the usage stream subject of usage batches
// (domain.UsageBatch). It cannot be a token's: a TokenID has 26
// characters.
func (s Subjects) UsageBatchSubject() string { return s.prefix + ".usage.batch" }

// UsageFilter matches every usage event.
func (s Subjects) UsageFilter() string { return s.prefix + ".usage.>" }

// Filter is the concurrency filter of aggregate a: TokenFilter or
// OwnerFilter.
func (s Subjects) Filter(a Aggregate) string {
	if a.kind == domain.AggregateOwner {
		return s.prefix + ".owner." + OwnerToken(domain.OwnerID(a.id)) + ".*"
	}
	return s.prefix + ".token." + a.id + ".*"
}

// Subject is the subject event e is stored on: TokenSubject,
// OwnerSubject, UsageSubject for token.used events or UsageBatchSubject
// for usage batches.
func (s Subjects) Subject(e domain.Envelope) (string, error) {
	if e.Type == domain.TypeUsageBatch {
		if e.AggregateKind != domain.AggregateValidator {
			return "", fmt.Errorf("%w: event %s: %s is a validator event", domain.ErrInvalidArgument, e.ID, e.Type)
		}
		return s.UsageBatchSubject(), nil
	}
	a, err := AggregateOf(e)
	if err != nil {
		return "", err
	}
	if e.Type == domain.TypeTokenUsed {
		if a.kind != domain.AggregateToken {
			return "", fmt.Errorf("%w: event %s: %s is a token event", domain.ErrInvalidArgument, e.ID, e.Type)
		}
		return s.prefix + ".usage." + a.id, nil
	}
	name, err := EventName(e.Type)
	if err != nil {
		return "", err
	}
	if a.kind == domain.AggregateOwner {
		return s.prefix + ".owner." + OwnerToken(domain.OwnerID(a.id)) + "." + name, nil
	}
	return s.prefix + ".token." + a.id + "." + name, nil
}

// matches reports, without allocating for token events, whether subject is
// the subject event e must be stored on.
func (s Subjects) matches(subject string, e domain.Envelope) bool {
	rest, ok := strings.CutPrefix(subject, s.prefix)
	if !ok || rest == "" || rest[0] != '.' {
		return false
	}
	rest = rest[1:]
	if e.Type == domain.TypeTokenUsed {
		tail, ok := strings.CutPrefix(rest, "usage.")
		return ok && e.AggregateKind == domain.AggregateToken && tail == e.AggregateID
	}
	if e.Type == domain.TypeUsageBatch {
		return rest == "usage.batch" && e.AggregateKind == domain.AggregateValidator
	}
	var agg string
	switch e.AggregateKind {
	case domain.AggregateToken:
		if rest, ok = strings.CutPrefix(rest, "token."); !ok {
			return false
		}
		agg = e.AggregateID
	case domain.AggregateOwner:
		if rest, ok = strings.CutPrefix(rest, "owner."); !ok {
			return false
		}
		agg = OwnerToken(domain.OwnerID(e.AggregateID))
	default:
		return false
	}
	if rest, ok = strings.CutPrefix(rest, agg); !ok || rest == "" || rest[0] != '.' {
		return false
	}
	return eventNameEquals(rest[1:], e.Type)
}

// eventNameEquals reports whether name is EventName(t), without allocating.
func eventNameEquals(name string, t domain.EventType) bool {
	_, typ, ok := strings.Cut(string(t), ".")
	if !ok || len(typ) != len(name) {
		return false
	}
	for i := 0; i < len(typ); i++ {
		c := typ[i]
		if c == '.' {
			c = '_'
		}
		if name[i] != c {
			return false
		}
	}
	return true
}
