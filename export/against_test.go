package export_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/export"
)

// reseal rewrites the export at src to dst with its records passed through
// edit, recomputing the chain, the counts, the hash and the signature as
// the holder of the key could: the result is consistent in itself. The
// streams' ranges are the original manifest's.
func reseal(t *testing.T, src, dst string, priv ed25519.PrivateKey, edit func([]export.Record) []export.Record) {
	t.Helper()
	m, err := export.ReadManifest(export.ManifestPath(src))
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	rd, err := export.NewReader(in, m.Filter.Format)
	if err != nil {
		t.Fatal(err)
	}
	var records []export.Record
	for {
		l, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || l.Err != nil {
			t.Fatalf("read %s: %v %v", src, err, l.Err)
		}
		records = append(records, l.Record)
	}
	records = edit(records)
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, err := export.NewWriter(out, m.Filter)
	if err != nil {
		t.Fatal(err)
	}
	for i := range records {
		if err := w.Write(&records[i]); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	resealed := export.NewManifest(m.Filter, filepath.Base(dst), sum, m.Lifecycle, m.Usage, time.Now())
	if err := resealed.Sign(priv); err != nil {
		t.Fatal(err)
	}
	if err := export.WriteManifest(export.ManifestPath(dst), resealed); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyAgainstFindsAMissingEvent is the acceptance test of
// --against: an export lacking one event of its range, re-chained,
// re-counted and re-signed so that it is consistent in itself, verifies
// on its own; compared with the live stream it fails, naming the missing
// event by sequence and id. Records added to or altered in such an export
// are named likewise, and the untouched export compares clean, with usage
// events and a token whose owner must be loaded from the store (an owner
// cache of one entry).
func TestVerifyAgainstFindsAMissingEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newStore(t)
	const n = 3000
	publish(t, store, n, newHistory(17, true).next)
	// Appended after the export: --against reads only what the export
	// read.
	pub, priv := signingKey(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.jsonl")
	filter := historyFilter(n, export.JSONL)
	filter.IncludeUsage = true
	res, err := export.Export(ctx, store.Store, path, export.Options{Filter: filter, Key: priv, OwnerCache: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Owners.Loads == 0 {
		t.Fatal("an owner cache of one entry loaded no owner from the store")
	}
	publish(t, store, 100, newHistory(18, false).next)

	var victim export.Record // the 1000th record, removed from the export
	var added int            // the line of the record added
	for _, tc := range []struct {
		name string
		edit func([]export.Record) []export.Record
		want func(t *testing.T, rep export.Report)
	}{
		{
			name: "untouched",
			edit: func(r []export.Record) []export.Record { return r },
		},
		{
			name: "one event removed",
			edit: func(r []export.Record) []export.Record {
				victim = r[999]
				return slices.Delete(r, 999, 1000)
			},
			want: func(t *testing.T, rep export.Report) {
				stream := "sequence "
				if victim.Stream == export.Usage {
					stream = "usage sequence "
				}
				requireProblem(t, rep, export.ProblemMissing, "missing from the export: "+stream+strconv.FormatUint(victim.Sequence, 10)+", event "+victim.EventID, string(victim.Type))
				if rep.Total != 1 {
					t.Errorf("%d problems, want exactly the missing event:\n%s", rep.Total, messages(rep))
				}
			},
		},
		{
			name: "one event added",
			edit: func(r []export.Record) []export.Record {
				extra := r[500]
				for _, rec := range r {
					if rec.Stream == export.Lifecycle {
						extra.Sequence = rec.Sequence + 1000
					}
				}
				extra.Stream, extra.Type = export.Lifecycle, domain.TypeTokenRevoked
				victim = extra
				added = len(r) + 1
				return append(r, extra)
			},
			want: func(t *testing.T, rep export.Report) {
				requireProblem(t, rep, export.ProblemExtra, fmt.Sprintf("line %d: not in the stream: sequence %d", added, victim.Sequence))
			},
		},
		{
			name: "one name altered",
			edit: func(r []export.Record) []export.Record {
				for i := range r {
					if r[i].Type == domain.TypeTokenIssued && i > 2000 {
						r[i].Name += " (edited)"
						victim = r[i]
						break
					}
				}
				return r
			},
			want: func(t *testing.T, rep export.Report) {
				requireProblem(t, rep, export.ProblemDiffers, "sequence "+strconv.FormatUint(victim.Sequence, 10)+", event "+victim.EventID+" differs from the stream in name")
			},
		},
	} {
		// Not parallel: the cases share victim.
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "ledger.jsonl")
			reseal(t, path, dst, priv, tc.edit)
			alone := verify(t, dst, export.VerifyOptions{PublicKey: pub})
			if !alone.OK() {
				t.Fatalf("the resealed export does not verify on its own:\n%s", messages(alone))
			}
			rep := verify(t, dst, export.VerifyOptions{PublicKey: pub, Against: store.Store, OwnerCache: 1})
			if !rep.Compared {
				t.Fatal("the report says the export was not compared with the stream")
			}
			if tc.want == nil {
				if !rep.OK() {
					t.Fatalf("the untouched export differs from the stream:\n%s", messages(rep))
				}
				return
			}
			if rep.OK() {
				t.Fatal("the comparison with the stream found nothing")
			}
			tc.want(t, rep)
		})
	}
}
