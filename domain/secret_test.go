package domain

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

var secretRE = regexp.MustCompile(`^` + SecretPattern + `$`)

func newTestSecret(t testing.TB, seed uint64) Secret {
	t.Helper()
	entropy := seededEntropy(seed)
	id, err := NewTokenID(t0.Add(time.Duration(seed)*time.Millisecond), entropy)
	if err != nil {
		t.Fatal(err)
	}
	s, err := GenerateSecret(id, entropy)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// withChecksum completes the first 74 characters of a secret with their
// checksum, so that a test can build a secret with exactly one defect.
func withChecksum(body string) string {
	var sum [SecretChecksumLen]byte
	putChecksum(sum[:], crc32.ChecksumIEEE([]byte(body)))
	return body + string(sum[:])
}

// secretLeaks reports whether out contains the secret or any 8-character
// piece of its part after the token id.
func secretLeaks(out, secret string) bool {
	if strings.Contains(out, secret) {
		return true
	}
	tail := secret[secretRandomStart:]
	for i := 0; i+8 <= len(tail); i++ {
		if strings.Contains(out, tail[i:i+8]) {
			return true
		}
	}
	return false
}

func TestGenerateSecretFormat(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	for i := range 500 {
		id, err := NewTokenID(t0, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := GenerateSecret(id, nil)
		if err != nil {
			t.Fatal(err)
		}
		raw := s.Reveal()
		switch {
		case len(raw) != SecretLen || SecretLen != 80:
			t.Fatalf("secret %d has length %d, want 80", i, len(raw))
		case !secretRE.MatchString(raw):
			t.Fatalf("secret %d does not match SecretPattern", i)
		case !strings.HasPrefix(raw, "tlk_"+id.String()+"_"):
			t.Fatalf("secret %d does not embed its token id %s", i, id)
		case seen[raw]:
			t.Fatalf("secret %d repeats an earlier one", i)
		}
		seen[raw] = true
		if s.TokenID() != id {
			t.Fatalf("TokenID() = %s, want %s", s.TokenID(), id)
		}
		if s.Hash() != SecretHash(sha256.Sum256([]byte(raw))) {
			t.Fatal("Hash() is not the SHA-256 of the secret")
		}
		gotID, gotHash, err := CheckSecret(raw)
		if err != nil || gotID != id || gotHash != s.Hash() {
			t.Fatalf("CheckSecret = %s, %s, %v; want %s, %s, nil", gotID, gotHash, err, id, s.Hash())
		}
	}
}

func TestGenerateSecretIsDeterministicForItsEntropy(t *testing.T) {
	t.Parallel()
	a, b, c := newTestSecret(t, 7), newTestSecret(t, 7), newTestSecret(t, 8)
	if a.Reveal() != b.Reveal() {
		t.Fatal("the same entropy gave different secrets")
	}
	if a.Reveal()[secretRandomStart:] == c.Reveal()[secretRandomStart:] {
		t.Fatal("different entropy gave the same random part")
	}
}

// TestGenerateSecretRejectsBiasedBytes feeds bytes at and above the
// rejection bound: they must be skipped, not folded into the alphabet.
func TestGenerateSecretRejectsBiasedBytes(t *testing.T) {
	t.Parallel()
	pattern := []byte{255, 0, 248, 61, 62, 249, 123, 247, 250, 9}
	var in []byte
	for len(in) < 4096 {
		in = append(in, pattern...)
	}
	id, err := NewTokenID(t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := GenerateSecret(id, bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, b := range in {
		if len(want) == SecretRandomLen {
			break
		}
		if b < 248 {
			want = append(want, base62Alphabet[b%62])
		}
	}
	if got := s.Reveal()[secretRandomStart:secretChecksumStart]; got != string(want) {
		t.Fatalf("random part = %q, want %q", got, want)
	}
}

// TestGenerateSecretIsUniform checks the random characters with a
// chi-squared test; plain b%62 without rejection fails it by far (its first
// eight characters come up 25% more often).
func TestGenerateSecretIsUniform(t *testing.T) {
	t.Parallel()
	entropy := seededEntropy(42)
	id, err := NewTokenID(t0, entropy)
	if err != nil {
		t.Fatal(err)
	}
	var counts [62]int
	const secrets = 20000
	for range secrets {
		s, err := GenerateSecret(id, entropy)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []byte(s.Reveal()[secretRandomStart:secretChecksumStart]) {
			counts[base62Digit[c]]++
		}
	}
	expected := float64(secrets*SecretRandomLen) / 62
	var chi2 float64
	for _, n := range counts {
		d := float64(n) - expected
		chi2 += d * d / expected
	}
	// 61 degrees of freedom: P(chi2 > 130) is about 1e-6.
	if chi2 > 130 {
		t.Fatalf("chi-squared %.1f over 61 degrees of freedom: characters are not uniform (%v)", chi2, counts)
	}
}

func TestGenerateSecretErrors(t *testing.T) {
	t.Parallel()
	id, err := NewTokenID(t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	errBroken := errors.New("entropy broken")
	tests := []struct {
		name    string
		id      TokenID
		entropy io.Reader
		want    error
	}{
		{"zero token id", TokenID{}, nil, ErrInvalidArgument},
		{"failing entropy", id, iotest.ErrReader(errBroken), errBroken},
		{"exhausted entropy", id, bytes.NewReader(make([]byte, 20)), io.ErrUnexpectedEOF},
		{"entropy of only rejected bytes", id, bytes.NewReader(bytes.Repeat([]byte{255}, 1024)), io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := GenerateSecret(tc.id, tc.entropy)
			wantErr(t, err, tc.want)
			if !s.IsZero() {
				t.Fatal("a failed generation returned a secret")
			}
		})
	}
}

func TestSecretNeverPrintsItself(t *testing.T) {
	t.Parallel()
	s := newTestSecret(t, 1)
	raw := s.Reveal()
	redacted := raw[:8] + "…[redacted]"
	type exported struct{ Token Secret }
	type unexported struct{ token Secret }
	type nested struct{ inner unexported }
	outputs := map[string]string{}
	for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "%d", "%T %v", "%10s", "%-100v", "%.5s", "%p"} {
		outputs["Sprintf "+verb] = fmt.Sprintf(verb, s)
		outputs["Sprintf pointer "+verb] = fmt.Sprintf(verb, &s)
		outputs["Sprintf exported field "+verb] = fmt.Sprintf(verb, exported{s})
		outputs["Sprintf unexported field "+verb] = fmt.Sprintf(verb, unexported{s})
		outputs["Sprintf nested unexported field "+verb] = fmt.Sprintf(verb, &nested{unexported{s}})
		outputs["Sprintf slice "+verb] = fmt.Sprintf(verb, []Secret{s})
		outputs["Sprintf map "+verb] = fmt.Sprintf(verb, map[string]Secret{"k": s})
	}
	outputs["Sprint"] = fmt.Sprint(s)
	outputs["Sprintln"] = fmt.Sprintln(s, &s)
	outputs["String"] = s.String()
	outputs["GoString"] = s.GoString()
	outputs["Errorf"] = fmt.Errorf("issue failed with %v: %w", s, errors.New("x")).Error()
	for name, v := range map[string]any{"value": s, "pointer": &s, "exported field": exported{s}, "unexported field": unexported{s}, "map key": map[Secret]int{s: 1}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%s): %v", name, err)
		}
		outputs["json "+name] = string(b)
	}
	text, err := s.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	outputs["MarshalText"] = string(text)
	var jsonLog, textLog bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&jsonLog, nil), slog.NewTextHandler(&textLog, nil)} {
		l := slog.New(h)
		l.Info("issued", "secret", s, "pointer", &s, "group", exported{s})
		l.Info("issued", slog.Any("secret", s), slog.Group("g", "secret", s))
		l.With("secret", s).Error("again")
	}
	outputs["slog json"] = jsonLog.String()
	outputs["slog text"] = textLog.String()

	for name, out := range outputs {
		if secretLeaks(out, raw) {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
	}
	for _, name := range []string{"Sprintf %s", "Sprintf %v", "Sprint", "String", "MarshalText"} {
		if outputs[name] != redacted {
			t.Errorf("%s = %q, want %q", name, outputs[name], redacted)
		}
	}
	if want := fmt.Sprintf("%q", redacted); outputs["json value"] != want || outputs["Sprintf %q"] != want {
		t.Errorf("json = %s, %%q = %s; want %s", outputs["json value"], outputs["Sprintf %q"], want)
	}
	for _, name := range []string{"slog json", "slog text"} {
		if !strings.Contains(outputs[name], "[redacted]") {
			t.Errorf("%s does not show the redacted form: %s", name, outputs[name])
		}
	}
}

func TestZeroSecret(t *testing.T) {
	t.Parallel()
	var s Secret
	if !s.IsZero() || s.Reveal() != "" || s.String() != "" || fmt.Sprint(s) != "" || !s.Hash().IsZero() || !s.TokenID().IsZero() {
		t.Fatalf("zero secret is not empty: %q %q %v %v", s.Reveal(), s.String(), s.Hash(), s.TokenID())
	}
}

func TestParseSecretRejectsMalformed(t *testing.T) {
	t.Parallel()
	valid := newTestSecret(t, 3).Reveal()
	body := valid[:secretChecksumStart]
	idPart := valid[secretIDStart:secretSepPos]
	replace := func(s string, i int, c string) string { return s[:i] + c + s[i+len(c):] }
	tests := []struct {
		name  string
		input string
		want  error
	}{
		{"empty", "", errSecretLength},
		{"prefix only", "tlk_", errSecretLength},
		{"one short", valid[:SecretLen-1], errSecretLength},
		{"one long", valid + "0", errSecretLength},
		{"surrounding space", " " + valid[:SecretLen-1], errSecretPrefix},
		{"other prefix", withChecksum("tlx_" + body[4:]), errSecretPrefix},
		{"uppercase prefix", withChecksum("TLK_" + body[4:]), errSecretPrefix},
		{"bearer scheme glued on", "Bearer" + valid[6:], errSecretPrefix},
		{"dash separator", withChecksum(replace(body, secretSepPos, "-")), errSecretSeparator},
		{"lowercase token id", withChecksum("tlk_" + strings.ToLower(idPart) + body[secretSepPos:]), errSecretID},
		{"letter I in token id", withChecksum(replace(body, secretIDStart+5, "I")), errSecretID},
		{"letter L in token id", withChecksum(replace(body, secretIDStart+5, "L")), errSecretID},
		{"letter O in token id", withChecksum(replace(body, secretIDStart+5, "O")), errSecretID},
		{"letter U in token id", withChecksum(replace(body, secretIDStart+5, "U")), errSecretID},
		{"token id overflows 128 bits", withChecksum(replace(body, secretIDStart, "8")), errSecretID},
		{"underscore in random part", withChecksum(replace(body, secretRandomStart+3, "_")), errSecretCharset},
		{"plus in random part", withChecksum(replace(body, secretRandomStart+3, "+")), errSecretCharset},
		{"slash in checksum", replace(valid, SecretLen-1, "/"), errSecretCharset},
		{"non-ASCII in random part", withChecksum(replace(body, secretRandomStart, "é")), errSecretCharset},
		{"wrong checksum", replace(valid, SecretLen-1, string(base62Alphabet[(base62Digit[valid[SecretLen-1]]+1)%62])), errSecretChecksum},
		{"checksum beyond 32 bits", body + "zzzzzz", errSecretChecksum},
		{"two characters swapped", body[:40] + body[41:42] + body[40:41] + valid[42:], errSecretChecksum},
		{"all zero", "tlk_" + strings.Repeat("0", 26) + "_" + strings.Repeat("0", 49), errSecretChecksum},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id, err := ParseSecret(tc.input)
			if err != tc.want {
				t.Fatalf("ParseSecret error = %v, want %v", err, tc.want)
			}
			wantErr(t, err, ErrMalformedSecret)
			if !id.IsZero() {
				t.Fatalf("rejected secret returned id %s", id)
			}
			if len(tc.input) > 8 && strings.Contains(err.Error(), tc.input) {
				t.Fatalf("error %q echoes the input", err)
			}
			_, h, err := CheckSecret(tc.input)
			if !errors.Is(err, ErrMalformedSecret) || !h.IsZero() {
				t.Fatalf("CheckSecret = %v, %v; want zero hash and ErrMalformedSecret", h, err)
			}
		})
	}
}

// TestParseSecretRejectsEveryTypo changes every character of a few secrets
// to every other byte value, and swaps every pair of adjacent characters:
// the checksum must reject each.
func TestParseSecretRejectsEveryTypo(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		raw := newTestSecret(t, 100+seed).Reveal()
		if _, err := ParseSecret(raw); err != nil {
			t.Fatalf("valid secret rejected: %v", err)
		}
		b := []byte(raw)
		for i := range b {
			orig := b[i]
			for c := range 256 {
				if byte(c) == orig {
					continue
				}
				b[i] = byte(c)
				if _, err := ParseSecret(string(b)); err == nil {
					t.Fatalf("secret %d: %q at position %d replaced by %q was accepted", seed, orig, i, byte(c))
				}
			}
			b[i] = orig
		}
		for i := 0; i+1 < len(b); i++ {
			if b[i] == b[i+1] || i+1 == secretChecksumStart {
				continue
			}
			b[i], b[i+1] = b[i+1], b[i]
			if _, err := ParseSecret(string(b)); err == nil {
				t.Fatalf("secret %d: swapping positions %d and %d was accepted", seed, i, i+1)
			}
			b[i], b[i+1] = b[i+1], b[i]
		}
	}
}

func TestPutChecksumIsFixedWidthBase62(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sum  uint32
		want string
	}{
		{0, "000000"},
		{1, "000001"},
		{61, "00000z"},
		{62, "000010"},
		{0xFFFFFFFF, "4gfFC3"},
	}
	for _, tc := range tests {
		var b [SecretChecksumLen]byte
		putChecksum(b[:], tc.sum)
		if string(b[:]) != tc.want {
			t.Errorf("putChecksum(%d) = %q, want %q", tc.sum, b, tc.want)
		}
	}
}

func TestSecretChecksAllocateNothing(t *testing.T) {
	valid := newTestSecret(t, 5).Reveal()
	badSum := valid[:SecretLen-1] + string(base62Alphabet[(base62Digit[valid[SecretLen-1]]+1)%62])
	badChar := valid[:40] + "-" + valid[41:]
	tests := []struct {
		name string
		fn   func()
	}{
		{"ParseSecret valid", func() { _, _ = ParseSecret(valid) }},
		{"ParseSecret checksum mismatch", func() { _, _ = ParseSecret(badSum) }},
		{"ParseSecret wrong length", func() { _, _ = ParseSecret("tlk_short") }},
		{"ParseSecret bad character", func() { _, _ = ParseSecret(badChar) }},
		{"HashSecret", func() { _ = HashSecret(valid) }},
		{"CheckSecret valid", func() { _, _, _ = CheckSecret(valid) }},
		{"CheckSecret checksum mismatch", func() { _, _, _ = CheckSecret(badSum) }},
	}
	for _, tc := range tests {
		if n := testing.AllocsPerRun(200, tc.fn); n != 0 {
			t.Errorf("%s: %.1f allocations per call, want 0", tc.name, n)
		}
	}
}

func TestHashSecretIsSHA256OfTheExactString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "tlk_", newTestSecret(t, 9).Reveal(), "x\x00y"} {
		want := sha256.Sum256([]byte(s))
		if got := HashSecret(s); got != SecretHash(want) {
			t.Errorf("HashSecret(%q) = %s, want %s", s, got, hex.EncodeToString(want[:]))
		}
	}
}

func FuzzParseSecret(f *testing.F) {
	for seed := range uint64(4) {
		raw := newTestSecret(f, seed).Reveal()
		f.Add(raw)
		f.Add(raw[:SecretLen-1] + "0")
		f.Add(strings.ToLower(raw))
	}
	f.Add("")
	f.Add("tlk_")
	f.Add("tlk_" + strings.Repeat("7", 26) + "_" + strings.Repeat("z", 49))
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 60)))
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseSecret(s)
		id2, hash, err2 := CheckSecret(s)
		if (err == nil) != (err2 == nil) || id != id2 {
			t.Fatalf("ParseSecret and CheckSecret disagree: %v / %v", err, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformedSecret) {
				t.Fatalf("error %v does not wrap ErrMalformedSecret", err)
			}
			if len(s) >= 16 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q echoes the input", err)
			}
			return
		}
		if !secretRE.MatchString(s) {
			t.Fatalf("accepted %q does not match SecretPattern", s)
		}
		if again := SecretPrefix + id.String() + "_" + s[secretRandomStart:secretChecksumStart]; withChecksum(again) != s {
			t.Fatalf("accepted %q re-formats as %q", s, withChecksum(again))
		}
		if hash != SecretHash(sha256.Sum256([]byte(s))) {
			t.Fatal("CheckSecret hash is not the SHA-256 of the input")
		}
	})
}

func BenchmarkCheckSecret(b *testing.B) {
	raw := newTestSecret(b, 11).Reveal()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := CheckSecret(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSecret(b *testing.B) {
	raw := newTestSecret(b, 12).Reveal()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSecret(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSecretChecksumMismatch(b *testing.B) {
	raw := newTestSecret(b, 13).Reveal()
	raw = raw[:SecretLen-1] + string(base62Alphabet[(base62Digit[raw[SecretLen-1]]+1)%62])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSecret(raw); err == nil {
			b.Fatal("accepted")
		}
	}
}
