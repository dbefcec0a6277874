package projections

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"iter"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenledger/tokenledger/domain"
)

// copyTokens writes token rows into table with COPY in PostgreSQL's binary
// format, encoded here rather than through pgx's generic encoder: the
// encoding is then a small fraction of the copy's cost instead of most of
// it. freeze adds COPY's FREEZE option (the table must have been created
// in this transaction). It returns the number of rows copied.
func copyTokens(ctx context.Context, tx pgx.Tx, table pgx.Identifier, rows iter.Seq[*TokenRow], freeze bool) (int64, error) {
	next, stop := iter.Pull(rows)
	r := &tokenCopyReader{next: next}
	defer r.close(stop)
	opts := "FORMAT binary"
	if freeze {
		opts += ", FREEZE"
	}
	sql := fmt.Sprintf("COPY %s (%s) FROM STDIN WITH (%s)", table.Sanitize(), strings.Join(tokenColumns, ", "), opts)
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, r, sql)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// tokenCopyReader is the COPY data stream of a sequence of token rows: the
// binary header, one tuple per row, the trailer.
type tokenCopyReader struct {
	mu     sync.Mutex // Read runs in the copy's goroutine
	next   func() (*TokenRow, bool)
	buf    []byte
	off    int
	begun  bool
	done   bool
	closed bool
}

// copyChunk is how much encoded data Read prepares at a time.
const copyChunk = 64 << 10

var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

func (r *tokenCopyReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.off == len(r.buf) {
		if r.done || r.closed {
			return 0, io.EOF
		}
		r.fill()
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

func (r *tokenCopyReader) fill() {
	r.buf, r.off = r.buf[:0], 0
	if !r.begun {
		r.buf = append(r.buf, copyHeader...)
		r.begun = true
	}
	for len(r.buf) < copyChunk {
		row, ok := r.next()
		if !ok {
			r.buf = binary.BigEndian.AppendUint16(r.buf, 0xFFFF) // trailer: -1
			r.done = true
			return
		}
		r.buf = appendTokenTuple(r.buf, row)
	}
}

// close stops the row sequence once the copy no longer reads.
func (r *tokenCopyReader) close(stop func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	stop()
}

// pgEpoch is PostgreSQL's time zero, in Unix microseconds.
const pgEpochMicros = 946_684_800 * 1_000_000

// appendTokenTuple encodes r as one binary COPY tuple, in tokenColumns
// order, with the values tokenValues would give.
func appendTokenTuple(b []byte, r *TokenRow) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(tokenColumns)))
	b = appendBytes(b, r.ID[:])
	b = appendText(b, string(r.Owner))
	b = appendText(b, r.Name)
	b = appendTextArray(b, r.Scopes)
	b = appendText(b, string(r.Kind))
	b = appendBytes(b, r.SecretHash[:])
	b = appendTime(b, r.CreatedAt)
	b = appendNullableTime(b, r.ExpiresAt)
	if secs := int64(r.IdleTimeout / time.Second); secs != 0 {
		b = appendInt8(b, secs)
	} else {
		b = appendNull(b)
	}
	b = appendNullableTime(b, r.AbsoluteExpiresAt)
	b = appendNullableID(b, r.RotatedFrom)
	b = appendNullableID(b, r.RotatedTo)
	b = appendNullableTime(b, r.RevokedAt)
	b = appendNullableText(b, r.RevokedReason)
	b = appendNullableText(b, r.RevokedBy)
	b = appendNullableTime(b, r.LastUsedAt)
	b = appendInt8(b, int64(r.UseCount))
	b = appendInt8(b, int64(r.IssuedSeq))
	b = appendInt8(b, int64(r.LastSeq))
	b = appendNullableID(b, r.Family)
	if len(r.AllowedCIDRs) == 0 {
		b = appendNull(b)
	} else {
		b = appendTextArray(b, r.AllowedCIDRs)
	}
	return b
}

func appendNull(b []byte) []byte { return binary.BigEndian.AppendUint32(b, 0xFFFFFFFF) }

func appendBytes(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

func appendText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendNullableText(b []byte, s string) []byte {
	if s == "" {
		return appendNull(b)
	}
	return appendText(b, s)
}

func appendInt8(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

// appendTime encodes a timestamptz: microseconds since 2000-01-01 UTC,
// sub-microsecond digits truncated as pgx does.
func appendTime(b []byte, t time.Time) []byte {
	return appendInt8(b, t.Unix()*1_000_000+int64(t.Nanosecond())/1000-pgEpochMicros)
}

func appendNullableTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return appendNull(b)
	}
	return appendTime(b, t)
}

func appendNullableID(b []byte, id domain.TokenID) []byte {
	if id.IsZero() {
		return appendNull(b)
	}
	return appendBytes(b, id[:])
}

// textOID is the type of the elements of a text[].
const textOID = 25

// appendTextArray encodes a one-dimensional text[] (zero dimensions when
// empty, as PostgreSQL writes '{}').
func appendTextArray(b []byte, v []string) []byte {
	size := 12
	if len(v) > 0 {
		size += 8
	}
	for _, s := range v {
		size += 4 + len(s)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(size))
	if len(v) == 0 {
		b = binary.BigEndian.AppendUint32(b, 0) // dimensions
		b = binary.BigEndian.AppendUint32(b, 0) // no nulls
		return binary.BigEndian.AppendUint32(b, textOID)
	}
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, textOID)
	b = binary.BigEndian.AppendUint32(b, uint32(len(v))) // length of the dimension
	b = binary.BigEndian.AppendUint32(b, 1)              // its lower bound
	for _, s := range v {
		b = appendText(b, s)
	}
	return b
}
