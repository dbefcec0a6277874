package export

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
)

// ProblemKind classifies what Verify found wrong.
type ProblemKind string

// The kinds of problems.
const (
	// ProblemManifest: the manifest cannot be read, or contradicts itself.
	ProblemManifest ProblemKind = "manifest"
	// ProblemSignature: the signature is invalid, made with another key,
	// or could not be checked (no public key given).
	ProblemSignature ProblemKind = "signature"
	// ProblemUnsigned: the export is unsigned (not a problem with
	// VerifyOptions.AllowUnsigned).
	ProblemUnsigned ProblemKind = "unsigned"
	// ProblemDataHash: the data file's SHA-256 is not the manifest's.
	ProblemDataHash ProblemKind = "data-sha256"
	// ProblemChain: a record does not continue the hash chain, or the
	// chain's head is not the manifest's.
	ProblemChain ProblemKind = "chain"
	// ProblemRecord: a record cannot be parsed, or the file ends inside
	// one.
	ProblemRecord ProblemKind = "record"
	// ProblemOrder: a record's sequence does not follow the previous one
	// of its stream.
	ProblemOrder ProblemKind = "order"
	// ProblemSelection: a record is outside the time range, or of a type,
	// stream or owner the filter does not select.
	ProblemSelection ProblemKind = "selection"
	// ProblemCount: the records, or the records of a type, are not as
	// many as the manifest says.
	ProblemCount ProblemKind = "count"
	// ProblemSpan: the first or last sequence, or the first or last time,
	// is not the manifest's.
	ProblemSpan ProblemKind = "span"
	// ProblemMissing: an event the filter selects in the stream is not in
	// the export (VerifyOptions.Against).
	ProblemMissing ProblemKind = "missing"
	// ProblemExtra: a record of the export is not an event the filter
	// selects in the stream (VerifyOptions.Against).
	ProblemExtra ProblemKind = "extra"
	// ProblemDiffers: a record differs from the stream's event of the
	// same sequence (VerifyOptions.Against).
	ProblemDiffers ProblemKind = "differs"
)

// Problem is one thing Verify found wrong.
type Problem struct {
	Kind ProblemKind
	// Line is the line of the data file the problem is at; 0 when it is
	// not about one line.
	Line int64
	// Message says what is wrong and where, starting with "line N: " when
	// Line is set.
	Message string
}

// String returns the message.
func (p Problem) String() string { return p.Message }

// DefaultMaxProblems is how many problems about single records a Report
// lists by default; the others are only counted.
const DefaultMaxProblems = 20

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// PublicKey checks the manifest's signature. Without it the signature
	// cannot be checked, which is a problem.
	PublicKey ed25519.PublicKey
	// AllowUnsigned accepts an unsigned export (the Report still says it
	// is unsigned).
	AllowUnsigned bool
	// MaxProblems is how many problems about single records are listed
	// (DefaultMaxProblems when zero); problems about the whole file are
	// always listed.
	MaxProblems int
	// Against, if set, is the live store: Verify also reads the same
	// streams, range and filter and reports every event missing from the
	// export, every record not in the stream and every record that
	// differs from its event.
	Against *eventstore.Store
	// OwnerCache sizes the owner cache of the Against read
	// (DefaultOwnerCache when zero).
	OwnerCache int
	// Progress, if set, is called now and then with the bytes of the data
	// file read so far and its size (on each pass when Against is set).
	Progress func(done, total uint64)
}

// Report is what Verify found.
type Report struct {
	// Manifest is the manifest read (zero when it could not be read).
	Manifest Manifest
	// Records is the number of records in the data file.
	Records uint64
	// Problems lists the problems about the whole file, then up to
	// MaxProblems about single records, in file order.
	Problems []Problem
	// Total is the number of problems found, listed or not.
	Total int
	// SignatureValid is set when the signature was checked and is valid.
	SignatureValid bool
	// Unsigned is set when the export is unsigned.
	Unsigned bool
	// Compared is set when the export was compared with the live stream.
	Compared bool
}

// OK reports whether nothing is wrong.
func (r Report) OK() bool { return r.Total == 0 }

// Omitted returns how many problems were found but not listed.
func (r Report) Omitted() int { return r.Total - len(r.Problems) }

// problems collects a report's problems: those about the whole file all,
// those about records up to a cap.
type problems struct {
	file  []Problem
	lines []Problem
	total int
	max   int
}

func (p *problems) fileProblem(kind ProblemKind, format string, args ...any) {
	p.total++
	p.file = append(p.file, Problem{Kind: kind, Message: fmt.Sprintf(format, args...)})
}

func (p *problems) lineProblem(kind ProblemKind, line int64, format string, args ...any) {
	p.total++
	if len(p.lines) < p.max {
		msg := fmt.Sprintf("line %d: ", line) + fmt.Sprintf(format, args...)
		p.lines = append(p.lines, Problem{Kind: kind, Line: line, Message: msg})
	}
}

// itemProblem records a problem about one event, listed only within the
// cap; format is applied only then.
func (p *problems) itemProblem(kind ProblemKind, format string, args ...any) {
	p.total++
	if len(p.lines) < p.max {
		p.lines = append(p.lines, Problem{Kind: kind, Message: fmt.Sprintf(format, args...)})
	}
}

func (p *problems) list() []Problem { return append(slices.Clip(p.file), p.lines...) }

// Verify checks the export whose data file is at path against its
// manifest at ManifestPath(path): the manifest's signature (with
// opts.PublicKey), the data file's SHA-256, the hash chain record by
// record, that each stream's sequences strictly increase, that every
// record is in the filter's range and selection, the counts per type and
// in all, and the first and last sequences and times. With opts.Against
// it also compares the export with the live stream.
//
// Problems are reported, not returned as errors: the error is for what
// stops the verification (the data file cannot be read, the live stream
// cannot be read). A manifest that cannot be read is a problem, and
// nothing else is checked.
func Verify(ctx context.Context, path string, opts VerifyOptions) (Report, error) {
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = DefaultMaxProblems
	}
	p := &problems{max: opts.MaxProblems}
	var rep Report
	finish := func() Report {
		rep.Problems, rep.Total = p.list(), p.total
		return rep
	}
	m, err := ReadManifest(ManifestPath(path))
	if err != nil {
		p.fileProblem(ProblemManifest, "%v", err)
		return finish(), nil
	}
	rep.Manifest = m
	checkSignature(&rep, p, m, opts)
	checkManifest(p, m)

	f, err := os.Open(path)
	if err != nil {
		return finish(), fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	size := fileSize(f)
	rd, err := NewReader(&countingReader{r: f, progress: opts.Progress, total: size}, m.Filter.Format)
	if err != nil {
		p.fileProblem(ProblemRecord, "%v", err)
		return finish(), nil
	}
	c := newChecker(m, p)
	for {
		if err := ctx.Err(); err != nil {
			return finish(), fmt.Errorf("verify: %w", err)
		}
		l, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return finish(), fmt.Errorf("verify: %w", err)
		}
		c.line(l)
	}
	c.finish(rd.SHA256())
	rep.Records = c.records
	if opts.Against != nil {
		if err := against(ctx, opts.Against, path, m, p, opts); err != nil {
			return finish(), fmt.Errorf("verify against the stream: %w", err)
		}
		rep.Compared = true
	}
	return finish(), nil
}

func checkSignature(rep *Report, p *problems, m Manifest, opts VerifyOptions) {
	if m.Unsigned {
		rep.Unsigned = true
		if m.KeyID != "" || m.Signature != "" {
			p.fileProblem(ProblemManifest, "manifest says unsigned but names a key or holds a signature")
		}
		if !opts.AllowUnsigned {
			p.fileProblem(ProblemUnsigned, "unsigned: the export has no signature (accept it only with --allow-unsigned)")
		}
		return
	}
	if opts.PublicKey == nil {
		p.fileProblem(ProblemSignature, "manifest signature not checked: no public key given (the manifest names key %s)", m.KeyID)
		return
	}
	switch err := m.CheckSignature(opts.PublicKey); {
	case err == nil:
		rep.SignatureValid = true
	case errors.Is(err, ErrWrongKey):
		p.fileProblem(ProblemSignature, "%v", err)
	default:
		p.fileProblem(ProblemSignature, "manifest signature invalid (the manifest was altered after signing, or the signature is not one)")
	}
}

// checkManifest reports what contradicts itself within the manifest.
func checkManifest(p *problems, m Manifest) {
	h0 := m.Filter.H0()
	if m.Chain.Algorithm != "sha256" {
		p.fileProblem(ProblemManifest, "manifest: chain algorithm %q is not sha256", m.Chain.Algorithm)
	}
	if m.Chain.H0 != hex.EncodeToString(h0[:]) {
		p.fileProblem(ProblemManifest, "manifest: chain h0 %s is not the filter's %x", m.Chain.H0, h0)
	}
	var sum uint64
	for _, n := range m.Counts {
		sum += n
	}
	if sum != m.Records {
		p.fileProblem(ProblemManifest, "manifest: the counts add up to %s records, the manifest says %s", Count(sum), Count(m.Records))
	}
	switch {
	case m.Filter.IncludeUsage && m.Usage == nil:
		p.fileProblem(ProblemManifest, "manifest: include_usage is set but the usage stream is not described")
	case !m.Filter.IncludeUsage && m.Usage != nil:
		p.fileProblem(ProblemManifest, "manifest: include_usage is not set but the usage stream is described")
	}
}

// checker checks the records of a data file one by one against its
// manifest, holding only running values.
type checker struct {
	m        Manifest
	p        *problems
	h        hash.Hash
	expect   [32]byte
	prevLine int64
	breaks   int
	records  uint64
	counts   map[domain.EventType]uint64
	last     map[Stream]uint64
	lastID   map[Stream]string
	spans    map[Stream]*SequenceSpan
	first    time.Time
	latest   time.Time
}

func newChecker(m Manifest, p *problems) *checker {
	return &checker{
		m: m, p: p, h: sha256.New(), expect: m.Filter.H0(),
		counts: map[domain.EventType]uint64{},
		last:   map[Stream]uint64{},
		lastID: map[Stream]string{},
		spans:  map[Stream]*SequenceSpan{Lifecycle: {}, Usage: {}},
	}
}

func (c *checker) line(l *Line) {
	p, n := c.p, l.Number
	if l.Truncated {
		// An incomplete record is not counted: the counts say what is
		// missing.
		p.lineProblem(ProblemRecord, n, "the file ends inside this record (no newline after it): the file was truncated")
		c.expect = chainNext(c.h, &c.expect, l.Raw)
		c.prevLine = n
		return
	}
	c.records++
	if l.Err != nil {
		p.lineProblem(ProblemRecord, n, "not a record of this export: %v", l.Err)
		// The record's own prev_hash is unknown: go on as if it had the
		// expected one, so that only the link after it may break.
		c.expect = chainNext(c.h, &c.expect, l.Raw)
		c.prevLine = n
		return
	}
	if l.Prev != c.expect {
		c.breaks++
		if c.prevLine == 0 {
			p.lineProblem(ProblemChain, n, "hash chain broken: the first record does not start from the filter's h0 (the filter was altered, or records were removed from the start)")
		} else {
			p.lineProblem(ProblemChain, n, "hash chain broken: the record does not continue line %d (a record was altered, removed or moved)", c.prevLine)
		}
	}
	// Going on from the record's own prev_hash reports each break once
	// instead of every record after it.
	c.expect = chainNext(c.h, &l.Prev, l.Raw)
	c.prevLine = n

	r := &l.Record
	f := c.m.Filter
	name := "sequence"
	if r.Stream == Usage {
		name = "usage sequence"
	}
	switch {
	case r.Stream != Lifecycle && r.Stream != Usage:
		p.lineProblem(ProblemSelection, n, "unknown stream %q", r.Stream)
	case r.Stream == Usage && !f.IncludeUsage:
		p.lineProblem(ProblemSelection, n, "a usage record in an export without usage")
	case (r.Stream == Usage) != usageType(r.Type):
		p.lineProblem(ProblemSelection, n, "a %s record in the %s stream", r.Type, r.Stream)
	case !r.follows(c.last[r.Stream], c.lastID[r.Stream]):
		p.lineProblem(ProblemOrder, n, "%s %d does not follow %d", name, r.Sequence, c.last[r.Stream])
	}
	if r.Sequence >= c.last[r.Stream] {
		c.last[r.Stream] = r.Sequence
		c.lastID[r.Stream] = r.EventID
	}
	if !f.inRange(r.Time) {
		p.lineProblem(ProblemSelection, n, "time %s is outside the export's range [%s, %s)", formatTime(r.Time), formatTime(f.From), formatTime(f.To))
	}
	if !f.selectsType(r.Type) {
		p.lineProblem(ProblemSelection, n, "type %q is not selected by the export's filter", r.Type)
	}
	if f.Owner != "" && r.Owner != f.Owner {
		p.lineProblem(ProblemSelection, n, "owner %q is not the export's owner %q", r.Owner, f.Owner)
	}
	c.counts[r.Type]++
	if span := c.spans[r.Stream]; span != nil {
		if span.First == 0 {
			span.First = r.Sequence
		}
		span.Last = r.Sequence
	}
	if c.first.IsZero() || r.Time.Before(c.first) {
		c.first = r.Time
	}
	if r.Time.After(c.latest) {
		c.latest = r.Time
	}
}

// finish checks what can only be checked at the end of the file.
func (c *checker) finish(sum [32]byte) {
	m, p := c.m, c.p
	if got := hex.EncodeToString(sum[:]); got != m.DataSHA256 {
		p.fileProblem(ProblemDataHash, "data file SHA-256 mismatch: the file's is %s, the manifest says %s", got, m.DataSHA256)
	}
	if got := hex.EncodeToString(c.expect[:]); got != m.Chain.Head {
		where := "the records were altered, or records removed from or added at the end"
		if c.prevLine > 0 {
			where = fmt.Sprintf("after line %d, the last record: it was altered, or records were removed from or added at the end", c.prevLine)
		}
		p.fileProblem(ProblemChain, "hash chain head %s is not the manifest's %s (%s)", got, m.Chain.Head, where)
	}
	switch {
	case c.records < m.Records && c.breaks == 0:
		p.fileProblem(ProblemCount, "file truncated: %s records, manifest says %s", Count(c.records), Count(m.Records))
	case c.records < m.Records:
		p.fileProblem(ProblemCount, "records removed: %s records, manifest says %s", Count(c.records), Count(m.Records))
	case c.records > m.Records:
		p.fileProblem(ProblemCount, "records added: %s records, manifest says %s", Count(c.records), Count(m.Records))
	}
	types := slices.Sorted(maps.Keys(c.counts))
	for t := range maps.Keys(m.Counts) {
		if _, ok := c.counts[t]; !ok {
			types = append(types, t)
		}
	}
	slices.Sort(types)
	for _, t := range types {
		if got, want := c.counts[t], m.Counts[t]; got != want {
			p.fileProblem(ProblemCount, "counts: %s has %s records, manifest says %s", t, Count(got), Count(want))
		}
	}
	c.checkSpan("lifecycle", *c.spans[Lifecycle], m.Lifecycle.SequenceSpan)
	if m.Usage != nil {
		c.checkSpan("usage", *c.spans[Usage], m.Usage.SequenceSpan)
	}
	var first, last string
	if c.records > 0 {
		first, last = formatTime(c.first), formatTime(c.latest)
	}
	if first != m.FirstTime || last != m.LastTime {
		p.fileProblem(ProblemSpan, "times: the records span %s, the manifest says %s", timeSpan(first, last), timeSpan(m.FirstTime, m.LastTime))
	}
}

func (c *checker) checkSpan(stream string, got, want SequenceSpan) {
	if got != want {
		c.p.fileProblem(ProblemSpan, "%s sequences: the records span %s, the manifest says %s", stream, seqSpan(got), seqSpan(want))
	}
}

func seqSpan(s SequenceSpan) string {
	if s.First == 0 && s.Last == 0 {
		return "nothing"
	}
	return fmt.Sprintf("%d..%d", s.First, s.Last)
}

func timeSpan(first, last string) string {
	if first == "" && last == "" {
		return "nothing"
	}
	return first + " .. " + last
}

func fileSize(f *os.File) uint64 {
	info, err := f.Stat()
	if err != nil || info.Size() < 0 {
		return 0
	}
	return uint64(info.Size())
}

// countingReader reports the bytes read through it to a progress
// callback, every megabyte.
type countingReader struct {
	r        io.Reader
	n, next  uint64
	total    uint64
	progress func(done, total uint64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	if c.progress != nil && (c.n >= c.next || err != nil) {
		c.progress(c.n, max(c.total, c.n))
		c.next = c.n + 1<<20
	}
	return n, err
}
