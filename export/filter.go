package export

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// Format is the encoding of an export's data file.
type Format string

// The formats of an export.
const (
	// JSONL writes one JSON object per line, its members always the
	// Columns in that order.
	JSONL Format = "jsonl"
	// CSV writes an RFC 4180 header row and one record per event, the
	// Columns in that order, with the formula guard described in the
	// package documentation.
	CSV Format = "csv"
)

// Valid reports whether f is a known format.
func (f Format) Valid() bool { return f == JSONL || f == CSV }

// Filter selects the events of an export: those whose Envelope.Time is in
// [From, To), of one of Types (every type when empty), of Owner's tokens
// or Owner itself (every owner when empty). Usage events (usage.batch.v1
// and token.used.v1) come from the usage stream and are selected only
// with IncludeUsage.
// Format is part of the filter because the chain's start (H0) commits to
// it.
type Filter struct {
	From, To     time.Time
	Owner        domain.OwnerID
	Types        []domain.EventType
	IncludeUsage bool
	Format       Format
}

// lifecycleTypes are the event types of the lifecycle stream.
var lifecycleTypes = []domain.EventType{
	domain.TypeTokenIssued, domain.TypeTokenExpirySet, domain.TypeTokenRevoked, domain.TypeOwnerTokensRevoked,
	domain.TypeOwnerFamilyRevoked, domain.TypeTokenExpiring, domain.TypeTokenExpired, domain.TypeOwnerWebhookDisabled, domain.TypeTokenCIDRsSet,
}

// Normalize returns f with its times in UTC and its types sorted without
// duplicates: the form the manifest records and H0 commits to.
func (f Filter) Normalize() Filter {
	f.From, f.To = f.From.UTC(), f.To.UTC()
	f.Types = slices.Clone(f.Types)
	slices.Sort(f.Types)
	f.Types = slices.Compact(f.Types)
	if f.Types == nil {
		f.Types = []domain.EventType{}
	}
	return f
}

// Validate reports every problem with f at once: missing or inverted
// times, times finer than a microsecond (event times have microsecond
// precision, so a finer bound would be ambiguous), an invalid owner,
// unknown types, a usage type without IncludeUsage (or IncludeUsage with
// types that leave both usage types out), an unknown format.
func (f Filter) Validate() error {
	var errs []error
	switch {
	case f.From.IsZero() || f.To.IsZero():
		errs = append(errs, errors.New("from and to must both be set"))
	case !f.From.Before(f.To):
		errs = append(errs, fmt.Errorf("from %s is not before to %s", formatTime(f.From), formatTime(f.To)))
	}
	for _, t := range []struct {
		name string
		at   time.Time
	}{{"from", f.From}, {"to", f.To}} {
		if !t.at.IsZero() && !t.at.Equal(domain.NormalizeTime(t.at)) {
			errs = append(errs, fmt.Errorf("%s %s is finer than a microsecond", t.name, t.at.Format(time.RFC3339Nano)))
		}
		if y := t.at.UTC().Year(); !t.at.IsZero() && (y < 1 || y > 9999) {
			errs = append(errs, fmt.Errorf("%s is outside the years 1 to 9999", t.name))
		}
	}
	if f.Owner != "" {
		if err := domain.ValidateOwner(f.Owner); err != nil {
			errs = append(errs, fmt.Errorf("owner: %w", err))
		}
	}
	usage := false
	for _, t := range f.Types {
		switch {
		case usageType(t):
			usage = true
			if !f.IncludeUsage {
				errs = append(errs, fmt.Errorf("type %s needs include usage", t))
			}
		case !slices.Contains(lifecycleTypes, t):
			errs = append(errs, fmt.Errorf("unknown event type %q (want one of %s, %s, %s)", t, typeList(lifecycleTypes), domain.TypeUsageBatch, domain.TypeTokenUsed))
		}
	}
	if f.IncludeUsage && len(f.Types) > 0 && !usage {
		errs = append(errs, fmt.Errorf("include usage with types that leave %s and %s out", domain.TypeUsageBatch, domain.TypeTokenUsed))
	}
	if !f.Format.Valid() {
		errs = append(errs, fmt.Errorf("format %q: want jsonl or csv", f.Format))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: export filter: %w", domain.ErrInvalidArgument, err)
	}
	return nil
}

func typeList(types []domain.EventType) string {
	var b bytes.Buffer
	for i, t := range types {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(t))
	}
	return b.String()
}

// selectsType reports whether events of type t are selected.
func (f Filter) selectsType(t domain.EventType) bool {
	if usageType(t) && !f.IncludeUsage {
		return false
	}
	return len(f.Types) == 0 || slices.Contains(f.Types, t)
}

// inRange reports whether t is in [From, To).
func (f Filter) inRange(t time.Time) bool { return !t.Before(f.From) && t.Before(f.To) }

// filterJSON is the JSON form of a Filter, its members in this order.
type filterJSON struct {
	From         string             `json:"from"`
	To           string             `json:"to"`
	Owner        domain.OwnerID     `json:"owner"`
	Types        []domain.EventType `json:"types"`
	IncludeUsage bool               `json:"include_usage"`
	Format       Format             `json:"format"`
}

// MarshalJSON encodes the normalized filter, times as RFC 3339 with six
// fraction digits in UTC. The encoding is canonical: equal filters encode
// to equal bytes.
func (f Filter) MarshalJSON() ([]byte, error) {
	n := f.Normalize()
	return json.Marshal(filterJSON{
		From: formatTime(n.From), To: formatTime(n.To), Owner: n.Owner, Types: n.Types,
		IncludeUsage: n.IncludeUsage, Format: n.Format,
	})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (f *Filter) UnmarshalJSON(b []byte) error {
	var w filterJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return fmt.Errorf("filter: %w", err)
	}
	from, err := parseTime([]byte(w.From))
	if err != nil {
		return fmt.Errorf("filter: from: %w", err)
	}
	to, err := parseTime([]byte(w.To))
	if err != nil {
		return fmt.Errorf("filter: to: %w", err)
	}
	*f = Filter{From: from, To: to, Owner: w.Owner, Types: w.Types, IncludeUsage: w.IncludeUsage, Format: w.Format}
	return nil
}

// chainDomain is hashed before the filter into the chain's start, so that
// no other use of SHA-256 can produce the same H0.
const chainDomain = "tokenledger-export-v1"

// H0 returns the start of the hash chain of an export with filter f:
// SHA-256("tokenledger-export-v1" || the filter's canonical JSON).
func (f Filter) H0() [32]byte {
	b, err := f.MarshalJSON()
	if err != nil {
		// Every field of a filter encodes; only an impossible time would
		// fail, and formatTime has none.
		panic(fmt.Sprintf("export filter does not encode: %v", err))
	}
	h := sha256.New()
	h.Write([]byte(chainDomain))
	h.Write(b)
	var out [32]byte
	h.Sum(out[:0])
	return out
}
