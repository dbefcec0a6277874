package domain

import (
	"testing"
	"time"
)

// BenchmarkTokenApply applies a stored use event to a token: the bulk of
// any replay.
func BenchmarkTokenApply(b *testing.B) {
	tok, _, err := IssueToken(DefaultPolicy(), nil, IssueRequest{Owner: "alice"}, testMeta, t0, nil)
	if err != nil {
		b.Fatal(err)
	}
	used, err := newEnvelope(AggregateToken, tok.ID().String(), TokenUsed{Count: 1, FirstAt: t0, LastAt: t0}, testMeta, t0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	seq := uint64(1)
	for b.Loop() {
		seq++
		used.Sequence = seq
		tok.Apply(used)
	}
}

// BenchmarkStateApply folds a stream of issued and used events into a State.
func BenchmarkStateApply(b *testing.B) {
	const tokens = 1000
	events := make([]Envelope, 0, 2*tokens)
	for range tokens {
		tok, _, err := IssueToken(DefaultPolicy(), nil, IssueRequest{Owner: "alice", Scopes: []string{"read"}}, testMeta, t0, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := tok.RecordUse(3, t0, t0.Add(time.Second), "", testMeta, t0); err != nil {
			b.Fatal(err)
		}
		events = append(events, tok.Changes()...)
	}
	for i := range events {
		events[i].Sequence = uint64(i + 1)
	}
	b.ReportAllocs()
	for b.Loop() {
		st := NewState()
		for _, e := range events {
			st.Apply(e)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
}

func BenchmarkTokenCheck(b *testing.B) {
	owner := NewOwner("alice")
	tok, _, err := IssueToken(DefaultPolicy(), owner, IssueRequest{Owner: "alice"}, testMeta, t0, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := t0.Add(time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if err := tok.Check(now, owner); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIssueToken(b *testing.B) {
	p := DefaultPolicy()
	req := IssueRequest{Owner: "alice", Name: "bench", Scopes: []string{"write", "read"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := IssueToken(p, nil, req, testMeta, t0, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRegistryUnmarshal(b *testing.B) {
	reg := NewDefaultRegistry()
	tok, _, err := IssueToken(DefaultPolicy(), nil, IssueRequest{Owner: "bench", Name: "bench", Scopes: []string{"read", "write"}},
		Meta{Actor: "bench"}, time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), nil)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := reg.Marshal(tok.Changes()[0])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := reg.Unmarshal(raw); err != nil {
			b.Fatal(err)
		}
	}
}
