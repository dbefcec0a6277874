package export

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// ErrSignatureRequired is returned by Export given neither a key nor
// Options.Unsigned: an export is signed unless its maker explicitly says
// otherwise.
var ErrSignatureRequired = errors.New("a signing key is required (or an explicitly unsigned export)")

// Options configures Export.
type Options struct {
	// Filter selects the events; it must be valid.
	Filter Filter
	// Key signs the manifest. It is required unless Unsigned is set.
	Key ed25519.PrivateKey
	// Unsigned writes a manifest without a signature, marked unsigned.
	Unsigned bool
	// OwnerCache is how many tokens' owners are kept in memory
	// (DefaultOwnerCache when zero).
	OwnerCache int
	// Progress, if set, is called on the exporting goroutine every few
	// thousand events with the events read so far and the number to
	// read. It must be quick.
	Progress func(done, total uint64)
	// Now is the clock of the manifest's created_at (time.Now when nil).
	Now func() time.Time
}

// progressEvery is how often, in events read, Options.Progress is called.
const progressEvery = 4096

// Result tells what an export did.
type Result struct {
	// Manifest is the manifest written next to the data file.
	Manifest Manifest
	// Scanned is the number of events read from the streams: all of them,
	// up to their last sequences when the export started.
	Scanned uint64
	// Owners tells how the owners of token events were found.
	Owners OwnerStats
	// Elapsed is the export's duration.
	Elapsed time.Duration
}

// Rate returns the events read per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Scanned) / r.Elapsed.Seconds()
}

// Export writes the events opts.Filter selects to the data file path and
// its signed manifest to ManifestPath(path), each replacing any file there
// only once complete.
//
// It reads the lifecycle stream (and, with IncludeUsage, the usage stream)
// from the start through the last sequence each had when the export
// began, because event times do not follow stream order strictly and an
// event of the range may sit anywhere in the stream. Records are in stream
// order; with usage, the two streams are merged: of their next events,
// the earlier by event time comes first (lifecycle first on a tie), and
// each stream keeps its own order. Memory stays bounded whatever the
// streams' length: a few chunks of events per core, one record, and the
// owner cache (see the package documentation).
func Export(ctx context.Context, store *eventstore.Store, path string, opts Options) (Result, error) {
	start := time.Now()
	if err := opts.Filter.Validate(); err != nil {
		return Result{}, err
	}
	if opts.Key == nil && !opts.Unsigned {
		return Result{}, fmt.Errorf("export: %w", ErrSignatureRequired)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := opts.Filter.Normalize()
	m := Manifest{Lifecycle: StreamRange{Stream: store.Config().Stream}}
	var err error
	if m.Lifecycle.ScannedThrough, err = store.StreamLastSequence(ctx); err != nil {
		return Result{}, fmt.Errorf("export: %w", err)
	}
	total := m.Lifecycle.ScannedThrough
	if f.IncludeUsage {
		last, msgs, err := streamEnd(ctx, store, Usage)
		if err != nil {
			return Result{}, fmt.Errorf("export: usage %w", err)
		}
		m.Usage = &StreamRange{Stream: store.Config().UsageStream}
		if msgs > 0 {
			m.Usage.ScannedThrough = last
			total += msgs
		}
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return Result{}, fmt.Errorf("export: %w", err)
	}
	defer func() {
		if tmp != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	w, err := NewWriter(tmp, f)
	if err != nil {
		return Result{}, err
	}
	res := Result{}
	sel := &selector{filter: f, owners: newOwnerResolver(store, opts.OwnerCache)}
	err = mergeStreams(ctx, store, m.Lifecycle.ScannedThrough, m.Usage, func(e *domain.Envelope, s Stream) error {
		res.Scanned++
		if opts.Progress != nil && res.Scanned%progressEvery == 0 {
			opts.Progress(res.Scanned, total)
		}
		return sel.records(ctx, e, s, w.Write)
	})
	if err != nil {
		return res, fmt.Errorf("export: %w", err)
	}
	if opts.Progress != nil {
		opts.Progress(res.Scanned, max(total, res.Scanned))
	}
	sum, err := w.Close()
	if err != nil {
		return res, fmt.Errorf("export: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return res, fmt.Errorf("export: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return res, fmt.Errorf("export: %w", err)
	}
	m = NewManifest(f, filepath.Base(path), sum, m.Lifecycle, m.Usage, opts.Now())
	if opts.Key != nil {
		if err := m.Sign(opts.Key); err != nil {
			return res, fmt.Errorf("export: %w", err)
		}
	}
	// A manifest left from an earlier export to the same path must not
	// sit next to the new data file, even for a moment.
	if err := os.Remove(ManifestPath(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("export: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return res, fmt.Errorf("export: %w", err)
	}
	tmp = nil
	if err := WriteManifest(ManifestPath(path), m); err != nil {
		_ = os.Remove(path)
		return res, fmt.Errorf("export: %w", err)
	}
	res.Manifest = m
	res.Owners = sel.owners.stats
	res.Elapsed = time.Since(start)
	return res, nil
}

// mergeStreams passes every event of the lifecycle stream through
// sequence lifecycleThrough and, when usage is not nil, of the usage
// stream through usage.ScannedThrough, to fn: each stream in its order,
// the two merged by event time, lifecycle first on a tie.
func mergeStreams(ctx context.Context, store *eventstore.Store, lifecycleThrough uint64, usage *StreamRange, fn func(*domain.Envelope, Stream) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lc, err := startScan(ctx, store, Lifecycle, lifecycleThrough)
	if err != nil {
		return err
	}
	defer lc.Close()
	var usageThrough uint64
	if usage != nil {
		usageThrough = usage.ScannedThrough
	}
	us, err := startScan(ctx, store, Usage, usageThrough)
	if err != nil {
		return err
	}
	defer us.Close()
	a, err := lc.Next(ctx)
	if err != nil {
		return err
	}
	b, err := us.Next(ctx)
	if err != nil {
		return err
	}
	for a != nil || b != nil {
		if b == nil || (a != nil && !b.Time.Before(a.Time)) {
			if err := fn(a, Lifecycle); err != nil {
				return err
			}
			if a, err = lc.Next(ctx); err != nil {
				return err
			}
			continue
		}
		if err := fn(b, Usage); err != nil {
			return err
		}
		if b, err = us.Next(ctx); err != nil {
			return err
		}
	}
	return nil
}

// selector decides which events an export holds and makes their records.
type selector struct {
	filter Filter
	owners *ownerResolver
}

// records passes the records of event e of stream st that the filter
// selects to fn: one for most events, one per token for a usage batch
// (in the batch's order, each with the owner of its token, so an owner's
// export holds only its own tokens' uses). Every event must pass through
// it, selected or not, in stream order: token.issued events fill the
// owner cache.
func (s *selector) records(ctx context.Context, e *domain.Envelope, st Stream, fn func(*Record) error) error {
	s.owners.observe(e)
	if !s.filter.inRange(e.Time) || !s.filter.selectsType(e.Type) {
		return nil
	}
	if e.Type == domain.TypeUsageBatch {
		for id, used := range domain.Uses(*e) {
			owner, err := s.owners.tokenOwner(ctx, id)
			if err != nil {
				return fmt.Errorf("owner of token %s: %w", id, err)
			}
			if s.filter.Owner != "" && owner != s.filter.Owner {
				continue
			}
			r := UsageRecordOf(*e, id, used, owner)
			if err := fn(&r); err != nil {
				return err
			}
		}
		return nil
	}
	owner, err := s.owners.owner(ctx, e)
	if err != nil {
		return err
	}
	if s.filter.Owner != "" && owner != s.filter.Owner {
		return nil
	}
	r := RecordOf(*e, st, owner)
	return fn(&r)
}
