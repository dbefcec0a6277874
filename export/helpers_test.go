package export_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/export"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// genStart is the time of the first generated event.
var genStart = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// history generates a realistic ledger: tokens issued to many owners,
// their expiry set, some revoked, now and then all tokens of an owner
// revoked, and (with usage) token.used events and usage batches. Each token's events are in
// order; event times step forward a millisecond per event with a jitter of
// a few milliseconds, so that times are not strictly in stream order, as
// with several nodes recording.
type history struct {
	rng      *rand.Rand
	entropy  *rand.ChaCha8
	usage    bool
	active   []activeToken
	owners   int
	n        int
	names    []string
	issued   int
	lastTime time.Time
}

type activeToken struct {
	id    domain.TokenID
	owner domain.OwnerID
}

func newHistory(seed uint64, usage bool) *history {
	return &history{
		rng:     rand.New(rand.NewPCG(seed, 7)),
		entropy: rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 42}),
		usage:   usage,
		owners:  2000,
	}
}

func (h *history) owner() domain.OwnerID {
	return domain.OwnerID(fmt.Sprintf("owner-%d@example.com", h.rng.IntN(h.owners)))
}

// next returns the next event of the history.
func (h *history) next() domain.Envelope {
	h.n++
	at := genStart.Add(time.Duration(h.n)*time.Millisecond + time.Duration(h.rng.IntN(8000))*time.Microsecond)
	h.lastTime = at
	meta := func(data domain.Event, kind domain.AggregateKind, agg string) domain.Envelope {
		id, err := domain.NewEventID(at, h.entropy)
		if err != nil {
			panic(err)
		}
		return domain.Envelope{
			ID: id, Type: data.EventType(), AggregateKind: kind, AggregateID: agg,
			Actor: fmt.Sprintf("user:%d", h.rng.IntN(50)), Time: domain.NormalizeTime(at), Schema: 1,
			CorrelationID: fmt.Sprintf("req-%d", h.n), Data: data,
		}
	}
	roll := h.rng.IntN(100)
	switch {
	case len(h.active) < 100 || roll < 30:
		id, err := domain.NewTokenID(at, h.entropy)
		if err != nil {
			panic(err)
		}
		owner := h.owner()
		exp := domain.NormalizeTime(at.Add(time.Duration(1+h.rng.IntN(90)) * 24 * time.Hour))
		name := fmt.Sprintf("ci token %d", h.issued)
		if len(h.names) > 0 {
			name = h.names[h.issued%len(h.names)]
		}
		h.issued++
		var hash domain.SecretHash
		hash[0], hash[1] = 1, byte(h.issued)
		h.active = append(h.active, activeToken{id, owner})
		if len(h.active) > 5000 {
			h.active = h.active[1:]
		}
		return meta(domain.TokenIssued{
			Owner: owner, Name: name, Scopes: []string{"read", "write", fmt.Sprintf("repo:%d", h.rng.IntN(100))},
			Kind: domain.KindAPI, SecretHash: hash, ExpiresAt: &exp,
		}, domain.AggregateToken, id.String())
	case roll < 70:
		t := h.active[h.rng.IntN(len(h.active))]
		exp := domain.NormalizeTime(at.Add(time.Duration(1+h.rng.IntN(90)) * 24 * time.Hour))
		return meta(domain.TokenExpirySet{ExpiresAt: &exp, Reason: domain.ExpirySetByCaller}, domain.AggregateToken, t.id.String())
	case roll < 90 || !h.usage:
		if roll == 99 {
			o := h.owner()
			return meta(domain.OwnerTokensRevoked{Owner: o, RevokedBefore: domain.NormalizeTime(at), Reason: "offboarded"}, domain.AggregateOwner, string(o))
		}
		i := h.rng.IntN(len(h.active))
		t := h.active[i]
		h.active = append(h.active[:i], h.active[i+1:]...)
		return meta(domain.TokenRevoked{Reason: "rotated by ci"}, domain.AggregateToken, t.id.String())
	case roll%2 == 0:
		// A validator's usage batch of a few tokens.
		first := domain.NormalizeTime(at.Add(-time.Second))
		var uses []domain.TokenUse
		for i := range 1 + h.rng.IntN(3) {
			t := h.active[(h.rng.IntN(len(h.active))+i)%len(h.active)]
			if slices.ContainsFunc(uses, func(u domain.TokenUse) bool { return u.Token == t.id }) {
				continue
			}
			uses = append(uses, domain.TokenUse{Token: t.id, Count: uint64(1 + h.rng.IntN(1000)), FirstAt: first, LastAt: domain.NormalizeTime(at), ClientAddr: "10.0.0.2"})
		}
		e := meta(domain.UsageBatch{Uses: uses}, domain.AggregateValidator, "system:validator")
		e.Actor = e.AggregateID
		return e
	default:
		t := h.active[h.rng.IntN(len(h.active))]
		first := domain.NormalizeTime(at.Add(-time.Second))
		return meta(domain.TokenUsed{Count: uint64(1 + h.rng.IntN(1000)), FirstAt: first, LastAt: domain.NormalizeTime(at), ClientAddr: "10.0.0.1"},
			domain.AggregateToken, t.id.String())
	}
}

// testStore is an event store on a nats-server of its own, with a
// JetStream handle for fast publishing.
type testStore struct {
	*eventstore.Store
	url    string
	js     jetstream.JetStream
	pubErr atomic.Pointer[error]
}

// newStore opens the event store on a fresh nats-server running in a
// process of its own (so that neither the race detector nor the test's
// garbage collector slows it down).
func newStore(tb testing.TB) *testStore {
	tb.Helper()
	s := &testStore{url: stacktest.NATSProcess(tb)}
	nc, err := nats.Connect(s.url)
	if err != nil {
		tb.Fatalf("connect to nats-server: %v", err)
	}
	tb.Cleanup(nc.Close)
	s.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, msg *nats.Msg, err error) {
			err = fmt.Errorf("event %s: %w", msg.Header.Get(jetstream.MsgIDHeader), err)
			s.pubErr.CompareAndSwap(nil, &err)
		}))
	if err != nil {
		tb.Fatal(err)
	}
	s.Store, err = eventstore.Open(context.Background(), nc, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		tb.Fatalf("open event store: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// publish stores n events of next as the event store would, but
// pipelined: each envelope is encoded with the registry and published
// asynchronously on its subject with its event id as Nats-Msg-Id, up to
// 4096 awaiting their acknowledgements, in the order next returns them.
// Appends with expectations go at about 20,000 events/s; this goes several
// times faster, which a history of a million events needs. Encoding is
// spread over every core.
func publish(tb testing.TB, s *testStore, n int, next func() domain.Envelope) {
	tb.Helper()
	type batch struct {
		events []domain.Envelope
		msgs   []*nats.Msg
		err    error
		done   chan struct{}
	}
	const batchSize = 1024
	workers := runtime.GOMAXPROCS(0)
	order, work := make(chan *batch, 2*workers), make(chan *batch, 2*workers)
	go func() {
		defer close(order)
		defer close(work)
		for left := n; left > 0; left -= batchSize {
			b := &batch{events: make([]domain.Envelope, min(left, batchSize)), done: make(chan struct{})}
			for i := range b.events {
				b.events[i] = next()
			}
			order <- b
			work <- b
		}
	}()
	reg, subj := s.Registry(), s.Subjects()
	for range workers {
		go func() {
			for b := range work {
				b.msgs = make([]*nats.Msg, 0, len(b.events))
				for _, e := range b.events {
					marshal := reg.Marshal
					if e.Type == domain.TypeUsageBatch {
						marshal = reg.MarshalUsageBatch
					}
					data, err := marshal(e)
					if err != nil {
						b.err = err
						break
					}
					subject, err := subj.Subject(e)
					if err != nil {
						b.err = err
						break
					}
					msg := nats.NewMsg(subject)
					msg.Data = data
					msg.Header.Set(jetstream.MsgIDHeader, e.ID.String())
					b.msgs = append(b.msgs, msg)
				}
				close(b.done)
			}
		}()
	}
	var failed error
	for b := range order {
		<-b.done
		if failed == nil && b.err != nil {
			failed = b.err
		}
		for _, msg := range b.msgs {
			if failed != nil {
				break
			}
			if _, err := s.js.PublishMsgAsync(msg, jetstream.WithStallWait(time.Minute)); err != nil {
				failed = fmt.Errorf("publish event %s: %w", msg.Header.Get(jetstream.MsgIDHeader), err)
			}
		}
	}
	if failed != nil {
		tb.Fatal(failed)
	}
	select {
	case <-s.js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		tb.Fatalf("%d publishes still unacknowledged after 2 minutes", s.js.PublishAsyncPending())
	}
	if err := s.pubErr.Load(); err != nil {
		tb.Fatalf("publish: %v", *err)
	}
}

// signingKey returns a fresh key pair.
func signingKey(tb testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	tb.Helper()
	pub, priv, err := export.GenerateKeyPair(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return pub, priv
}

// messages returns the problems' messages, one per line, for failure
// output.
func messages(rep export.Report) string {
	var b strings.Builder
	for _, p := range rep.Problems {
		fmt.Fprintf(&b, "  [%s] %s\n", p.Kind, p.Message)
	}
	if n := rep.Omitted(); n > 0 {
		fmt.Fprintf(&b, "  ... and %d more\n", n)
	}
	return b.String()
}

// requireProblem fails unless rep lists a problem of kind whose message
// contains every one of parts.
func requireProblem(tb testing.TB, rep export.Report, kind export.ProblemKind, parts ...string) {
	tb.Helper()
	for _, p := range rep.Problems {
		if p.Kind != kind {
			continue
		}
		ok := true
		for _, s := range parts {
			ok = ok && strings.Contains(p.Message, s)
		}
		if ok {
			return
		}
	}
	tb.Errorf("no %s problem mentioning %q; problems:\n%s", kind, parts, messages(rep))
}

// readLines returns the lines of a file, without their newlines.
func readLines(tb testing.TB, path string) [][]byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))
}

// rewrite copies src to dst line by line through edit, which returns the
// lines to write for line i (1-based) of src.
func rewrite(tb testing.TB, src, dst string, edit func(i int, line []byte) [][]byte) {
	tb.Helper()
	in, err := os.Open(src)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(out, 1<<20)
	r := bufio.NewReaderSize(in, 1<<20)
	for i := 1; ; i++ {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			for _, l := range edit(i, line) {
				if _, err := w.Write(l); err != nil {
					tb.Fatal(err)
				}
			}
		}
		if err != nil {
			break
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}

// copyManifest copies the manifest of src to that of dst, through edit
// when given.
func copyManifest(tb testing.TB, src, dst string, edit func(*export.Manifest)) {
	tb.Helper()
	m, err := export.ReadManifest(export.ManifestPath(src))
	if err != nil {
		tb.Fatal(err)
	}
	if edit != nil {
		edit(&m)
	}
	if err := export.WriteManifest(export.ManifestPath(dst), m); err != nil {
		tb.Fatal(err)
	}
}

// historyRecords returns the records of the first n events of
// newHistory(seed, usage), each stream's sequences counting from 1, with
// their owners.
func historyRecords(n int, seed uint64, usage bool) []export.Record {
	h := newHistory(seed, usage)
	owners := map[string]domain.OwnerID{}
	seqs := map[export.Stream]uint64{}
	out := make([]export.Record, 0, n)
	for range n {
		e := h.next()
		stream := export.Lifecycle
		if e.Type == domain.TypeTokenUsed || e.Type == domain.TypeUsageBatch {
			stream = export.Usage
		}
		seqs[stream]++
		e.Sequence = seqs[stream]
		if e.Type == domain.TypeUsageBatch {
			for id, u := range domain.Uses(e) {
				out = append(out, export.UsageRecordOf(e, id, u, owners[id.String()]))
			}
			continue
		}
		owner := domain.OwnerID(e.AggregateID)
		switch d := e.Data.(type) {
		case domain.TokenIssued:
			owners[e.AggregateID] = d.Owner
			owner = d.Owner
		case domain.OwnerTokensRevoked:
		default:
			owner = owners[e.AggregateID]
		}
		out = append(out, export.RecordOf(e, stream, owner))
	}
	return out
}

// historyFilter is a filter whose range holds the first n events of any
// history.
func historyFilter(n int, format export.Format) export.Filter {
	return export.Filter{From: genStart, To: genStart.Add(time.Duration(n+1000) * time.Millisecond), Format: format}
}

// writeExport writes records as an export with filter f to path, with its
// manifest signed with priv (unsigned when priv is nil), as if read from
// streams ending at the records' last sequences.
func writeExport(tb testing.TB, path string, f export.Filter, records []export.Record, priv ed25519.PrivateKey) export.Manifest {
	tb.Helper()
	out, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close()
	w, err := export.NewWriter(out, f)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range records {
		if err := w.Write(&records[i]); err != nil {
			tb.Fatal(err)
		}
	}
	sum, err := w.Close()
	if err != nil {
		tb.Fatal(err)
	}
	lifecycle := export.StreamRange{Stream: eventstore.DefaultStream, ScannedThrough: sum.Lifecycle.Last}
	var usage *export.StreamRange
	if f.IncludeUsage {
		usage = &export.StreamRange{Stream: eventstore.DefaultUsageStream, ScannedThrough: sum.Usage.Last}
	}
	m := export.NewManifest(f, filepath.Base(path), sum, lifecycle, usage, time.Now())
	if priv != nil {
		if err := m.Sign(priv); err != nil {
			tb.Fatal(err)
		}
	}
	if err := export.WriteManifest(export.ManifestPath(path), m); err != nil {
		tb.Fatal(err)
	}
	return m
}
