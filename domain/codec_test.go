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
			t.Fatalf("two fixtures named %s", name)
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
			add(e, variant)
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
	have := map[string]bool{}
	for name := range fixtures(t) {
		have[strings.SplitN(name, ".schema", 2)[0]+".schema"+strings.SplitN(strings.SplitN(name, ".schema", 2)[1], ".", 2)[0]] = true
	}
	for _, typ := range reg.Types() {
		want := fmt.Sprintf("%s.schema%d", typ, reg.types[typ].schema)
		if !have[want] {
			t.Errorf("no fixture %s.json", want)
		}
	}
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
