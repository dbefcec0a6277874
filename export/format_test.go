package export_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/export"
)

// trickyText holds what a CSV or JSON writer gets wrong: separators,
// quotes, line breaks, non-ASCII, leading spaces, and what a spreadsheet
// would run as a formula.
var trickyText = []string{
	"a, b", `say "hi"`, "line1\nline2", "Grüße, 日本 🚀", `=HYPERLINK("http://evil.example","x")`,
	"+1", "-2", "@cmd", "'quoted", "''two", "\tleading tab", " leading space", `\.`, "ends with a newline\n",
	`""`, "plain", "\u2028separator", "back\\slash",
}

// trickyHistory is a history whose names, owners, actors, reasons,
// correlation ids and client addresses are trickyText.
func trickyHistory() []domain.Envelope {
	owners := []domain.OwnerID{`=owner,"q"@例え.jp`, "+alice", "bob smith", "'o"}
	entropy := newHistory(9, false).entropy
	at := genStart
	var out []domain.Envelope
	add := func(kind domain.AggregateKind, agg string, data domain.Event, actor, corr string) {
		at = at.Add(time.Millisecond)
		id, err := domain.NewEventID(at, entropy)
		if err != nil {
			panic(err)
		}
		out = append(out, domain.Envelope{ID: id, Type: data.EventType(), AggregateKind: kind, AggregateID: agg,
			Actor: actor, Time: at, Schema: 1, CorrelationID: corr, Data: data})
	}
	for i, text := range trickyText {
		id, err := domain.NewTokenID(at, entropy)
		if err != nil {
			panic(err)
		}
		owner := owners[i%len(owners)]
		exp := at.Add(time.Hour)
		hash := domain.SecretHash{1, byte(i)}
		add(domain.AggregateToken, id.String(), domain.TokenIssued{Owner: owner, Name: text, Scopes: []string{"read", "=x"},
			Kind: domain.KindAPI, SecretHash: hash, ExpiresAt: &exp}, text, text)
		add(domain.AggregateToken, id.String(), domain.TokenExpirySet{Reason: domain.ExpirySetByCaller}, "user:1", "")
		add(domain.AggregateToken, id.String(), domain.TokenUsed{Count: 3, FirstAt: at, LastAt: at, ClientAddr: text}, "validator", "")
		add(domain.AggregateToken, id.String(), domain.TokenRevoked{Reason: text}, "user:1", text)
	}
	add(domain.AggregateOwner, string(owners[0]), domain.OwnerTokensRevoked{Owner: owners[0], RevokedBefore: at, Reason: trickyText[4]}, "admin", "")
	reused, err := domain.NewTokenID(at, entropy)
	if err != nil {
		panic(err)
	}
	add(domain.AggregateOwner, string(owners[1%len(owners)]), domain.OwnerFamilyRevoked{Owner: owners[1%len(owners)], Family: reused,
		Reason: domain.ReasonRotatedSecretReused, Reuse: &domain.SecretReuse{Token: reused, ClientAddr: trickyText[3], Route: "GET /v1/auth"}},
		"system:reuse-detection", "")
	return out
}

// TestCSVRoundTrip is the acceptance test of CSV exports: names, owners,
// actors, reasons, correlation ids and client addresses with commas,
// quotes, line breaks, non-ASCII and leading formula characters, exported
// from a real stream, read back with encoding/csv (and the formula guard
// undone with UnguardCSV) reproduce every field exactly, as the JSONL
// export of the same events does with encoding/json; no field of the CSV
// starts with a formula character; and the export verifies.
func TestCSVRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newStore(t)
	events := trickyHistory()
	i := 0
	publish(t, store, len(events), func() domain.Envelope { i++; return events[i-1] })
	pub, priv := signingKey(t)
	dir := t.TempDir()
	filter := export.Filter{From: genStart, To: genStart.Add(time.Hour), IncludeUsage: true}

	exported := map[export.Format]string{}
	for _, format := range []export.Format{export.CSV, export.JSONL} {
		filter.Format = format
		exported[format] = filepath.Join(dir, "ledger."+string(format))
		if _, err := export.Export(ctx, store.Store, exported[format], export.Options{Filter: filter, Key: priv}); err != nil {
			t.Fatal(err)
		}
		if rep := verify(t, exported[format], export.VerifyOptions{PublicKey: pub}); !rep.OK() || rep.Records != uint64(len(events)) {
			t.Fatalf("%s export: %d records:\n%s", format, rep.Records, messages(rep))
		}
	}

	csvRows := readCSV(t, exported[export.CSV])
	jsonRows := readJSONL(t, exported[export.JSONL])
	if len(csvRows) != len(events) || len(jsonRows) != len(events) {
		t.Fatalf("%d CSV rows and %d JSON lines for %d events", len(csvRows), len(jsonRows), len(events))
	}
	// The records are in time order here (usage merged in), which is
	// the order of the events.
	for i, e := range events {
		row, obj := csvRows[i], jsonRows[i]
		want := expectedText(e)
		for col, v := range want {
			if got := unguardedField(row, col); got != v {
				t.Errorf("event %d (%s) CSV %s = %q, want %q", i, e.Type, col, got, v)
			}
			if got, _ := obj[col].(string); got != v {
				t.Errorf("event %d (%s) JSON %s = %q, want %q", i, e.Type, col, got, v)
			}
		}
		// Every other column agrees between the formats.
		for j, col := range export.Columns {
			if col == "prev_hash" {
				continue
			}
			if got, want := row[j], jsonField(obj[col]); export.UnguardCSV(got) != want {
				t.Errorf("event %d (%s) %s: CSV %q, JSON %q", i, e.Type, col, got, want)
			}
		}
		for j, f := range row {
			if f != "" && strings.ContainsRune("=+-@\t\r", rune(f[0])) {
				t.Errorf("event %d CSV %s = %q starts with a formula character", i, export.Columns[j], f)
			}
		}
	}
}

// columnIndex maps a column name to its position.
var columnIndex = func() map[string]int {
	m := map[string]int{}
	for i, c := range export.Columns {
		m[c] = i
	}
	return m
}()

// unguardedField returns column col of a CSV row with the guard undone.
func unguardedField(row []string, col string) string { return export.UnguardCSV(row[columnIndex[col]]) }

// expectedText returns the text columns of e's record as the test knows
// them from the event itself.
func expectedText(e domain.Envelope) map[string]string {
	m := map[string]string{
		"event_id": e.ID.String(), "type": string(e.Type), "actor": e.Actor, "correlation_id": e.CorrelationID,
	}
	switch d := e.Data.(type) {
	case domain.TokenIssued:
		m["name"], m["owner"], m["scopes"], m["kind"] = d.Name, string(d.Owner), strings.Join(d.Scopes, " "), string(d.Kind)
	case domain.TokenRevoked:
		m["reason"] = d.Reason
	case domain.TokenUsed:
		m["client_addr"] = d.ClientAddr
	case domain.OwnerTokensRevoked:
		m["reason"], m["owner"], m["token_id"] = d.Reason, string(d.Owner), ""
	case domain.OwnerFamilyRevoked:
		m["reason"], m["owner"], m["token_id"], m["client_addr"] = d.Reason, string(d.Owner), d.Reuse.Token.String(), d.Reuse.ClientAddr
	}
	if e.AggregateKind == domain.AggregateToken {
		m["token_id"] = e.AggregateID
	}
	return m
}

// jsonField renders a JSON value as the CSV writes it.
func jsonField(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return fmt.Sprint(v)
}

// readCSV reads a CSV export with encoding/csv and returns its rows after
// checking the header.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rows[0], export.Columns) {
		t.Fatalf("CSV header %q, want %q", rows[0], export.Columns)
	}
	return rows[1:]
}

// readJSONL decodes every line of a JSONL export with encoding/json,
// checking that the members are exactly the Columns, in order.
func readJSONL(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var keys []string
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("line %d: %q is not an object", i+1, line)
		}
		obj := map[string]any{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("line %d: %v", i+1, err)
			}
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("line %d: %v", i+1, err)
			}
			keys = append(keys, tok.(string))
			obj[tok.(string)] = v
		}
		if _, err := dec.Token(); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			t.Fatalf("line %d: data after the object", i+1)
		}
		if !slices.Equal(keys, export.Columns) {
			t.Fatalf("line %d: members %q, want %q", i+1, keys, export.Columns)
		}
		out = append(out, obj)
	}
	return out
}

// What Writer writes, Reader reads back to the same records, in both
// formats, with every field set somewhere (the history has every event
// type, usage included).
func TestReaderReadsWhatWriterWrites(t *testing.T) {
	t.Parallel()
	records := historyRecords(3000, 21, true)
	for _, format := range []export.Format{export.JSONL, export.CSV} {
		t.Run(string(format), func(t *testing.T) {
			t.Parallel()
			f := historyFilter(3000, format)
			f.IncludeUsage = true
			path := filepath.Join(t.TempDir(), "ledger")
			m := writeExport(t, path, f, records, nil)
			in, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			rd, err := export.NewReader(in, format)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; ; i++ {
				l, err := rd.Next()
				if errors.Is(err, io.EOF) {
					if i != len(records) {
						t.Fatalf("read %d records, wrote %d", i, len(records))
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if l.Err != nil || l.Truncated {
					t.Fatalf("line %d: %v (truncated %t)", l.Number, l.Err, l.Truncated)
				}
				if got, want := l.Record, records[i]; !recordsEqual(got, want) {
					t.Fatalf("record %d:\n got %+v\nwant %+v", i+1, got, want)
				}
			}
			sum := rd.SHA256()
			if fmt.Sprintf("%x", sum) != m.DataSHA256 {
				t.Errorf("the reader's SHA-256 %x is not the manifest's %s", sum, m.DataSHA256)
			}
		})
	}
}

func recordsEqual(a, b export.Record) bool {
	for _, p := range []*export.Record{&a, &b} {
		for _, tp := range []*time.Time{&p.Time, &p.ExpiresAt, &p.AbsoluteExpiresAt, &p.RevokedBefore, &p.Until, &p.FirstAt, &p.LastAt} {
			if !tp.IsZero() {
				*tp = tp.UTC()
			}
		}
	}
	return a == b
}

// The writer accepts only what verification accepts: records in each
// stream's order, within the filter.
func TestWriterRefusesWhatWouldNotVerify(t *testing.T) {
	t.Parallel()
	records := historyRecords(10, 4, false)
	f := historyFilter(10, export.JSONL)
	outOfRange := records[3]
	outOfRange.Sequence = 100
	outOfRange.Time = f.To
	usageType := records[3]
	usageType.Sequence = 100
	usageType.Type = domain.TypeTokenUsed
	for _, tc := range []struct {
		name string
		r    export.Record
		want string
	}{
		{"sequence repeated", records[2], "does not follow 3"},
		{"sequence going back", records[0], "does not follow 3"},
		{"time at the range's end", outOfRange, "not selected"},
		{"usage in the lifecycle stream", usageType, "does not belong in the lifecycle stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, err := export.NewWriter(io.Discard, f)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if err := w.Write(&records[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Write(&tc.r); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func TestFilterValidate(t *testing.T) {
	t.Parallel()
	from := genStart
	for _, tc := range []struct {
		name string
		f    export.Filter
		want string // "" for valid
	}{
		{"valid", export.Filter{From: from, To: from.Add(time.Hour), Format: export.CSV}, ""},
		{"valid with usage only", export.Filter{From: from, To: from.Add(time.Hour), Types: []domain.EventType{domain.TypeTokenUsed}, IncludeUsage: true, Format: export.JSONL}, ""},
		{"no times", export.Filter{Format: export.JSONL}, "from and to must both be set"},
		{"to before from", export.Filter{From: from, To: from.Add(-time.Second), Format: export.JSONL}, "is not before to"},
		{"empty range", export.Filter{From: from, To: from, Format: export.JSONL}, "is not before to"},
		{"nanoseconds", export.Filter{From: from.Add(1), To: from.Add(time.Hour), Format: export.JSONL}, "finer than a microsecond"},
		{"unknown type", export.Filter{From: from, To: from.Add(time.Hour), Types: []domain.EventType{"token.made.v1"}, Format: export.JSONL}, `unknown event type "token.made.v1"`},
		{"usage type without usage", export.Filter{From: from, To: from.Add(time.Hour), Types: []domain.EventType{domain.TypeTokenUsed}, Format: export.JSONL}, "needs include usage"},
		{"usage with types leaving it out", export.Filter{From: from, To: from.Add(time.Hour), Types: []domain.EventType{domain.TypeTokenRevoked}, IncludeUsage: true, Format: export.JSONL}, "leave usage.batch.v1 and token.used.v1 out"},
		{"bad owner", export.Filter{From: from, To: from.Add(time.Hour), Owner: "a\nb", Format: export.JSONL}, "owner"},
		{"unknown format", export.Filter{From: from, To: from.Add(time.Hour), Format: "xml"}, `format "xml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.f.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, domain.ErrInvalidArgument)):
				t.Fatalf("Validate = %v, want an invalid-argument error saying %q", err, tc.want)
			}
		})
	}
}

// The chain's start commits to the whole filter, whatever order its types
// were given in.
func TestH0CommitsToTheFilter(t *testing.T) {
	t.Parallel()
	base := export.Filter{From: genStart, To: genStart.Add(time.Hour), Types: []domain.EventType{domain.TypeTokenRevoked, domain.TypeTokenIssued}, Format: export.JSONL}
	same := base
	same.Types = []domain.EventType{domain.TypeTokenIssued, domain.TypeTokenRevoked, domain.TypeTokenIssued}
	if base.H0() != same.H0() {
		t.Error("the order or repetition of types changes H0")
	}
	for name, edit := range map[string]func(*export.Filter){
		"from":   func(f *export.Filter) { f.From = f.From.Add(time.Microsecond) },
		"to":     func(f *export.Filter) { f.To = f.To.Add(time.Microsecond) },
		"owner":  func(f *export.Filter) { f.Owner = "alice" },
		"types":  func(f *export.Filter) { f.Types = f.Types[:1] },
		"usage":  func(f *export.Filter) { f.IncludeUsage = true },
		"format": func(f *export.Filter) { f.Format = export.CSV },
	} {
		f := base
		f.Types = slices.Clone(base.Types)
		edit(&f)
		if f.H0() == base.H0() {
			t.Errorf("changing %s does not change H0", name)
		}
	}
}
