package export

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Reader reads the data file of an export record by record, giving each
// record's exact bytes (for the hash chain) with its parsed fields, and
// hashes everything it reads. It holds one record at a time. A Reader is
// not safe for concurrent use.
type Reader struct {
	format Format
	hash   hash.Hash
	line   Line
	lineNo int64

	// JSONL
	br  *bufio.Reader
	buf []byte

	// CSV
	tap *tapReader
	cr  *csv.Reader
	off int64
}

// Line is one record of a data file.
type Line struct {
	// Number is the line of the file where the record starts (1 for the
	// first line of the file).
	Number int64
	// Index is the record's position among the records, from 1.
	Index uint64
	// Raw is the record's bytes exactly as in the file, without the
	// newline that ends it: what the hash chain hashes. It is valid until
	// the next call of Next.
	Raw []byte
	// Record is the parsed record and Prev its prev_hash; both are
	// meaningful only when Err is nil.
	Record Record
	Prev   [32]byte
	// Err says why the record could not be parsed.
	Err error
	// Truncated is set when the file ends inside this record (no newline
	// after it).
	Truncated bool
}

// NewReader reads a data file of format f from r. For CSV it reads the
// header row and fails unless it names the Columns in order.
func NewReader(r io.Reader, f Format) (*Reader, error) {
	rd := &Reader{format: f, hash: sha256.New()}
	tee := io.TeeReader(r, rd.hash)
	switch f {
	case JSONL:
		rd.br = bufio.NewReaderSize(tee, 256<<10)
	case CSV:
		rd.tap = &tapReader{r: tee}
		rd.cr = csv.NewReader(rd.tap)
		rd.cr.ReuseRecord = true
		rd.cr.FieldsPerRecord = -1
		header, err := rd.cr.Read()
		if err != nil {
			return nil, fmt.Errorf("line 1: read the csv header: %w", err)
		}
		if !slices.Equal(header, Columns) {
			return nil, errors.New("line 1: not the csv header of an export (want the columns " + csvColumns + ")")
		}
		rd.off = rd.cr.InputOffset()
	default:
		return nil, fmt.Errorf("read export: unknown format %q", f)
	}
	return rd, nil
}

var csvColumns = func() string {
	var b bytes.Buffer
	for i, c := range Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(c)
	}
	return b.String()
}()

// Next returns the next record, or io.EOF after the last. Other errors
// are read errors of the file; a record that cannot be parsed is returned
// with Line.Err set, and reading may go on. The Line is reused by the next
// call.
func (r *Reader) Next() (*Line, error) {
	r.line = Line{Index: r.line.Index + 1}
	if r.format == CSV {
		return r.nextCSV()
	}
	return r.nextJSONL()
}

// SHA256 returns the SHA-256 of every byte read so far: the data file's
// once Next has returned io.EOF.
func (r *Reader) SHA256() [32]byte {
	var out [32]byte
	r.hash.Sum(out[:0])
	return out
}

func (r *Reader) nextJSONL() (*Line, error) {
	b, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		r.buf = append(r.buf[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			b, err = r.br.ReadSlice('\n')
			r.buf = append(r.buf, b...)
		}
		b = r.buf
	}
	switch {
	case err == io.EOF && len(b) == 0:
		return nil, io.EOF
	case err != nil && err != io.EOF:
		return nil, fmt.Errorf("read export: %w", err)
	}
	r.lineNo++
	l := &r.line
	l.Number = r.lineNo
	if b[len(b)-1] == '\n' {
		l.Raw = b[:len(b)-1]
	} else {
		l.Raw, l.Truncated = b, true
	}
	l.Err = parseJSONL(l.Raw, &l.Record, &l.Prev)
	return l, nil
}

func (r *Reader) nextCSV() (*Line, error) {
	// The previous record's bytes are no longer needed.
	r.tap.discard(r.off)
	fields, err := r.cr.Read()
	if err == io.EOF {
		return nil, io.EOF
	}
	l := &r.line
	var perr *csv.ParseError
	switch {
	case errors.As(err, &perr):
		l.Number, l.Err = int64(perr.StartLine), perr.Err
	case err != nil:
		return nil, fmt.Errorf("read export: %w", err)
	default:
		line, _ := r.cr.FieldPos(0)
		l.Number = int64(line)
	}
	end := r.cr.InputOffset()
	raw := r.tap.buf[r.off-r.tap.base : end-r.tap.base]
	r.off = end
	switch {
	case len(raw) > 0 && raw[len(raw)-1] == '\n':
		raw = raw[:len(raw)-1]
	default:
		l.Truncated = true
	}
	l.Raw = raw
	if l.Err == nil {
		l.Err = parseCSV(fields, &l.Record, &l.Prev)
	}
	return l, nil
}

// tapReader keeps the bytes read through it from offset base on, so that
// the exact bytes of a CSV record can be sliced out once encoding/csv,
// which reads ahead, has parsed it.
type tapReader struct {
	r    io.Reader
	buf  []byte
	base int64
	// drop is where the next Read may discard up to.
	drop int64
}

func (t *tapReader) Read(p []byte) (int, error) {
	if t.drop > t.base {
		n := copy(t.buf, t.buf[t.drop-t.base:])
		t.buf = t.buf[:n]
		t.base = t.drop
	}
	n, err := t.r.Read(p)
	t.buf = append(t.buf, p[:n]...)
	return n, err
}

// discard allows the bytes before offset to be dropped.
func (t *tapReader) discard(offset int64) { t.drop = offset }

// parseJSONL parses one JSONL record: a JSON object whose members are
// exactly the Columns, in order, with the values the writer writes.
func parseJSONL(b []byte, r *Record, prev *[32]byte) error {
	*r = Record{}
	if len(b) == 0 || b[0] != '{' {
		return errors.New("not a JSON object")
	}
	// One string for the whole line: the text fields without escapes
	// are substrings of it, one allocation instead of one per field.
	line := string(b)
	p := 1
	for col := range numColumns {
		if col > 0 {
			if p >= len(b) || b[p] != ',' {
				return fmt.Errorf("no member %q after %q", Columns[col], Columns[col-1])
			}
			p++
		}
		if !bytes.HasPrefix(b[p:], jsonKeys[col]) {
			return fmt.Errorf("member %d is not %q", col+1, Columns[col])
		}
		p += len(jsonKeys[col])
		n, err := parseJSONValue(b[p:], line[p:], col, r, prev)
		if err != nil {
			return fmt.Errorf("%s: %w", Columns[col], err)
		}
		p += n
	}
	if p != len(b)-1 || b[p] != '}' {
		return errors.New("data after the last member")
	}
	return nil
}

var jsonNull = []byte("null")

// parseJSONValue parses the value of column col at the start of b into r
// (or prev) and returns its length; str is b as a string.
func parseJSONValue(b []byte, str string, col int, r *Record, prev *[32]byte) (int, error) {
	kind := columnKinds[col]
	if kind != kindText && kind != kindHash && col != colSeq && col != colTime && bytes.HasPrefix(b, jsonNull) {
		return len(jsonNull), nil
	}
	switch kind {
	case kindUint:
		n := 0
		for n < len(b) && b[n] >= '0' && b[n] <= '9' {
			n++
		}
		if n == 0 || (b[0] == '0' && n > 1) {
			return 0, errors.New("not a number")
		}
		v, err := strconv.ParseUint(string(b[:n]), 10, 64)
		if err != nil || (v == 0 && col != colSeq) {
			return 0, errors.New("not a number the export writes")
		}
		return n, r.setUint(col, v)
	}
	s, n, escaped, err := parseJSONString(b)
	if err != nil {
		return 0, err
	}
	switch kind {
	case kindText:
		if escaped {
			r.setText(col, string(s))
		} else {
			r.setText(col, str[1:n-1])
		}
	case kindTime:
		t, err := parseTime(s)
		if err != nil {
			return 0, err
		}
		r.setTime(col, t)
	case kindHash:
		if len(s) != 64 {
			return 0, errors.New("not 64 hex digits")
		}
		if _, err := hex.Decode(prev[:], s); err != nil {
			return 0, errors.New("not 64 hex digits")
		}
	}
	return n, nil
}

// parseJSONString parses the JSON string at the start of b and returns its
// value, its length in b and whether it has escapes. Without escapes the
// value aliases b.
func parseJSONString(b []byte) (value []byte, n int, escaped bool, err error) {
	if len(b) == 0 || b[0] != '"' {
		return nil, 0, false, errors.New("not a string")
	}
	end := bytes.IndexByte(b[1:], '"')
	if end < 0 {
		return nil, 0, false, errors.New("unterminated string")
	}
	s := b[1 : 1+end]
	if bytes.IndexByte(s, '\\') < 0 {
		for _, c := range s {
			if c < 0x20 {
				return nil, 0, false, errors.New("control character in a string")
			}
		}
		if !utf8.Valid(s) {
			return nil, 0, false, errors.New("invalid UTF-8 in a string")
		}
		return s, end + 2, false, nil
	}
	// An escaped string: find its real end (a quote not escaped) and let
	// encoding/json unescape it.
	i := 1
	for i < len(b) && b[i] != '"' {
		if b[i] == '\\' {
			i++
		}
		i++
	}
	if i >= len(b) {
		return nil, 0, false, errors.New("unterminated string")
	}
	var v string
	if err := json.Unmarshal(b[:i+1], &v); err != nil {
		return nil, 0, false, err
	}
	return []byte(v), i + 1, true, nil
}

// parseCSV parses the fields of one CSV record.
func parseCSV(fields []string, r *Record, prev *[32]byte) error {
	*r = Record{}
	if len(fields) != int(numColumns) {
		return fmt.Errorf("%d fields, want %d", len(fields), numColumns)
	}
	for col, f := range fields {
		switch columnKinds[col] {
		case kindText:
			r.setText(col, UnguardCSV(f))
		case kindUint:
			if f == "" && col != colSeq {
				continue
			}
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil || (v == 0 && col != colSeq) || (len(f) > 1 && f[0] == '0') {
				return fmt.Errorf("%s: not a number the export writes", Columns[col])
			}
			if err := r.setUint(col, v); err != nil {
				return fmt.Errorf("%s: %w", Columns[col], err)
			}
		case kindTime:
			if f == "" && col != colTime {
				continue
			}
			t, err := parseTime([]byte(f))
			if err != nil {
				return fmt.Errorf("%s: %w", Columns[col], err)
			}
			r.setTime(col, t)
		case kindHash:
			if len(f) != 64 {
				return fmt.Errorf("%s: not 64 hex digits", Columns[col])
			}
			if _, err := hex.Decode(prev[:], []byte(f)); err != nil {
				return fmt.Errorf("%s: not 64 hex digits", Columns[col])
			}
		}
	}
	return nil
}
