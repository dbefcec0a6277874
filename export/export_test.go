package export_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/export"
)

// An export holds exactly the events its filter selects, from both
// streams, each stream in its order, and compares clean with the stream:
// by owner (including the events of its tokens, which do not carry the
// owner), by type, by time range ([from, to): an event at from is in, one
// at to is out).
func TestExportSelects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newStore(t)
	const n, seed = 4000, 23
	publish(t, store, n, newHistory(seed, true).next)
	all := historyRecords(n, seed, true)
	pub, priv := signingKey(t)
	owner := all[0].Owner
	from, to := all[1000].Time, all[2000].Time

	for _, tc := range []struct {
		name   string
		filter export.Filter
		want   func(export.Record) bool
	}{
		{"everything", export.Filter{From: genStart, To: genStart.Add(time.Hour), IncludeUsage: true},
			func(export.Record) bool { return true }},
		{"lifecycle only", export.Filter{From: genStart, To: genStart.Add(time.Hour)},
			func(r export.Record) bool { return r.Stream == export.Lifecycle }},
		{"one owner", export.Filter{From: genStart, To: genStart.Add(time.Hour), Owner: owner, IncludeUsage: true},
			func(r export.Record) bool { return r.Owner == owner }},
		{"revocations", export.Filter{From: genStart, To: genStart.Add(time.Hour), Types: []domain.EventType{domain.TypeTokenRevoked, domain.TypeOwnerTokensRevoked}},
			func(r export.Record) bool {
				return r.Type == domain.TypeTokenRevoked || r.Type == domain.TypeOwnerTokensRevoked
			}},
		{"usage only", export.Filter{From: genStart, To: genStart.Add(time.Hour), Types: []domain.EventType{domain.TypeTokenUsed, domain.TypeUsageBatch}, IncludeUsage: true},
			func(r export.Record) bool { return r.Stream == export.Usage }},
		{"usage batches only", export.Filter{From: genStart, To: genStart.Add(time.Hour), Types: []domain.EventType{domain.TypeUsageBatch}, IncludeUsage: true},
			func(r export.Record) bool { return r.Type == domain.TypeUsageBatch }},
		{"time range", export.Filter{From: from, To: to, IncludeUsage: true},
			func(r export.Record) bool { return !r.Time.Before(from) && r.Time.Before(to) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, format := range []export.Format{export.JSONL, export.CSV} {
				f := tc.filter
				f.Format = format
				path := filepath.Join(t.TempDir(), "ledger."+string(format))
				res, err := export.Export(ctx, store.Store, path, export.Options{Filter: f, Key: priv})
				if err != nil {
					t.Fatal(err)
				}
				got := readRecords(t, path, format)
				want := map[export.Stream][]export.Record{}
				for _, r := range all {
					if tc.want(r) {
						want[r.Stream] = append(want[r.Stream], r)
					}
				}
				for _, s := range []export.Stream{export.Lifecycle, export.Usage} {
					if len(got[s]) != len(want[s]) {
						t.Fatalf("%s: %d %s records, want %d", format, len(got[s]), s, len(want[s]))
					}
					for i := range want[s] {
						if !recordsEqual(got[s][i], want[s][i]) {
							t.Fatalf("%s: %s record %d:\n got %+v\nwant %+v", format, s, i, got[s][i], want[s][i])
						}
					}
				}
				if len(want[export.Lifecycle])+len(want[export.Usage]) == 0 || res.Manifest.Records == 0 {
					t.Fatal("the case selects nothing")
				}
				rep := verify(t, path, export.VerifyOptions{PublicKey: pub, Against: store.Store})
				if !rep.OK() || !rep.Compared {
					t.Fatalf("%s: verify against the stream:\n%s", format, messages(rep))
				}
			}
		})
	}
}

// readRecords reads an export's records by stream.
func readRecords(t *testing.T, path string, format export.Format) map[export.Stream][]export.Record {
	t.Helper()
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	rd, err := export.NewReader(in, format)
	if err != nil {
		t.Fatal(err)
	}
	out := map[export.Stream][]export.Record{}
	for {
		l, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil || l.Err != nil {
			t.Fatalf("line %d: %v %v", l.Number, err, l.Err)
		}
		out[l.Record.Stream] = append(out[l.Record.Stream], l.Record)
	}
}

// The owner cache changes what an export costs, not what it holds: an
// export with a cache of one entry, which loads most owners from the
// store, is byte for byte the export with the default cache.
func TestOwnerCacheSizeDoesNotChangeTheExport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newStore(t)
	const n = 3000
	publish(t, store, n, newHistory(29, true).next)
	f := historyFilter(n, export.JSONL)
	f.IncludeUsage = true
	dir := t.TempDir()
	var files [][]byte
	var loads []uint64
	for i, size := range []int{0, 1} {
		path := filepath.Join(dir, "ledger"+string(rune('a'+i)))
		res, err := export.Export(ctx, store.Store, path, export.Options{Filter: f, Unsigned: true, OwnerCache: size})
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files, loads = append(files, b), append(loads, res.Owners.Loads)
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Fatal("the export with a one-entry owner cache differs from the one with the default cache")
	}
	if loads[0] != 0 || loads[1] < 100 {
		t.Fatalf("owner loads: %d with the default cache, %d with one entry; want 0 and many", loads[0], loads[1])
	}
}

// Export refuses to write an unsigned export unless told to, and writes
// nothing then.
func TestExportRequiresAKey(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	_, err := export.Export(context.Background(), store.Store, path, export.Options{Filter: historyFilter(10, export.JSONL)})
	if !errors.Is(err, export.ErrSignatureRequired) {
		t.Fatalf("Export without a key = %v, want ErrSignatureRequired", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused export left %s behind (%v)", path, err)
	}
}

// An export cancelled midway fails with the context's error and leaves
// neither a data file nor a manifest behind.
func TestExportCancelled(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	const n = 20_000
	publish(t, store, n, newHistory(31, false).next)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.jsonl")
	var seen uint64
	_, err := export.Export(ctx, store.Store, path, export.Options{Filter: historyFilter(n, export.JSONL), Unsigned: true,
		Progress: func(done, _ uint64) {
			seen = done
			cancel()
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Export = %v, want context.Canceled", err)
	}
	if seen == 0 || seen >= n {
		t.Fatalf("cancelled after %d of %d events", seen, n)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("a cancelled export left %d files behind: %v", len(entries), entries)
	}
}
