package export_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenledger/tokenledger/export"
)

// fileExport is a small signed export on disk and what it was made of.
type fileExport struct {
	path     string
	format   export.Format
	manifest export.Manifest
	pub      ed25519.PublicKey
	priv     ed25519.PrivateKey
	records  []export.Record
}

func newFileExport(t *testing.T, format export.Format, n int) *fileExport {
	t.Helper()
	pub, priv := signingKey(t)
	records := historyRecords(n, 11, false)
	path := filepath.Join(t.TempDir(), "ledger."+string(format))
	m := writeExport(t, path, historyFilter(n, format), records, priv)
	return &fileExport{path: path, format: format, manifest: m, pub: pub, priv: priv, records: records}
}

// line returns the file line of record i (from 1): the CSV header is line
// 1; the records of these exports have no line breaks.
func (x *fileExport) line(i int) int64 {
	if x.format == export.CSV {
		return int64(i + 1)
	}
	return int64(i)
}

// tamperLines copies the export to a new directory with its lines passed
// through edit (lines keep their newline), and the manifest copied, and
// returns the copy's path.
func (x *fileExport) tamperLines(t *testing.T, edit func(lines [][]byte) [][]byte) string {
	t.Helper()
	b, err := os.ReadFile(x.path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(x.path))
	if err := os.WriteFile(dst, bytes.Join(edit(lines), nil), 0o644); err != nil {
		t.Fatal(err)
	}
	copyManifest(t, x.path, dst, nil)
	return dst
}

func verify(t *testing.T, path string, opts export.VerifyOptions) export.Report {
	t.Helper()
	rep, err := export.Verify(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// Every way of tampering with a small export, in both formats, fails
// verification with a message naming what is wrong and where; the
// untouched export verifies.
func TestVerifyFindsTampering(t *testing.T) {
	t.Parallel()
	const n = 500
	for _, format := range []export.Format{export.JSONL, export.CSV} {
		x := newFileExport(t, format, n)
		flip := func(lines [][]byte, i int) {
			l := bytes.Clone(lines[i])
			j := bytes.Index(l, []byte("user:")) // the actor
			l[j] ^= 0x01
			lines[i] = l
		}
		rec := func(i int) int { return int(x.line(i)) - 1 } // index in lines of record i
		for _, tc := range []struct {
			name   string
			tamper func(t *testing.T) string
			opts   func(o *export.VerifyOptions)
			ok     bool
			want   func(t *testing.T, rep export.Report)
		}{
			{name: "untouched", tamper: func(*testing.T) string { return x.path }, ok: true},
			{
				name: "byte flipped in record 100",
				tamper: func(t *testing.T) string {
					return x.tamperLines(t, func(lines [][]byte) [][]byte { flip(lines, rec(100)); return lines })
				},
				want: func(t *testing.T, rep export.Report) {
					requireProblem(t, rep, export.ProblemChain, lineNo(x.line(101))+"hash chain broken: the record does not continue "+strings.TrimSuffix(lineNo(x.line(100)), ": "))
					requireProblem(t, rep, export.ProblemDataHash, "data file SHA-256 mismatch")
				},
			},
			{
				name: "byte flipped in the last record",
				tamper: func(t *testing.T) string {
					return x.tamperLines(t, func(lines [][]byte) [][]byte { flip(lines, rec(n)); return lines })
				},
				want: func(t *testing.T, rep export.Report) {
					requireProblem(t, rep, export.ProblemChain, "hash chain head", "after "+strings.TrimSuffix(lineNo(x.line(n)), ": ")+", the last record")
				},
			},
			{
				name: "prev_hash of record 50 replaced",
				tamper: func(t *testing.T) string {
					return x.tamperLines(t, func(lines [][]byte) [][]byte {
						i := rec(50)
						l := bytes.Clone(lines[i])
						k := bytes.LastIndexByte(l, ',') + 1 // prev_hash, the last field
						if format == export.JSONL {
							k += len(`"prev_hash":"`)
						}
						l[k] = "01"[(l[k]-'0'+1)%2]
						lines[i] = l
						return lines
					})
				},
				want: func(t *testing.T, rep export.Report) {
					requireProblem(t, rep, export.ProblemChain, lineNo(x.line(50))+"hash chain broken")
				},
			},
			{
				name: "first record deleted",
				tamper: func(t *testing.T) string {
					return x.tamperLines(t, func(lines [][]byte) [][]byte {
						return append(lines[:rec(1)], lines[rec(1)+1:]...)
					})
				},
				want: func(t *testing.T, rep export.Report) {
					requireProblem(t, rep, export.ProblemChain, lineNo(x.line(1))+"hash chain broken: the first record does not start from the filter's h0")
					requireProblem(t, rep, export.ProblemSpan, "lifecycle sequences: the records span 2..500, the manifest says 1..500")
				},
			},
			{
				name: "last record deleted",
				tamper: func(t *testing.T) string {
					return x.tamperLines(t, func(lines [][]byte) [][]byte { return lines[:len(lines)-1] })
				},
				want: func(t *testing.T, rep export.Report) {
					requireProblem(t, rep, export.ProblemCount, "file truncated: 499 records, manifest says 500")
					requireProblem(t, rep, export.ProblemChain, "hash chain head")
				},
			},
			{
				name: "last record repeated",
				tamper: func(t *testing.T) string {
					return x.tamperLines(t, func(lines [][]byte) [][]byte { return append(lines, lines[len(lines)-1]) })
				},
				want: func(t *testing.T, rep export.Report) {
					requireProblem(t, rep, export.ProblemCount, "records added: 501 records, manifest says 500")
					requireProblem(t, rep, export.ProblemOrder, lineNo(x.line(501))+"sequence 500 does not follow 500")
					requireProblem(t, rep, export.ProblemChain, lineNo(x.line(501))+"hash chain broken")
				},
			},
			{
				name: "truncated inside a record",
				tamper: func(t *testing.T) string {
					return x.tamperLines(t, func(lines [][]byte) [][]byte {
						lines[rec(300)] = lines[rec(300)][:40]
						return lines[:rec(300)+1]
					})
				},
				want: func(t *testing.T, rep export.Report) {
					requireProblem(t, rep, export.ProblemRecord, lineNo(x.line(300))+"the file ends inside this record")
					requireProblem(t, rep, export.ProblemCount, "file truncated: 299 records, manifest says 500")
				},
			},
			{
				name: "manifest records altered",
				tamper: func(t *testing.T) string {
					dst := filepath.Join(t.TempDir(), filepath.Base(x.path))
					link(t, x.path, dst)
					copyManifest(t, x.path, dst, func(m *export.Manifest) { m.Records = 400 })
					return dst
				},
				want: func(t *testing.T, rep export.Report) {
					requireProblem(t, rep, export.ProblemSignature, "manifest signature invalid")
					requireProblem(t, rep, export.ProblemManifest, "the counts add up to 500 records, the manifest says 400")
					requireProblem(t, rep, export.ProblemCount, "records added: 500 records, manifest says 400")
				},
			},
			{
				name: "manifest signature of another key",
				tamper: func(t *testing.T) string {
					dst := filepath.Join(t.TempDir(), filepath.Base(x.path))
					link(t, x.path, dst)
					_, other := signingKey(t)
					copyManifest(t, x.path, dst, func(m *export.Manifest) {
						if err := m.Sign(other); err != nil {
							t.Fatal(err)
						}
					})
					return dst
				},
				want: func(t *testing.T, rep export.Report) {
					requireProblem(t, rep, export.ProblemSignature, "the manifest names key", "the public key given is "+export.KeyID(x.pub))
				},
			},
			{
				name:   "no public key",
				tamper: func(*testing.T) string { return x.path },
				opts:   func(o *export.VerifyOptions) { o.PublicKey = nil },
				want: func(t *testing.T, rep export.Report) {
					requireProblem(t, rep, export.ProblemSignature, "manifest signature not checked: no public key given", x.manifest.KeyID)
				},
			},
			{
				name: "manifest with a member added",
				tamper: func(t *testing.T) string {
					dst := filepath.Join(t.TempDir(), filepath.Base(x.path))
					link(t, x.path, dst)
					b, err := os.ReadFile(export.ManifestPath(x.path))
					if err != nil {
						t.Fatal(err)
					}
					b = bytes.Replace(b, []byte(`"kind"`), []byte(`"note": "trust me", "kind"`), 1)
					if err := os.WriteFile(export.ManifestPath(dst), b, 0o644); err != nil {
						t.Fatal(err)
					}
					return dst
				},
				want: func(t *testing.T, rep export.Report) {
					requireProblem(t, rep, export.ProblemManifest, `unknown field "note"`)
				},
			},
			{
				name: "manifest missing",
				tamper: func(t *testing.T) string {
					dst := filepath.Join(t.TempDir(), filepath.Base(x.path))
					link(t, x.path, dst)
					return dst
				},
				want: func(t *testing.T, rep export.Report) {
					requireProblem(t, rep, export.ProblemManifest, "read manifest", "no such file")
				},
			},
		} {
			t.Run(string(format)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				opts := export.VerifyOptions{PublicKey: x.pub}
				if tc.opts != nil {
					tc.opts(&opts)
				}
				rep := verify(t, tc.tamper(t), opts)
				if rep.OK() != tc.ok {
					t.Fatalf("OK() = %t, want %t; problems:\n%s", rep.OK(), tc.ok, messages(rep))
				}
				if tc.ok {
					if !rep.SignatureValid || rep.Records != n {
						t.Errorf("signature valid %t, %d records; want true, %d", rep.SignatureValid, rep.Records, n)
					}
					return
				}
				tc.want(t, rep)
			})
		}
	}
}

// An unsigned export fails verification unless unsigned exports are
// accepted, and then still says it is unsigned.
func TestVerifyUnsigned(t *testing.T) {
	t.Parallel()
	records := historyRecords(50, 5, false)
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	m := writeExport(t, path, historyFilter(50, export.JSONL), records, nil)
	if !m.Unsigned || m.KeyID != "" || m.Signature != "" {
		t.Fatalf("manifest unsigned %t, key id %q, signature %q", m.Unsigned, m.KeyID, m.Signature)
	}
	pub, _ := signingKey(t)
	for _, tc := range []struct {
		name  string
		opts  export.VerifyOptions
		ok    bool
		probs []string
	}{
		{"refused", export.VerifyOptions{PublicKey: pub}, false, []string{"unsigned: the export has no signature"}},
		{"refused without a key too", export.VerifyOptions{}, false, []string{"unsigned"}},
		{"accepted", export.VerifyOptions{AllowUnsigned: true}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rep := verify(t, path, tc.opts)
			if rep.OK() != tc.ok || !rep.Unsigned || rep.SignatureValid {
				t.Fatalf("OK %t unsigned %t signature valid %t, want OK %t unsigned; problems:\n%s", rep.OK(), rep.Unsigned, rep.SignatureValid, tc.ok, messages(rep))
			}
			for _, p := range tc.probs {
				requireProblem(t, rep, export.ProblemUnsigned, p)
			}
		})
	}
}

// A file broken everywhere lists the problems about the whole file and the
// first MaxProblems about records, and counts the rest.
func TestVerifyCapsTheList(t *testing.T) {
	t.Parallel()
	x := newFileExport(t, export.JSONL, 300)
	dst := filepath.Join(t.TempDir(), "ledger.jsonl")
	link(t, x.path, dst)
	copyManifest(t, x.path, dst, func(m *export.Manifest) { m.Filter.From = m.Filter.To.Add(-1e6) })
	rep := verify(t, dst, export.VerifyOptions{PublicKey: x.pub, MaxProblems: 5})
	records := 0
	for _, p := range rep.Problems {
		if p.Line > 0 {
			records++
		}
	}
	if records != 5 || rep.Omitted() < 290 || rep.Total != len(rep.Problems)+rep.Omitted() {
		t.Fatalf("%d record problems listed, %d omitted, total %d; want 5 listed, at least 290 omitted:\n%s", records, rep.Omitted(), rep.Total, messages(rep))
	}
	requireProblem(t, rep, export.ProblemSignature, "manifest signature invalid")
	if rep.Problems[0].Line != 0 {
		t.Errorf("the first problem is about line %d; problems about the whole file come first", rep.Problems[0].Line)
	}
}

// A CSV export whose header was altered is reported at line 1.
func TestVerifyCSVHeader(t *testing.T) {
	t.Parallel()
	x := newFileExport(t, export.CSV, 20)
	dst := x.tamperLines(t, func(lines [][]byte) [][]byte {
		lines[0] = bytes.Replace(lines[0], []byte("owner"), []byte("tenant"), 1)
		return lines
	})
	rep := verify(t, dst, export.VerifyOptions{PublicKey: x.pub})
	requireProblem(t, rep, export.ProblemRecord, "line 1: not the csv header of an export")
}
