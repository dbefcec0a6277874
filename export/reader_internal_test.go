package export

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// The JSONL parser reads untrusted files: whatever the line, it does not
// panic; what it accepts is valid JSON, and writing what it read gives a
// line it reads back to the same record.
func FuzzParseJSONL(f *testing.F) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)
	prev := [32]byte{1, 2, 3}
	for _, r := range []Record{
		{Sequence: 1, Stream: Lifecycle, EventID: "01J00000000000000000000000", Time: at, Type: domain.TypeTokenIssued,
			TokenID: "01J00000000000000000000001", Owner: "o,\"w\"ner", Name: "a\nb é \u2028", Scopes: "read write", Kind: "api", ExpiresAt: at},
		{Sequence: 9, Stream: Usage, EventID: "x", Time: at, Type: domain.TypeTokenUsed, Count: 3, FirstAt: at, LastAt: at, ClientAddr: "=1"},
		{Sequence: 7, Stream: Lifecycle, Time: at, Type: domain.TypeOwnerTokensRevoked, Owner: "o", RevokedBefore: at, Until: at, Reason: "\\\"", IdleTimeout: 5},
	} {
		f.Add(appendJSONL(nil, &r, &prev))
	}
	f.Add([]byte(`{"seq":1}`))
	f.Add([]byte(`{"seq":01,"stream":"\u0000"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Record
		var p [32]byte
		if err := parseJSONL(line, &r, &p); err != nil {
			return
		}
		if !json.Valid(line) {
			t.Fatalf("accepted a line that is not JSON: %q", line)
		}
		again := appendJSONL(nil, &r, &p)
		var r2 Record
		var p2 [32]byte
		if err := parseJSONL(again, &r2, &p2); err != nil {
			t.Fatalf("does not read back what it wrote from %q: %v\n%q", line, err, again)
		}
		if recordDiff(&r, &r2) != "" || r.Stream != r2.Stream || r.Type != r2.Type || p != p2 {
			t.Fatalf("round trip of %q changed the record:\n%+v\n%+v", line, r, r2)
		}
	})
}
