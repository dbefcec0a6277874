package domain

import (
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/oklog/ulid/v2"
)

// The event codec: decoding and encoding of tokenledger's events without
// reflection, a few allocations per event, for rebuild and export, which
// decode every event of a stream.
//
// It is a fast path in front of encoding/json, not a second definition of
// the format. The decoder accepts only what it can decode exactly as
// encoding/json does: the keys the payload types name, spelled exactly, at
// most once each; strings without escapes and in valid UTF-8; whole
// numbers; null only where a field is a pointer. Anything else — an
// unknown or differently cased key (a field added later, say), an escape,
// a refused event — makes it give up, and Registry.Unmarshal decodes the
// event with encoding/json instead, which gives the result and the errors
// it always gave. The encoder writes the bytes json.Marshal writes, and
// leaves strings that need escaping and times json.Marshal refuses to
// json.Marshal. FuzzCodec holds both to encoding/json.

// eventCodec is implemented by the payloads that have a fast codec.
type eventCodec interface {
	// codecFields is the fieldSignature of the payload type the codec was
	// written for. A payload whose fields have changed since (a field
	// added in a merge, say) has a different signature, and Registry
	// leaves it to encoding/json until the codec is brought up to date.
	codecFields() string
	// decodeEvent decodes and normalizes a payload; ok is false when the
	// payload is outside what the fast decoder accepts or is refused.
	decodeEvent(data []byte) (e Event, ok bool)
}

// eventAppender is implemented by the payloads that encode themselves.
type eventAppender interface {
	// appendJSON appends the payload as json.Marshal writes it; ok is
	// false when it leaves the payload to json.Marshal.
	appendJSON(b []byte) ([]byte, bool)
}

// fieldSignature describes the fields of struct type t as encoding/json
// sees them: name, type and json tag of each.
func fieldSignature(t reflect.Type) string {
	var b strings.Builder
	for i := range t.NumField() {
		f := t.Field(i)
		fmt.Fprintf(&b, "%s %s %q;", f.Name, f.Type, f.Tag.Get("json"))
	}
	return b.String()
}

// envelopeFields is the fieldSignature of wireEnvelope that unmarshalFast
// and marshalFast were written for.
const envelopeFields = `ID domain.EventID "id";Type domain.EventType "type";AggregateKind domain.AggregateKind "aggregate_type";AggregateID string "aggregate_id";Actor string "actor";Time time.Time "time";Schema int "schema";CorrelationID string "correlation_id,omitempty";Data json.RawMessage "data";`

// envelopeCodecCurrent reports whether the envelope codec is up to date.
var envelopeCodecCurrent = fieldSignature(reflect.TypeFor[wireEnvelope]()) == envelopeFields

// unmarshalFast is Unmarshal for the events the fast decoder accepts; ok is
// false for any other input, valid or not.
func (r *Registry) unmarshalFast(b []byte) (Envelope, bool) {
	const (
		fID = 1 << iota
		fType
		fKind
		fAggID
		fActor
		fTime
		fSchema
		fCorrelation
		fData
	)
	d := scanner{b: b}
	var (
		e          Envelope
		typ, data  []byte
		seen       uint16
		timeString []byte
	)
	if !d.open() {
		return Envelope{}, false
	}
	for more := d.first(); more; more = d.next() {
		var bit uint16
		switch string(d.key()) {
		case "id":
			bit = fID
			e.ID = EventID(d.ulid())
		case "type":
			bit = fType
			typ = d.str()
		case "aggregate_type":
			bit = fKind
			switch string(d.str()) {
			case string(AggregateToken):
				e.AggregateKind = AggregateToken
			case string(AggregateOwner):
				e.AggregateKind = AggregateOwner
			default:
				d.fail()
			}
		case "aggregate_id":
			bit = fAggID
			e.AggregateID = d.string()
		case "actor":
			bit = fActor
			e.Actor = d.string()
		case "time":
			bit = fTime
			timeString = d.rawStr()
		case "schema":
			bit = fSchema
			e.Schema = int(d.uint(math.MaxInt))
		case "correlation_id":
			bit = fCorrelation
			e.CorrelationID = d.string()
		case "data":
			bit = fData
			data = d.skip()
		default:
			return Envelope{}, false
		}
		if seen&bit != 0 {
			return Envelope{}, false
		}
		seen |= bit
	}
	if !d.end() || len(data) == 0 || data[0] != '{' {
		return Envelope{}, false
	}
	reg, ok := r.types[EventType(typ)]
	if !ok || reg.decodeFast == nil {
		return Envelope{}, false
	}
	e.Type = reg.name
	if timeString != nil && e.Time.UnmarshalJSON(timeString) != nil {
		return Envelope{}, false
	}
	if e.ID.IsZero() || e.AggregateKind != reg.kind || !validEventTime(e.Time) || e.Schema != reg.schema ||
		validateAggregateID(e.AggregateKind, e.AggregateID) != nil {
		return Envelope{}, false
	}
	e.Time = NormalizeTime(e.Time)
	if e.Data, ok = reg.decodeFast(data); !ok {
		return Envelope{}, false
	}
	return e, true
}

func (*TokenIssued) codecFields() string {
	return `Owner domain.OwnerID "owner";Name string "name";Scopes []string "scopes";Kind domain.TokenKind "kind";SecretHash domain.SecretHash "secret_sha256";ExpiresAt *time.Time "expires_at";IdleTimeout domain.Seconds "idle_timeout,omitempty";AbsoluteExpiresAt *time.Time "absolute_expires_at,omitempty";RotatedFrom *domain.TokenID "rotated_from,omitempty";Family *domain.TokenID "family,omitempty";AllowedCIDRs []string "allowed_cidrs,omitempty";`
}

func (*TokenIssued) decodeEvent(data []byte) (Event, bool) {
	const (
		fOwner = 1 << iota
		fName
		fScopes
		fKind
		fHash
		fExpires
		fIdle
		fAbsolute
		fRotated
		fFamily
		fCIDRs
	)
	var e TokenIssued
	var seen uint16
	d := scanner{b: data}
	d.open()
	for more := d.first(); more; more = d.next() {
		var bit uint16
		switch string(d.key()) {
		case "owner":
			bit = fOwner
			e.Owner = OwnerID(d.string())
		case "name":
			bit = fName
			e.Name = d.string()
		case "scopes":
			bit = fScopes
			e.Scopes = d.strings()
		case "kind":
			bit = fKind
			switch k := d.str(); string(k) {
			case string(KindAPI):
				e.Kind = KindAPI
			case string(KindSession):
				e.Kind = KindSession
			default:
				e.Kind = TokenKind(k)
			}
		case "secret_sha256":
			bit = fHash
			if e.SecretHash.UnmarshalText(d.str()) != nil {
				return nil, false
			}
		case "expires_at":
			bit = fExpires
			e.ExpiresAt = d.timePtr()
		case "idle_timeout":
			bit = fIdle
			e.IdleTimeout = Seconds(d.uint(math.MaxInt64))
		case "absolute_expires_at":
			bit = fAbsolute
			e.AbsoluteExpiresAt = d.timePtr()
		case "rotated_from":
			bit = fRotated
			e.RotatedFrom = d.tokenIDPtr()
		case "family":
			bit = fFamily
			e.Family = d.tokenIDPtr()
		case "allowed_cidrs":
			bit = fCIDRs
			e.AllowedCIDRs = d.strings()
		default:
			return nil, false
		}
		if seen&bit != 0 {
			return nil, false
		}
		seen |= bit
	}
	if !d.end() || e.normalize() != nil {
		return nil, false
	}
	return e, true
}

func (*TokenUsed) codecFields() string {
	return `Count uint64 "count";FirstAt time.Time "first_at";LastAt time.Time "last_at";ClientAddr string "client_addr,omitempty";`
}

func (*TokenUsed) decodeEvent(data []byte) (Event, bool) {
	const (
		fCount = 1 << iota
		fFirst
		fLast
		fAddr
	)
	var e TokenUsed
	var seen uint16
	d := scanner{b: data}
	d.open()
	for more := d.first(); more; more = d.next() {
		var bit uint16
		switch string(d.key()) {
		case "count":
			bit = fCount
			e.Count = d.uint(math.MaxUint64)
		case "first_at":
			bit = fFirst
			e.FirstAt = d.time()
		case "last_at":
			bit = fLast
			e.LastAt = d.time()
		case "client_addr":
			bit = fAddr
			e.ClientAddr = d.string()
		default:
			return nil, false
		}
		if seen&bit != 0 {
			return nil, false
		}
		seen |= bit
	}
	if !d.end() || e.normalize() != nil {
		return nil, false
	}
	return e, true
}

func (*TokenExpirySet) codecFields() string {
	return `ExpiresAt *time.Time "expires_at";Reason domain.ExpiryReason "reason";RotatedTo *domain.TokenID "rotated_to,omitempty";`
}

func (*TokenExpirySet) decodeEvent(data []byte) (Event, bool) {
	const (
		fExpires = 1 << iota
		fReason
		fRotated
	)
	var e TokenExpirySet
	var seen uint16
	d := scanner{b: data}
	d.open()
	for more := d.first(); more; more = d.next() {
		var bit uint16
		switch string(d.key()) {
		case "expires_at":
			bit = fExpires
			e.ExpiresAt = d.timePtr()
		case "reason":
			bit = fReason
			switch r := d.str(); string(r) {
			case string(ExpirySetByCaller):
				e.Reason = ExpirySetByCaller
			case string(ExpiryRotated):
				e.Reason = ExpiryRotated
			case string(ExpirySessionExtended):
				e.Reason = ExpirySessionExtended
			default:
				e.Reason = ExpiryReason(r)
			}
		case "rotated_to":
			bit = fRotated
			e.RotatedTo = d.tokenIDPtr()
		default:
			return nil, false
		}
		if seen&bit != 0 {
			return nil, false
		}
		seen |= bit
	}
	if !d.end() || e.normalize() != nil {
		return nil, false
	}
	return e, true
}

// A revocation with a reuse (rare: a rotation family's) or a leak report
// is left to encoding/json both ways.
func (*TokenRevoked) codecFields() string {
	return `Reason string "reason,omitempty";Reuse *domain.SecretReuse "reuse,omitempty";Report *domain.LeakReport "report,omitempty";`
}

func (*TokenRevoked) decodeEvent(data []byte) (Event, bool) {
	var e TokenRevoked
	var seen bool
	d := scanner{b: data}
	d.open()
	for more := d.first(); more; more = d.next() {
		if string(d.key()) != "reason" || seen {
			return nil, false
		}
		seen = true
		e.Reason = d.string()
	}
	if !d.end() {
		return nil, false
	}
	return e, true
}

// A family revocation is rare and carries a nested object (the reuse):
// it is left to encoding/json both ways.
func (*OwnerFamilyRevoked) codecFields() string {
	return `Owner domain.OwnerID "owner";Family domain.TokenID "family";Reason string "reason";Reuse *domain.SecretReuse "reuse,omitempty";`
}

func (*OwnerFamilyRevoked) decodeEvent([]byte) (Event, bool) { return nil, false }

func (OwnerFamilyRevoked) appendJSON([]byte) ([]byte, bool) { return nil, false }

func (*OwnerTokensRevoked) codecFields() string {
	return `Owner domain.OwnerID "owner";RevokedBefore time.Time "revoked_before";Until *time.Time "until,omitempty";Reason string "reason,omitempty";`
}

func (*OwnerTokensRevoked) decodeEvent(data []byte) (Event, bool) {
	const (
		fOwner = 1 << iota
		fBefore
		fUntil
		fReason
	)
	var e OwnerTokensRevoked
	var seen uint16
	d := scanner{b: data}
	d.open()
	for more := d.first(); more; more = d.next() {
		var bit uint16
		switch string(d.key()) {
		case "owner":
			bit = fOwner
			e.Owner = OwnerID(d.string())
		case "revoked_before":
			bit = fBefore
			e.RevokedBefore = d.time()
		case "until":
			bit = fUntil
			e.Until = d.timePtr()
		case "reason":
			bit = fReason
			e.Reason = d.string()
		default:
			return nil, false
		}
		if seen&bit != 0 {
			return nil, false
		}
		seen |= bit
	}
	if !d.end() || e.normalize() != nil {
		return nil, false
	}
	return e, true
}

// scanner reads the JSON the fast decoder accepts. Its methods never fail
// loudly: the first thing it cannot read exactly as encoding/json would
// marks it failed, after which every method returns zero values and end
// reports false.
type scanner struct {
	b      []byte
	i      int
	failed bool
}

func (d *scanner) fail() { d.failed = true; d.i = len(d.b) }

func (d *scanner) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// consume skips white space and then c, or fails.
func (d *scanner) consume(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	d.fail()
	return false
}

// peek skips white space and reports whether c comes next.
func (d *scanner) peek(c byte) bool {
	d.ws()
	return d.i < len(d.b) && d.b[d.i] == c
}

func (d *scanner) open() bool { return d.consume('{') }

// first reports whether the object just opened has a member.
func (d *scanner) first() bool {
	if d.failed {
		return false
	}
	if d.peek('}') {
		d.i++
		return false
	}
	return true
}

// next reports whether another member follows the one just read.
func (d *scanner) next() bool {
	if d.failed {
		return false
	}
	if d.peek(',') {
		d.i++
		return true
	}
	d.consume('}')
	return false
}

// key reads a member's key and its colon.
func (d *scanner) key() []byte {
	k := d.str()
	d.consume(':')
	return k
}

// end reports whether the input was read whole without failing.
func (d *scanner) end() bool {
	d.ws()
	return !d.failed && d.i == len(d.b)
}

// rawStr reads a string and returns it with its quotes.
func (d *scanner) rawStr() []byte {
	d.ws()
	start := d.i
	d.str()
	if d.failed {
		return nil
	}
	return d.b[start:d.i]
}

// str reads a string without escapes in valid UTF-8 and returns its
// contents, which alias the input.
func (d *scanner) str() []byte {
	if !d.consume('"') {
		return nil
	}
	start := d.i
	ascii := true
	for ; d.i < len(d.b); d.i++ {
		c := d.b[d.i]
		switch {
		case c == '"':
			s := d.b[start:d.i]
			d.i++
			if !ascii && !utf8.Valid(s) {
				d.fail()
				return nil
			}
			return s
		case c < 0x20 || c == '\\':
			d.fail()
			return nil
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	d.fail()
	return nil
}

// string reads a string into memory of its own.
func (d *scanner) string() string { return string(d.str()) }

// strings reads an array of strings, or null.
func (d *scanner) strings() []string {
	if d.null() {
		return nil
	}
	if !d.consume('[') {
		return nil
	}
	if d.peek(']') {
		d.i++
		return []string{}
	}
	out := make([]string, 0, d.countElements())
	for !d.failed {
		out = append(out, d.string())
		if d.peek(',') {
			d.i++
			continue
		}
		d.consume(']')
		break
	}
	return out
}

// countElements guesses the number of elements of the array of strings
// being read, to allocate it once.
func (d *scanner) countElements() int {
	n := 1
	for _, c := range d.b[d.i:] {
		switch c {
		case ',':
			n++
		case ']':
			return n
		}
	}
	return n
}

// null reads a null if one comes next.
func (d *scanner) null() bool {
	d.ws()
	if len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

// uint reads a whole number from 0 to maxValue, written as JSON writes it.
func (d *scanner) uint(maxValue uint64) uint64 {
	d.ws()
	start := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	digits := d.b[start:d.i]
	if len(digits) == 0 || len(digits) > 1 && digits[0] == '0' ||
		d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.fail()
		return 0
	}
	n, err := strconv.ParseUint(unsafeString(digits), 10, 64)
	if err != nil || n > maxValue {
		d.fail()
		return 0
	}
	return n
}

// time reads a time as time.Time's UnmarshalJSON does.
func (d *scanner) time() time.Time {
	var t time.Time
	s := d.rawStr()
	if d.failed || t.UnmarshalJSON(s) != nil {
		d.fail()
	}
	return t
}

// timePtr reads a time or null.
func (d *scanner) timePtr() *time.Time {
	if d.null() {
		return nil
	}
	t := d.time()
	return &t
}

// ulid reads a ULID in its canonical form.
func (d *scanner) ulid() ulid.ULID {
	s := d.str()
	if d.failed {
		return ulid.ULID{}
	}
	id, err := ulid.ParseStrict(unsafeString(s))
	if err != nil {
		d.fail()
	}
	return id
}

// tokenIDPtr reads a token id or null.
func (d *scanner) tokenIDPtr() *TokenID {
	if d.null() {
		return nil
	}
	id := TokenID(d.ulid())
	return &id
}

// skip reads any value and returns it. Nesting deeper than the events have
// makes it fail.
func (d *scanner) skip() []byte {
	d.ws()
	start := d.i
	d.skipValue(0)
	if d.failed {
		return nil
	}
	return d.b[start:d.i]
}

func (d *scanner) skipValue(depth int) {
	const maxDepth = 8
	d.ws()
	if d.i >= len(d.b) || depth > maxDepth {
		d.fail()
		return
	}
	switch c := d.b[d.i]; {
	case c == '{':
		d.i++
		for more := d.first(); more; more = d.next() {
			d.key()
			d.skipValue(depth + 1)
		}
	case c == '[':
		d.i++
		if d.peek(']') {
			d.i++
			return
		}
		for !d.failed {
			d.skipValue(depth + 1)
			if d.peek(',') {
				d.i++
				continue
			}
			d.consume(']')
			return
		}
	case c == '"':
		d.str()
	case c == 'n':
		if !d.null() {
			d.fail()
		}
	case c == 't' && len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "true":
		d.i += 4
	case c == 'f' && len(d.b)-d.i >= 5 && string(d.b[d.i:d.i+5]) == "false":
		d.i += 5
	default:
		// Numbers other than whole ones never belong to an event the
		// fast decoder accepts.
		if c == '-' {
			d.i++
		}
		d.uint(math.MaxUint64)
	}
}

// unsafeString views b as a string without copying, for parsers that do
// not keep it.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// marshalFast is Marshal's encoding for payloads that encode themselves,
// once Marshal has checked the event; ok is false when it leaves the event
// to json.Marshal.
func marshalFast(e Envelope) ([]byte, bool) {
	p, ok := e.Data.(eventAppender)
	if !ok {
		return nil, false
	}
	b := make([]byte, 0, 512)
	b = append(b, `{"id":`...)
	b = appendULID(b, ulid.ULID(e.ID))
	b = append(b, `,"type":`...)
	b = AppendJSONString(b, string(e.Type), true)
	b = append(b, `,"aggregate_type":`...)
	b = AppendJSONString(b, string(e.AggregateKind), true)
	b = append(b, `,"aggregate_id":`...)
	b = AppendJSONString(b, e.AggregateID, true)
	b = append(b, `,"actor":`...)
	b = AppendJSONString(b, e.Actor, true)
	b = append(b, `,"time":`...)
	if b, ok = appendTime(b, e.Time); !ok {
		return nil, false
	}
	b = append(b, `,"schema":`...)
	b = strconv.AppendInt(b, int64(e.Schema), 10)
	if e.CorrelationID != "" {
		b = append(b, `,"correlation_id":`...)
		b = AppendJSONString(b, e.CorrelationID, true)
	}
	b = append(b, `,"data":`...)
	if b, ok = p.appendJSON(b); !ok {
		return nil, false
	}
	return append(b, '}'), true
}

func (e TokenIssued) appendJSON(b []byte) ([]byte, bool) {
	ok := true
	b = append(b, `{"owner":`...)
	b = AppendJSONString(b, string(e.Owner), true)
	b = append(b, `,"name":`...)
	b = AppendJSONString(b, e.Name, true)
	b = append(b, `,"scopes":`...)
	if e.Scopes == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, s := range e.Scopes {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSONString(b, s, true)
		}
		b = append(b, ']')
	}
	b = append(b, `,"kind":`...)
	b = AppendJSONString(b, string(e.Kind), true)
	b = append(b, `,"secret_sha256":"`...)
	b = hex.AppendEncode(b, e.SecretHash[:])
	b = append(b, `","expires_at":`...)
	if b, ok = appendTimePtr(b, e.ExpiresAt); !ok {
		return nil, false
	}
	if e.IdleTimeout != 0 {
		b = append(b, `,"idle_timeout":`...)
		b = strconv.AppendInt(b, int64(e.IdleTimeout), 10)
	}
	if e.AbsoluteExpiresAt != nil {
		b = append(b, `,"absolute_expires_at":`...)
		if b, ok = appendTime(b, *e.AbsoluteExpiresAt); !ok {
			return nil, false
		}
	}
	if e.RotatedFrom != nil {
		b = append(b, `,"rotated_from":`...)
		b = appendULID(b, ulid.ULID(*e.RotatedFrom))
	}
	if e.Family != nil {
		b = append(b, `,"family":`...)
		b = appendULID(b, ulid.ULID(*e.Family))
	}
	if len(e.AllowedCIDRs) > 0 {
		b = append(b, `,"allowed_cidrs":`...)
		b = appendStrings(b, e.AllowedCIDRs)
	}
	return append(b, '}'), true
}

// appendStrings appends ss as json.Marshal writes a []string.
func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, s, true)
	}
	return append(b, ']')
}

func (*TokenCIDRsSet) codecFields() string {
	return `AllowedCIDRs []string "allowed_cidrs";`
}

func (*TokenCIDRsSet) decodeEvent(data []byte) (Event, bool) {
	var e TokenCIDRsSet
	var seen bool
	d := scanner{b: data}
	d.open()
	for more := d.first(); more; more = d.next() {
		if string(d.key()) != "allowed_cidrs" || seen {
			return nil, false
		}
		seen = true
		e.AllowedCIDRs = d.strings()
	}
	if !d.end() || e.normalize() != nil {
		return nil, false
	}
	return e, true
}

func (e TokenCIDRsSet) appendJSON(b []byte) ([]byte, bool) {
	b = append(b, `{"allowed_cidrs":`...)
	b = appendStrings(b, e.AllowedCIDRs)
	return append(b, '}'), true
}

func (e TokenUsed) appendJSON(b []byte) ([]byte, bool) {
	ok := true
	b = append(b, `{"count":`...)
	b = strconv.AppendUint(b, e.Count, 10)
	b = append(b, `,"first_at":`...)
	if b, ok = appendTime(b, e.FirstAt); !ok {
		return nil, false
	}
	b = append(b, `,"last_at":`...)
	if b, ok = appendTime(b, e.LastAt); !ok {
		return nil, false
	}
	if e.ClientAddr != "" {
		b = append(b, `,"client_addr":`...)
		b = AppendJSONString(b, e.ClientAddr, true)
	}
	return append(b, '}'), true
}

func (e TokenExpirySet) appendJSON(b []byte) ([]byte, bool) {
	ok := true
	b = append(b, `{"expires_at":`...)
	if b, ok = appendTimePtr(b, e.ExpiresAt); !ok {
		return nil, false
	}
	b = append(b, `,"reason":`...)
	b = AppendJSONString(b, string(e.Reason), true)
	if e.RotatedTo != nil {
		b = append(b, `,"rotated_to":`...)
		b = appendULID(b, ulid.ULID(*e.RotatedTo))
	}
	return append(b, '}'), true
}

func (e TokenRevoked) appendJSON(b []byte) ([]byte, bool) {
	if e.Reuse != nil || e.Report != nil {
		return nil, false
	}
	if e.Reason == "" {
		return append(b, "{}"...), true
	}
	b = append(b, `{"reason":`...)
	b = AppendJSONString(b, e.Reason, true)
	return append(b, '}'), true
}

func (e OwnerTokensRevoked) appendJSON(b []byte) ([]byte, bool) {
	ok := true
	b = append(b, `{"owner":`...)
	b = AppendJSONString(b, string(e.Owner), true)
	b = append(b, `,"revoked_before":`...)
	if b, ok = appendTime(b, e.RevokedBefore); !ok {
		return nil, false
	}
	if e.Until != nil {
		b = append(b, `,"until":`...)
		if b, ok = appendTime(b, *e.Until); !ok {
			return nil, false
		}
	}
	if e.Reason != "" {
		b = append(b, `,"reason":`...)
		b = AppendJSONString(b, e.Reason, true)
	}
	return append(b, '}'), true
}

func appendULID(b []byte, id ulid.ULID) []byte {
	b = append(b, '"')
	n := len(b)
	b = append(b, make([]byte, ulid.EncodedSize)...)
	_ = id.MarshalTextTo(b[n:]) // cannot fail: the buffer has the size
	return append(b, '"')
}

// appendTime appends t as time.Time's MarshalJSON does; ok is false for the
// times it refuses.
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	b = append(b, '"')
	n := len(b)
	b = t.AppendFormat(b, time.RFC3339Nano)
	// The checks of MarshalJSON's appendStrictRFC3339.
	if b[n+len("9999")] != '-' {
		return nil, false
	}
	if b[len(b)-1] != 'Z' {
		c := b[len(b)-len("Z07:00")]
		if '0' <= c && c <= '9' || 10*(b[len(b)-5]-'0')+(b[len(b)-4]-'0') >= 24 {
			return nil, false
		}
	}
	return append(b, '"'), true
}

func appendTimePtr(b []byte, t *time.Time) ([]byte, bool) {
	if t == nil {
		return append(b, "null"...), true
	}
	return appendTime(b, *t)
}

func (*TokenExpiring) codecFields() string {
	return `ExpiresAt time.Time "expires_at";Lead domain.Seconds "lead";Reason domain.ExpiringReason "reason";`
}

func (*TokenExpiring) decodeEvent(data []byte) (Event, bool) {
	const (
		fExpires = 1 << iota
		fLead
		fReason
	)
	var e TokenExpiring
	var seen uint16
	d := scanner{b: data}
	d.open()
	for more := d.first(); more; more = d.next() {
		var bit uint16
		switch string(d.key()) {
		case "expires_at":
			bit = fExpires
			e.ExpiresAt = d.time()
		case "lead":
			bit = fLead
			e.Lead = Seconds(d.uint(math.MaxInt64))
		case "reason":
			bit = fReason
			switch r := d.str(); string(r) {
			case string(ExpiringByExpiry):
				e.Reason = ExpiringByExpiry
			case string(ExpiringByInactivity):
				e.Reason = ExpiringByInactivity
			default:
				e.Reason = ExpiringReason(r)
			}
		default:
			return nil, false
		}
		if seen&bit != 0 {
			return nil, false
		}
		seen |= bit
	}
	if !d.end() || e.normalize() != nil {
		return nil, false
	}
	return e, true
}

func (e TokenExpiring) appendJSON(b []byte) ([]byte, bool) {
	ok := true
	b = append(b, `{"expires_at":`...)
	if b, ok = appendTime(b, e.ExpiresAt); !ok {
		return nil, false
	}
	b = append(b, `,"lead":`...)
	b = strconv.AppendInt(b, int64(e.Lead), 10)
	b = append(b, `,"reason":`...)
	b = AppendJSONString(b, string(e.Reason), true)
	return append(b, '}'), true
}

func (*TokenExpired) codecFields() string {
	return `ExpiresAt time.Time "expires_at";`
}

func (*TokenExpired) decodeEvent(data []byte) (Event, bool) {
	var e TokenExpired
	var seen bool
	d := scanner{b: data}
	d.open()
	for more := d.first(); more; more = d.next() {
		if string(d.key()) != "expires_at" || seen {
			return nil, false
		}
		seen = true
		e.ExpiresAt = d.time()
	}
	if !d.end() || e.normalize() != nil {
		return nil, false
	}
	return e, true
}

func (e TokenExpired) appendJSON(b []byte) ([]byte, bool) {
	ok := true
	b = append(b, `{"expires_at":`...)
	if b, ok = appendTime(b, e.ExpiresAt); !ok {
		return nil, false
	}
	return append(b, '}'), true
}
