package export

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// Writer writes the data file of an export, record by record, and keeps
// what the manifest needs: the file's SHA-256, the hash chain's head, the
// counts, the sequences and times. It holds one record at a time; memory
// does not grow with the export. A Writer is not safe for concurrent use.
type Writer struct {
	filter  Filter
	out     *bufio.Writer
	file    hash.Hash
	chainH  hash.Hash
	chain   [32]byte
	line    []byte
	csvBuf  bytes.Buffer
	csv     *csv.Writer
	fields  []string
	sum     Summary
	lastSeq map[Stream]uint64
	lastID  map[Stream]string
	err     error
}

// Summary is what a Writer wrote, for the manifest.
type Summary struct {
	// Records is the number of records written.
	Records uint64
	// Counts is the number of records per event type.
	Counts map[domain.EventType]uint64
	// DataSHA256 is the SHA-256 of the whole data file.
	DataSHA256 [32]byte
	// Head is the hash chain's last value (H0 when there is no record).
	Head [32]byte
	// Lifecycle and Usage are the first and last sequences written from
	// each stream (zero when none).
	Lifecycle, Usage SequenceSpan
	// FirstTime and LastTime are the earliest and latest event times
	// written (zero when none).
	FirstTime, LastTime time.Time
}

// SequenceSpan is the first and last stream sequence of an export's
// records from one stream; both zero when it has none.
type SequenceSpan struct {
	First uint64 `json:"first_sequence"`
	Last  uint64 `json:"last_sequence"`
}

// NewWriter starts the data file of an export with filter f on w; for CSV
// it writes the header row. The filter must be valid.
func NewWriter(w io.Writer, f Filter) (*Writer, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	wr := &Writer{
		filter:  f.Normalize(),
		file:    sha256.New(),
		chainH:  sha256.New(),
		line:    make([]byte, 0, 1024),
		lastSeq: map[Stream]uint64{},
		lastID:  map[Stream]string{},
		sum:     Summary{Counts: map[domain.EventType]uint64{}},
	}
	wr.out = bufio.NewWriterSize(io.MultiWriter(w, wr.file), 256<<10)
	wr.chain = wr.filter.H0()
	if f.Format == CSV {
		wr.csv = csv.NewWriter(&wr.csvBuf)
		wr.fields = make([]string, numColumns)
		if err := wr.writeCSV(Columns); err != nil {
			return nil, err
		}
		if _, err := wr.out.Write(wr.csvBuf.Bytes()); err != nil {
			return nil, fmt.Errorf("write csv header: %w", err)
		}
	}
	return wr, nil
}

// Write appends record r. It refuses a record the filter does not select
// (by time, type or owner), and one whose sequence does not follow the
// previous record of its stream: what the writer accepts, Verify accepts.
func (w *Writer) Write(r *Record) error {
	if w.err != nil {
		return w.err
	}
	switch {
	case r.Stream != Lifecycle && r.Stream != Usage:
		return fmt.Errorf("export record %d: unknown stream %q", r.Sequence, r.Stream)
	case (r.Stream == Usage) != usageType(r.Type):
		return fmt.Errorf("export record %d: %s does not belong in the %s stream", r.Sequence, r.Type, r.Stream)
	case !w.filter.inRange(r.Time) || !w.filter.selectsType(r.Type) || (w.filter.Owner != "" && r.Owner != w.filter.Owner):
		return fmt.Errorf("export record %d: %s at %s of %q is not selected by the filter", r.Sequence, r.Type, formatTime(r.Time), r.Owner)
	case !r.follows(w.lastSeq[r.Stream], w.lastID[r.Stream]):
		return fmt.Errorf("export record %d: sequence does not follow %d of the %s stream", r.Sequence, w.lastSeq[r.Stream], r.Stream)
	}
	var line []byte
	if w.csv == nil {
		w.line = appendJSONL(w.line[:0], r, &w.chain)
		line = w.line
		w.line = append(w.line, '\n')
		if _, err := w.out.Write(w.line); err != nil {
			w.err = fmt.Errorf("write export record %d: %w", r.Sequence, err)
			return w.err
		}
	} else {
		fillCSV(w.fields, r, &w.chain)
		if err := w.writeCSV(w.fields); err != nil {
			w.err = err
			return err
		}
		rec := w.csvBuf.Bytes()
		line = rec[:len(rec)-1]
		if _, err := w.out.Write(rec); err != nil {
			w.err = fmt.Errorf("write export record %d: %w", r.Sequence, err)
			return w.err
		}
	}
	w.chain = chainNext(w.chainH, &w.chain, line)
	w.lastSeq[r.Stream] = r.Sequence
	w.lastID[r.Stream] = r.EventID
	w.account(r)
	return nil
}

// writeCSV encodes one CSV record into w.csvBuf, replacing what it held.
func (w *Writer) writeCSV(fields []string) error {
	w.csvBuf.Reset()
	if err := w.csv.Write(fields); err != nil {
		return fmt.Errorf("encode csv record: %w", err)
	}
	w.csv.Flush()
	return w.csv.Error()
}

func (w *Writer) account(r *Record) {
	s := &w.sum
	s.Records++
	s.Counts[r.Type]++
	span := &s.Lifecycle
	if r.Stream == Usage {
		span = &s.Usage
	}
	if span.First == 0 {
		span.First = r.Sequence
	}
	span.Last = r.Sequence
	if s.FirstTime.IsZero() || r.Time.Before(s.FirstTime) {
		s.FirstTime = r.Time
	}
	if r.Time.After(s.LastTime) {
		s.LastTime = r.Time
	}
}

// Close flushes the data file and returns what was written. It does not
// close the underlying writer.
func (w *Writer) Close() (Summary, error) {
	if w.err != nil {
		return Summary{}, w.err
	}
	if err := w.out.Flush(); err != nil {
		return Summary{}, fmt.Errorf("write export: %w", err)
	}
	w.err = errors.New("export writer is closed")
	w.sum.Head = w.chain
	w.file.Sum(w.sum.DataSHA256[:0])
	return w.sum, nil
}

// chainNext returns SHA-256(prev || line), reusing h.
func chainNext(h hash.Hash, prev *[32]byte, line []byte) [32]byte {
	h.Reset()
	h.Write(prev[:])
	h.Write(line)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// appendJSONL appends the JSONL form of r, with prev as its prev_hash,
// without the newline.
func appendJSONL(b []byte, r *Record, prev *[32]byte) []byte {
	b = append(b, '{')
	for col := range numColumns {
		if col > 0 {
			b = append(b, ',')
		}
		b = append(b, jsonKeys[col]...)
		switch columnKinds[col] {
		case kindText:
			b = domain.AppendJSONString(b, r.textField(col), false)
		case kindUint:
			if n := r.uintField(col); n != 0 || col == colSeq {
				b = strconv.AppendUint(b, n, 10)
			} else {
				b = append(b, "null"...)
			}
		case kindTime:
			if t := r.timeField(col); !t.IsZero() {
				b = append(b, '"')
				b = appendTime(b, t)
				b = append(b, '"')
			} else {
				b = append(b, "null"...)
			}
		case kindHash:
			b = append(b, '"')
			b = hex.AppendEncode(b, prev[:])
			b = append(b, '"')
		}
	}
	return append(b, '}')
}

// jsonKeys are the members' names with their quotes and colon.
var jsonKeys = func() [numColumns][]byte {
	var keys [numColumns][]byte
	for i, c := range Columns {
		keys[i] = []byte(`"` + c + `":`)
	}
	return keys
}()

// fillCSV sets fields to the CSV form of r, with prev as its prev_hash.
func fillCSV(fields []string, r *Record, prev *[32]byte) {
	for col := range numColumns {
		switch columnKinds[col] {
		case kindText:
			fields[col] = guardCSV(r.textField(col))
		case kindUint:
			if n := r.uintField(col); n != 0 || col == colSeq {
				fields[col] = strconv.FormatUint(n, 10)
			} else {
				fields[col] = ""
			}
		case kindTime:
			if t := r.timeField(col); !t.IsZero() {
				fields[col] = formatTime(t)
			} else {
				fields[col] = ""
			}
		case kindHash:
			fields[col] = hex.EncodeToString(prev[:])
		}
	}
}

// guardCSV prefixes a field that a spreadsheet would take for a formula
// (starting with = + - @, a tab or a carriage return) with an apostrophe;
// a field already starting with an apostrophe gets one more, so that
// UnguardCSV restores every field exactly.
func guardCSV(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r', '\'':
		return "'" + s
	}
	return s
}

// UnguardCSV reverses the formula guard of a CSV export's field: it
// removes one leading apostrophe. Apply it to every field read from a CSV
// export (encoding/csv's reader does the rest) to get the values exactly.
func UnguardCSV(field string) string {
	if len(field) > 0 && field[0] == '\'' {
		return field[1:]
	}
	return field
}
