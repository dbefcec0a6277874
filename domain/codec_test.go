package domain

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

var updateFixtures = flag.Bool("update", false, "rewrite testdata/events from the current encoder")

// fixtureDir holds one stored event of every type and schema version, and
// of every shape (optional fields set or not) each has been written in.
const fixtureDir = "testdata/events"

// fixtureEvents returns the events the fixtures are made of, by file name:
// the samples, and copies of them without their optional fields.
func fixtureEvents(t testing.TB) map[string]Envelope {
	events, _ := sampleEvents(t)
	out := map[string]Envelope{}
	add := func(e Envelope, variant string) {
		name := fmt.Sprintf("%s.schema%d", e.Type, e.Schema)
		if variant != "" {
			name += "." + variant
		}
		if _, dup := out[name]; dup {
			return // the first event of a shape stands for it
		}
		out[name] = e
	}
	for _, e := range events {
		switch d := e.Data.(type) {
		case TokenIssued:
			variant := string(d.Kind)
			if d.RotatedFrom != nil {
				variant += "-rotated"
			}
			if d.AllowedCIDRs != nil {
				variant += "-cidrs"
			}
			add(e, variant)
		case TokenCIDRsSet:
			if len(d.AllowedCIDRs) == 0 {
				add(e, "cleared")
			} else {
				add(e, "")
			}
		case TokenUsed:
			add(e, "")
			d.ClientAddr = ""
			e.Data, e.CorrelationID = d, ""
			add(e, "minimal")
		case TokenExpirySet:
			variant := string(d.Reason)
			if d.ExpiresAt == nil {
				variant += "-never"
			}
			add(e, variant)
		case TokenRevoked:
			add(e, "")
			e.Data = TokenRevoked{}
			add(e, "minimal")
		case OwnerTokensRevoked:
			add(e, "")
			d.Until, d.Reason = nil, ""
			e.Data = d
			add(e, "minimal")
		case TokenExpiring:
			add(e, string(d.Reason))
		case TokenExpired, OwnerFamilyRevoked:
			add(e, "")
		case OwnerWebhookDisabled:
			add(e, "")
		case UsageBatch:
			// Binary; TestUsageBatchRoundTrip holds it.
		default:
			t.Fatalf("no fixture variant for %T", d)
		}
	}
	return out
}

// fixtures reads the stored fixtures, by file name without extension.
func fixtures(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(fixtureDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".json")] = bytes.TrimSuffix(b, []byte("\n"))
	}
	return out
}

// TestCodecFixturesCoverEveryType writes the fixtures from the current
// encoder when run with -update (event ids are random, so they are written
// once and kept: they are stored history), and checks that there is one of
// every registered type and schema version.
func TestCodecFixturesCoverEveryType(t *testing.T) {
	reg := NewDefaultRegistry()
	if *updateFixtures {
		if err := os.MkdirAll(fixtureDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, e := range fixtureEvents(t) {
			b, err := reg.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(fixtureDir, name+".json"), append(b, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	have := fixtures(t)
	for _, typ := range reg.Types() {
		if typ == TypeUsageBatch {
			continue // binary; TestUsageBatchRoundTrip and FuzzUnmarshalUsageBatch hold it
		}
		want := fmt.Sprintf("%s.schema%d", typ, reg.types[typ].schema)
		found := false
		for name := range have {
			found = found || name == want || strings.HasPrefix(name, want+".")
		}
		if !found {
			t.Errorf("no fixture %s[.variant].json", want)
		}
	}
}

// reflectiveFixtures are the shapes the fast codec leaves to
// encoding/json on purpose: rare ones with nested objects.
var reflectiveFixtures = map[string]bool{
	"token.revoked.v1.schema1.reuse":  true,
	"token.revoked.v1.schema1.leaked": true,
	"owner.family_revoked.v1.schema1": true,
}

// TestCodecDecodesEveryFixture decodes one stored event of every type,
// version and shape and compares the result, field by field, with the
// reflective decoder's; it also checks that encoding it again gives the
// stored bytes.
func TestCodecDecodesEveryFixture(t *testing.T) {
	reg := NewDefaultRegistry()
	have := fixtures(t)
	if len(have) == 0 {
		t.Fatal("no fixtures")
	}
	names := make([]string, 0, len(have))
	for name := range have {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b := have[name]
		t.Run(name, func(t *testing.T) {
			want, err := reg.unmarshalReflect(b)
			if err != nil {
				t.Fatalf("reflective decoder: %v", err)
			}
			got, err := reg.Unmarshal(b)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if _, ok := reg.unmarshalFast(b); !ok && !reflectiveFixtures[name] {
				t.Error("the fast decoder gave the event up")
			}
			for _, d := range diffFields("Envelope", reflect.ValueOf(got), reflect.ValueOf(want)) {
				t.Error(d)
			}
			enc, err := reg.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, b) {
				t.Errorf("encoded again:\n got  %s\n want %s", enc, b)
			}
		})
	}
}

// diffFields compares a and b field by field (through pointers,
// interfaces, slices and struct fields) and describes each difference by
// its path.
func diffFields(path string, a, b reflect.Value) []string {
	if a.IsValid() != b.IsValid() {
		return []string{fmt.Sprintf("%s: one side is missing", path)}
	}
	if !a.IsValid() {
		return nil
	}
	if a.Type() != b.Type() {
		return []string{fmt.Sprintf("%s: type %s, want %s", path, a.Type(), b.Type())}
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() != b.IsNil() {
			return []string{fmt.Sprintf("%s: nil %v, want nil %v", path, a.IsNil(), b.IsNil())}
		}
		if a.IsNil() {
			return nil
		}
		return diffFields(path, a.Elem(), b.Elem())
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return []string{fmt.Sprintf("%s: %#v, want %#v", path, a, b)}
		}
		var out []string
		for i := range a.Len() {
			out = append(out, diffFields(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i))...)
		}
		return out
	case reflect.Struct:
		if a.Type().PkgPath() == "time" || !a.Type().Field(0).IsExported() {
			break
		}
		var out []string
		for i := range a.NumField() {
			out = append(out, diffFields(path+"."+a.Type().Field(i).Name, a.Field(i), b.Field(i))...)
		}
		return out
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		return []string{fmt.Sprintf("%s: %#v, want %#v", path, a, b)}
	}
	return nil
}

// sameRefusal reports how two decoding errors differ, if they do.
func sameRefusal(got, want error) string {
	switch {
	case (got == nil) != (want == nil):
		return fmt.Sprintf("error %v, want %v", got, want)
	case got == nil:
		return ""
	case got.Error() != want.Error():
		return fmt.Sprintf("error %q, want %q", got, want)
	case errors.Is(got, ErrCorruptEvent) != errors.Is(want, ErrCorruptEvent),
		errors.Is(got, ErrUnknownEventType) != errors.Is(want, ErrUnknownEventType):
		return fmt.Sprintf("error %v is not of the kind of %v", got, want)
	}
	return ""
}

// FuzzCodec decodes arbitrary bytes with Unmarshal and with encoding/json
// (the reflective decoder) and requires the same event or the same
// refusal; an event both accept must encode to the same bytes with the
// fast encoder and with json.Marshal. Its seeds are the fixtures and the
// corpus in testdata/fuzz/FuzzCodec.
func FuzzCodec(f *testing.F) {
	for _, b := range fixtures(f) {
		f.Add(b)
	}
	reg := NewDefaultRegistry()
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gotErr := reg.Unmarshal(b)
		want, wantErr := reg.unmarshalReflect(b)
		if d := sameRefusal(gotErr, wantErr); d != "" {
			t.Fatalf("%s\ninput %q", d, b)
		}
		for _, d := range diffFields("Envelope", reflect.ValueOf(got), reflect.ValueOf(want)) {
			t.Errorf("%s\ninput %q", d, b)
		}
		if wantErr != nil {
			return
		}
		checkEncoding(t, reg, want)
	})
}

// FuzzCodecEncode encodes events made of arbitrary strings, numbers and
// times (in any zone, of any year) with Marshal and with json.Marshal and
// requires the same bytes or the same refusal.
func FuzzCodecEncode(f *testing.F) {
	f.Add("alice", "deploy <bot> & \"co\"", "token:01JD\u2028", "req-1", "203.0.113.9:1", int64(1764000000123456789), int32(0), uint64(7), int64(600))
	f.Add("ü\xff", "", "", "", "", int64(-1<<62), int32(3600), uint64(1), int64(0))
	f.Add("o", "n", "a", "c", "x", int64(1<<63-1), int32(-86399), uint64(1<<63), int64(1)<<40)
	reg := NewDefaultRegistry()
	f.Fuzz(func(t *testing.T, owner, name, actor, correlation, text string, unixNano int64, offset int32, count uint64, seconds int64) {
		at := time.Unix(0, unixNano).In(time.FixedZone("z", int(offset)))
		far := at.AddDate(int(count%20000)-10000, 0, 0)
		tokenID := TokenID(ulid.ULID{byte(count), 1, 2, 3})
		payloads := []Event{
			TokenIssued{Owner: OwnerID(owner), Name: name, Scopes: []string{text, name}, Kind: TokenKind(text), SecretHash: SecretHash{1, byte(count)},
				ExpiresAt: &at, IdleTimeout: Seconds(seconds), AbsoluteExpiresAt: &far, RotatedFrom: &tokenID},
			TokenIssued{Owner: OwnerID(owner), Scopes: nil},
			TokenUsed{Count: count, FirstAt: at, LastAt: far, ClientAddr: text},
			TokenExpirySet{ExpiresAt: &far, Reason: ExpiryReason(text), RotatedTo: &tokenID},
			TokenExpirySet{},
			TokenRevoked{Reason: text},
			OwnerTokensRevoked{Owner: OwnerID(owner), RevokedBefore: at, Until: &far, Reason: text},
			OwnerTokensRevoked{},
			TokenExpiring{ExpiresAt: far, Lead: Seconds(seconds), Reason: ExpiringReason(text)},
			TokenExpiring{},
			TokenExpired{ExpiresAt: at},
			TokenExpired{},
		}
		for _, p := range payloads {
			kind := AggregateToken
			if p.EventType() == TypeOwnerTokensRevoked {
				kind = AggregateOwner
			}
			e := Envelope{ID: EventID(tokenID), Type: p.EventType(), AggregateKind: kind, AggregateID: text, Actor: actor,
				Time: far, Schema: int(seconds), CorrelationID: correlation, Data: p}
			checkEncoding(t, reg, e)
		}
	})
}

// checkEncoding requires Marshal and json.Marshal to encode e alike.
func checkEncoding(t *testing.T, reg *Registry, e Envelope) {
	t.Helper()
	got, gotErr := reg.Marshal(e)
	want, wantErr := marshalReflect(e)
	if d := sameRefusal(gotErr, wantErr); d != "" {
		t.Fatalf("encoding %+v: %s", e, d)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding %+v:\n got  %s\n want %s", e, got, want)
	}
}

// TestCodecKnowsEveryField: every registered payload has a fast codec
// written for its current fields. A field added to a payload (or to the
// envelope) turns that payload's fast codec off, correct but slow, until
// decodeEvent, appendJSON and codecFields in codec.go are brought up to
// date; this test says so.
func TestCodecKnowsEveryField(t *testing.T) {
	if !envelopeCodecCurrent {
		t.Errorf("the envelope's fields changed: bring unmarshalFast, marshalFast and envelopeFields up to date; they are now\n%s",
			fieldSignature(reflect.TypeFor[wireEnvelope]()))
	}
	reg := NewDefaultRegistry()
	for _, typ := range reg.Types() {
		if typ == TypeUsageBatch {
			continue // stored in a binary form of its own (usage_batch.go)
		}
		if r := reg.types[typ]; r.decodeFast == nil || !r.encodeFast {
			t.Errorf("%s has no fast codec for its current fields: bring decodeEvent, appendJSON and codecFields up to date", typ)
		}
	}
}

// TestCodecLeavesUnknownFieldsToEncodingJSON: an event with a field the
// fast decoder does not know (one added by a later version, say) is decoded
// by encoding/json, which ignores the field, not by the fast decoder.
func TestCodecLeavesUnknownFieldsToEncodingJSON(t *testing.T) {
	reg := NewDefaultRegistry()
	b := fixtures(t)["token.issued.v1.schema1.api"]
	for name, in := range map[string][]byte{
		"payload":    bytes.Replace(b, []byte(`"kind":"api"`), []byte(`"kind":"api","not_a_field_yet":"01M81B5HBVWPNR5N9RG5EJQ140"`), 1),
		"envelope":   bytes.Replace(b, []byte(`"schema":1`), []byte(`"schema":1,"trace":{"span":[1,2]}`), 1),
		"other case": bytes.Replace(b, []byte(`"owner"`), []byte(`"Owner"`), 1),
	} {
		t.Run(name, func(t *testing.T) {
			if _, ok := reg.unmarshalFast(in); ok {
				t.Fatal("the fast decoder decoded an event with a field it does not know")
			}
			got, err := reg.Unmarshal(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := reg.Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range diffFields("Envelope", reflect.ValueOf(got), reflect.ValueOf(want)) {
				t.Error(d)
			}
		})
	}
}

// BenchmarkCodec decodes an event of each type with Unmarshal and with
// encoding/json, for comparison.
func BenchmarkCodec(b *testing.B) {
	reg := NewDefaultRegistry()
	have := fixtures(b)
	for _, name := range []string{"token.issued.v1.schema1.api", "token.used.v1.schema1", "token.expiry_set.v1.schema1.session_extended", "owner.tokens_revoked.v1.schema1"} {
		raw := have[name]
		for _, dec := range []struct {
			name string
			fn   func([]byte) (Envelope, error)
		}{{"fast", reg.Unmarshal}, {"reflect", reg.unmarshalReflect}} {
			b.Run(strings.SplitN(name, ".schema", 2)[0]+"/"+dec.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(raw)))
				for b.Loop() {
					if _, err := dec.fn(raw); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRegistryMarshal encodes an issue event.
func BenchmarkRegistryMarshal(b *testing.B) {
	reg := NewDefaultRegistry()
	e, err := reg.Unmarshal(fixtures(b)["token.issued.v1.schema1.api"])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Marshal(e); err != nil {
			b.Fatal(err)
		}
	}
}
