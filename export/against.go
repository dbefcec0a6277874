package export

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/tokenledger/tokenledger/eventstore"
)

// against compares the export at path with the live store: for each
// stream of the export, it reads the stream through the sequence the
// export read it to, selects with the export's filter exactly as Export
// does, and walks the export's records of that stream alongside, by
// sequence. Memory stays bounded: one record and one event at a time, the
// reading's chunks and the owner cache.
func against(ctx context.Context, store *eventstore.Store, path string, m Manifest, p *problems, opts VerifyOptions) error {
	type pass struct {
		kind Stream
		rng  StreamRange
		name string
	}
	passes := []pass{{Lifecycle, m.Lifecycle, store.Config().Stream}}
	if m.Usage != nil {
		passes = append(passes, pass{Usage, *m.Usage, store.Config().UsageStream})
	}
	sel := &selector{filter: m.Filter, owners: newOwnerResolver(store, opts.OwnerCache)}
	for _, ps := range passes {
		if ps.rng.Stream != ps.name {
			p.fileProblem(ProblemManifest, "the export read the %s stream %q, the store's is %q: not compared", ps.kind, ps.rng.Stream, ps.name)
			continue
		}
		if err := comparePass(ctx, store, ps.kind, ps.rng.ScannedThrough, path, m, sel, p, opts); err != nil {
			return err
		}
	}
	return nil
}

// comparePass compares the export's records of one stream with the
// stream.
func comparePass(ctx context.Context, store *eventstore.Store, kind Stream, through uint64, path string, m Manifest, sel *selector, p *problems, opts VerifyOptions) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rd, err := NewReader(&countingReader{r: f, progress: opts.Progress, total: fileSize(f)}, m.Filter.Format)
	if err != nil {
		// Reported by the file's own verification.
		return nil
	}
	fileNext := func() (Record, int64, bool, error) {
		for {
			l, err := rd.Next()
			if errors.Is(err, io.EOF) {
				return Record{}, 0, false, nil
			}
			if err != nil {
				return Record{}, 0, false, err
			}
			if l.Err == nil && l.Record.Stream == kind {
				return l.Record, l.Number, true, nil
			}
		}
	}
	if through > 0 {
		// A usage stream that has aged out entirely has nothing to read.
		if _, msgs, err := streamEnd(ctx, store, kind); err != nil {
			return err
		} else if msgs == 0 {
			through = 0
		}
	}
	sc, err := startScan(ctx, store, kind, through)
	if err != nil {
		return err
	}
	defer sc.Close()
	// queued holds the records of the last event read that are still to
	// be compared: a usage batch has one per token.
	var queued []Record
	liveNext := func() (Record, bool, error) {
		for len(queued) == 0 {
			e, err := sc.Next(ctx)
			if err != nil || e == nil {
				return Record{}, false, err
			}
			err = sel.records(ctx, e, kind, func(r *Record) error {
				queued = append(queued, *r)
				return nil
			})
			if err != nil {
				return Record{}, false, err
			}
		}
		r := queued[0]
		queued = queued[1:]
		return r, true, nil
	}

	name := "sequence"
	if kind == Usage {
		name = "usage sequence"
	}
	fr, line, fok, err := fileNext()
	if err != nil {
		return err
	}
	lr, lok, err := liveNext()
	if err != nil {
		return err
	}
	for fok || lok {
		switch {
		case !fok || (lok && lr.Sequence < fr.Sequence):
			p.itemProblem(ProblemMissing, "missing from the export: %s %d, event %s (%s at %s)",
				name, lr.Sequence, lr.EventID, lr.Type, formatTime(lr.Time))
			if lr, lok, err = liveNext(); err != nil {
				return err
			}
			continue
		case !lok || fr.Sequence < lr.Sequence:
			p.lineProblem(ProblemExtra, line, "not in the stream: %s %d, event %s (%s) is not an event the filter selects in %s up to sequence %d",
				name, fr.Sequence, fr.EventID, fr.Type, kind, through)
		case fr.EventID != lr.EventID:
			p.lineProblem(ProblemDiffers, line, "%s %d is event %s in the export, event %s in the stream", name, fr.Sequence, fr.EventID, lr.EventID)
			if lr, lok, err = liveNext(); err != nil {
				return err
			}
		default:
			if col := recordDiff(&fr, &lr); col != "" {
				p.lineProblem(ProblemDiffers, line, "%s %d, event %s differs from the stream in %s", name, fr.Sequence, fr.EventID, col)
			}
			if lr, lok, err = liveNext(); err != nil {
				return err
			}
		}
		if fr, line, fok, err = fileNext(); err != nil {
			return err
		}
	}
	return nil
}

// recordDiff returns the name of the first column in which a and b
// differ, "" when they are equal.
func recordDiff(a, b *Record) string {
	for col := range numColumns {
		var same bool
		switch columnKinds[col] {
		case kindText:
			same = a.textField(col) == b.textField(col)
		case kindUint:
			same = a.uintField(col) == b.uintField(col)
		case kindTime:
			same = a.timeField(col).Equal(b.timeField(col))
		default:
			same = true
		}
		if !same {
			return Columns[col]
		}
	}
	return ""
}
