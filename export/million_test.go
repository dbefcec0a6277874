package export_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/export"
)

var millionEvents = flag.Int("export.events", 0, "events in TestExportOfAMillionEventsVerifies (0: 1,000,000, or 200,000 under the race detector)")

// acceptanceEvents returns the size of the acceptance test's stream: a
// million events, except under the race detector, which makes decoding
// and encoding JSON ten to fifteen times slower (a million events would
// take about two minutes there); -export.events sets it either way.
func acceptanceEvents(t *testing.T) int {
	switch {
	case *millionEvents > 0:
		return *millionEvents
	case raceEnabled:
		t.Logf("race detector on: %s events instead of 1,000,000 (run without -race, or with -export.events 1000000, for the full size)",
			export.Count(raceEvents))
		return raceEvents
	}
	return 1_000_000
}

// raceEvents is the acceptance test's size under the race detector.
const raceEvents = 200_000

// TestExportOfAMillionEventsVerifies is the acceptance test of exports: a
// million lifecycle events in a real stream are exported as JSON lines,
// the export verifies, and every kind of tampering with a copy (a byte
// flipped, a line deleted, two lines swapped, the file truncated, the
// manifest's counts or range altered) fails verification with a message
// naming what is wrong and where.
func TestExportOfAMillionEventsVerifies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := acceptanceEvents(t)
	store := newStore(t)
	start := time.Now()
	h := newHistory(1, false)
	publish(t, store, n, h.next)
	t.Logf("published %s events in %v", export.Count(uint64(n)), time.Since(start).Round(time.Millisecond))

	pub, priv := signingKey(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.jsonl")
	filter := export.Filter{From: genStart, To: genStart.Add(time.Duration(n+1000) * time.Millisecond), Format: export.JSONL}
	start = time.Now()
	res, err := export.Export(ctx, store.Store, path, export.Options{Filter: filter, Key: priv})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Manifest
	t.Logf("exported %s events in %v (%s events/s; owners: %d cache hits, %d loads)", export.Count(m.Records),
		res.Elapsed.Round(time.Millisecond), export.Count(uint64(res.Rate())), res.Owners.Hits, res.Owners.Loads)
	if m.Records != uint64(n) || m.Lifecycle.First != 1 || m.Lifecycle.Last != uint64(n) {
		t.Fatalf("manifest: %d records, sequences %d..%d; want %d, 1..%d", m.Records, m.Lifecycle.First, m.Lifecycle.Last, n, n)
	}

	start = time.Now()
	rep, err := export.Verify(ctx, path, export.VerifyOptions{PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("verified in %v", time.Since(start).Round(time.Millisecond))
	if !rep.OK() || !rep.SignatureValid || rep.Records != uint64(n) {
		t.Fatalf("the untouched export does not verify (%d records, signature valid %t):\n%s", rep.Records, rep.SignatureValid, messages(rep))
	}

	t.Run("csv", func(t *testing.T) {
		t.Parallel()
		csvPath := filepath.Join(t.TempDir(), "ledger.csv")
		filter := filter
		filter.Format = export.CSV
		res, err := export.Export(ctx, store.Store, csvPath, export.Options{Filter: filter, Key: priv})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("exported %s events as CSV in %v", export.Count(res.Manifest.Records), res.Elapsed.Round(time.Millisecond))
		if res.Manifest.Records != uint64(n) || !maps.Equal(res.Manifest.Counts, m.Counts) {
			t.Fatalf("CSV export: %d records %v, JSONL: %d records %v", res.Manifest.Records, res.Manifest.Counts, m.Records, m.Counts)
		}
		rep, err := export.Verify(ctx, csvPath, export.VerifyOptions{PublicKey: pub})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.Records != uint64(n) {
			t.Fatalf("the untouched CSV export does not verify (%d records):\n%s", rep.Records, messages(rep))
		}
		// Line 1 is the header: record i is on line i+1.
		mid := int64(n/2) + 1
		offsets := lineOffsets(t, csvPath, mid, mid+1)
		dst := filepath.Join(t.TempDir(), "ledger.csv")
		copyRange(t, csvPath, dst, 0, fileSize(t, csvPath))
		line := readAt(t, csvPath, offsets[0], offsets[1]-offsets[0])
		i := int64(bytes.Index(line, []byte(",user:")) + 1)
		patch(t, dst, offsets[0]+i, line[i]^0x01)
		copyManifest(t, csvPath, dst, nil)
		if rep, err = export.Verify(ctx, dst, export.VerifyOptions{PublicKey: pub}); err != nil {
			t.Fatal(err)
		}
		requireProblem(t, rep, export.ProblemChain, lineNo(mid+1)+"hash chain broken", "does not continue line "+itoa(mid))
		requireProblem(t, rep, export.ProblemDataHash, "data file SHA-256 mismatch")
	})

	mid := int64(n / 2)
	offsets := lineOffsets(t, path, mid, mid+1, mid+2)
	size := fileSize(t, path)
	seqMid, seqNext := m.Lifecycle.First+uint64(mid)-1, m.Lifecycle.First+uint64(mid)
	revoked := domain.TypeTokenRevoked
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dst string)
		want   func(t *testing.T, rep export.Report)
	}{
		{
			name: "one byte flipped in the middle",
			tamper: func(t *testing.T, dst string) {
				copyRange(t, path, dst, 0, size)
				line := readAt(t, path, offsets[0], offsets[1]-offsets[0])
				i := int64(bytes.Index(line, []byte(`"actor":"user`)) + len(`"actor":"`))
				patch(t, dst, offsets[0]+i, line[i]^0x01)
				copyManifest(t, path, dst, nil)
			},
			want: func(t *testing.T, rep export.Report) {
				requireProblem(t, rep, export.ProblemChain, lineNo(mid+1)+"hash chain broken", "does not continue line "+itoa(mid), "altered, removed or moved")
				requireProblem(t, rep, export.ProblemDataHash, "data file SHA-256 mismatch")
			},
		},
		{
			name: "a line deleted",
			tamper: func(t *testing.T, dst string) {
				copyRange(t, path, dst, 0, offsets[0])
				appendRange(t, path, dst, offsets[1], size-offsets[1])
				copyManifest(t, path, dst, nil)
			},
			want: func(t *testing.T, rep export.Report) {
				requireProblem(t, rep, export.ProblemChain, lineNo(mid)+"hash chain broken", "does not continue line "+itoa(mid-1))
				requireProblem(t, rep, export.ProblemCount, "records removed: "+export.Count(uint64(n-1))+" records, manifest says "+export.Count(uint64(n)))
				requireProblem(t, rep, export.ProblemCount, "counts: ", "manifest says")
			},
		},
		{
			name: "two lines swapped",
			tamper: func(t *testing.T, dst string) {
				copyRange(t, path, dst, 0, offsets[0])
				appendRange(t, path, dst, offsets[1], offsets[2]-offsets[1])
				appendRange(t, path, dst, offsets[0], offsets[1]-offsets[0])
				appendRange(t, path, dst, offsets[2], size-offsets[2])
				copyManifest(t, path, dst, nil)
			},
			want: func(t *testing.T, rep export.Report) {
				requireProblem(t, rep, export.ProblemOrder, lineNo(mid+1)+"sequence "+itoa(int64(seqMid))+" does not follow "+itoa(int64(seqNext)))
				requireProblem(t, rep, export.ProblemChain, lineNo(mid)+"hash chain broken")
			},
		},
		{
			name: "file truncated",
			tamper: func(t *testing.T, dst string) {
				copyRange(t, path, dst, 0, offsets[0]+10)
				copyManifest(t, path, dst, nil)
			},
			want: func(t *testing.T, rep export.Report) {
				requireProblem(t, rep, export.ProblemCount, "file truncated: "+export.Count(uint64(mid-1))+" records, manifest says "+export.Count(uint64(n)))
				requireProblem(t, rep, export.ProblemRecord, lineNo(mid)+"the file ends inside this record")
				requireProblem(t, rep, export.ProblemChain, "hash chain head")
			},
		},
		{
			name: "manifest count altered",
			tamper: func(t *testing.T, dst string) {
				link(t, path, dst)
				copyManifest(t, path, dst, func(m *export.Manifest) { m.Counts[revoked]++ })
			},
			want: func(t *testing.T, rep export.Report) {
				requireProblem(t, rep, export.ProblemSignature, "manifest signature invalid")
				requireProblem(t, rep, export.ProblemCount, "counts: token.revoked.v1 has "+export.Count(m.Counts[revoked])+" records, manifest says "+export.Count(m.Counts[revoked]+1))
			},
		},
		{
			name: "manifest range altered",
			tamper: func(t *testing.T, dst string) {
				link(t, path, dst)
				copyManifest(t, path, dst, func(m *export.Manifest) { m.Filter.To = genStart.Add(time.Duration(n/2) * time.Millisecond) })
			},
			want: func(t *testing.T, rep export.Report) {
				requireProblem(t, rep, export.ProblemSignature, "manifest signature invalid")
				requireProblem(t, rep, export.ProblemManifest, "chain h0")
				requireProblem(t, rep, export.ProblemChain, "line 1: hash chain broken", "filter's h0")
				requireProblem(t, rep, export.ProblemSelection, "is outside the export's range")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dst := filepath.Join(t.TempDir(), "ledger.jsonl")
			tc.tamper(t, dst)
			rep, err := export.Verify(ctx, dst, export.VerifyOptions{PublicKey: pub})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatal("the tampered export verifies")
			}
			tc.want(t, rep)
			if t.Failed() {
				return
			}
			t.Logf("problems:\n%s", messages(rep))
		})
	}
}

func itoa(n int64) string   { return strconv.FormatInt(n, 10) }
func lineNo(n int64) string { return "line " + itoa(n) + ": " }

// lineOffsets returns the byte offsets at which the given lines (1-based,
// increasing) of the file start.
func lineOffsets(t *testing.T, path string, lines ...int64) []int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var out []int64
	var off int64
	for line := int64(1); len(out) < len(lines); line++ {
		if line == lines[len(out)] {
			out = append(out, off)
			if len(out) == len(lines) {
				break
			}
		}
		b, err := r.ReadSlice('\n')
		for err == bufio.ErrBufferFull {
			off += int64(len(b))
			b, err = r.ReadSlice('\n')
		}
		if err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		off += int64(len(b))
	}
	return out
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// copyRange creates dst with the n bytes of src from offset off.
func copyRange(t *testing.T, src, dst string, off, n int64) {
	t.Helper()
	if err := os.WriteFile(dst, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	appendRange(t, src, dst, off, n)
}

// appendRange appends the n bytes of src from offset off to dst.
func appendRange(t *testing.T, src, dst string, off, n int64) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := in.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(out, in, n); err != nil {
		t.Fatal(err)
	}
}

func readAt(t *testing.T, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// patch writes byte c at offset off of path.
func patch(t *testing.T, path string, off int64, c byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{c}, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// link makes dst the same file as src, for tampering with the manifest
// only.
func link(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.Link(src, dst); err != nil {
		t.Fatal(err)
	}
}
