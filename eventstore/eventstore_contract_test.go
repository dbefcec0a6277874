package eventstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/stack"
)

// Users of the test servers: the operator may do anything; the
// application user has an API node's rights: it is denied the API subjects
// that could remove history and every consumer deletion.
const (
	adminUser = "admin"
	appUser   = "app"
	password  = "secret"
)

func testUsers() []stack.NATSUser {
	return []stack.NATSUser{
		{Name: adminUser, Password: password},
		{Name: appUser, Password: password, Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Deny: eventstore.APINodeDeniedAPISubjects([]string{"*"}, nil)},
		}},
	}
}

// backend is one deployment shape the contract runs against.
type backend struct {
	name     string
	replicas int
	start    func(t *testing.T) stacktest.Connector
	// rounds of the contention test: fewer on the slower cluster.
	rounds int
}

var backends = []backend{
	{
		name:     "single",
		replicas: 1,
		rounds:   20,
		start: func(t *testing.T) stacktest.Connector {
			srv, err := stack.StartNATS(stack.NATSConfig{StoreDir: t.TempDir(), ServerName: "single", Users: testUsers()})
			if err != nil {
				t.Fatalf("start nats: %v", err)
			}
			t.Cleanup(srv.Shutdown)
			return srv
		},
	},
	{
		name:     "cluster-R3",
		replicas: 3,
		rounds:   8,
		start: func(t *testing.T) stacktest.Connector {
			c, err := stack.StartNATSCluster(t.TempDir(), 3, testUsers()...)
			if err != nil {
				t.Fatalf("start nats cluster: %v", err)
			}
			t.Cleanup(c.Shutdown)
			return c
		},
	},
}

// harness is one isolated store (its own streams and subject prefix) on a
// shared server.
type harness struct {
	t        *testing.T
	replicas int
	cfg      eventstore.Config
	store    *eventstore.Store
	appJS    jetstream.JetStream
	adminJS  jetstream.JetStream
	appConn  *nats.Conn
	asyncErr chan error
}

var storeSeq atomic.Int64

func newHarness(t *testing.T, srv stacktest.Connector, replicas int) *harness {
	t.Helper()
	n := storeSeq.Add(1)
	cfg := eventstore.DefaultConfig()
	cfg.Stream = fmt.Sprintf("TL%d", n)
	cfg.UsageStream = fmt.Sprintf("TLU%d", n)
	cfg.SubjectPrefix = fmt.Sprintf("p%d", n)
	cfg.Replicas = replicas
	h := &harness{t: t, replicas: replicas, cfg: cfg, asyncErr: make(chan error, 16)}
	h.appConn = stacktest.Conn(t, srv, nats.UserInfo(appUser, password),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case h.asyncErr <- err:
			default:
			}
		}))
	var err error
	if h.appJS, err = jetstream.New(h.appConn); err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	if h.adminJS, err = jetstream.New(stacktest.Conn(t, srv, nats.UserInfo(adminUser, password))); err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if h.store, err = eventstore.Open(ctx, h.appConn, domain.NewDefaultRegistry(), cfg); err != nil {
		t.Fatalf("open store: %v", err)
	}
	return h
}

func (h *harness) ctx() context.Context {
	ctx, cancel := context.WithTimeout(h.t.Context(), 20*time.Second)
	h.t.Cleanup(cancel)
	return ctx
}

// TestContract runs the event store contract against a single server and
// an in-process three-server cluster with R3 streams.
func TestContract(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		run  func(t *testing.T, h *harness, b backend)
	}{
		{"events load in order per aggregate", testLoadInOrder},
		{"owner ids round-trip without colliding", testOwnerRoundTrip},
		{"racing writers: exactly one wins each round", testOneWinnerPerRound},
		{"resend after a lost ack stores nothing twice", testResendAfterLostAck},
		{"history cannot be removed", testAppendOnly},
		{"atomic append stores all changes or none", testAtomicAllOrNothing},
		{"issue expecting the owner conflicts with a revocation", testIssueExpectsOwner},
		{"invalid appends are refused before sending", testInvalidAppends},
		{"read stops at the end captured at start", testReadCapturedEnd},
		{"a scan hands out every event in order, chunk after chunk", testScanInOrder},
		{"corrupt messages surface with their sequence", testCorruptMessage},
		{"usage events go to the usage stream", testAppendUsage},
		{"open is idempotent for the application user", testReopen},
		{"lost acknowledgements resolve to the stored events", testLostAck},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			srv := b.start(t)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, newHarness(t, srv, b.replicas), b)
				})
			}
		})
	}
}

// --- event builders --------------------------------------------------------

func newTokenID(t *testing.T) domain.TokenID {
	t.Helper()
	id, err := domain.NewTokenID(time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func envelope(t *testing.T, kind domain.AggregateKind, aggID string, data domain.Event) domain.Envelope {
	t.Helper()
	now := domain.NormalizeTime(time.Now())
	id, err := domain.NewEventID(now, nil)
	if err != nil {
		t.Fatal(err)
	}
	return domain.Envelope{
		ID: id, Type: data.EventType(), AggregateKind: kind, AggregateID: aggID,
		Actor: "test:contract", Time: now, Schema: 1, CorrelationID: "corr-" + id.String(), Data: data,
	}
}

func issued(t *testing.T, tok domain.TokenID, owner domain.OwnerID) domain.Envelope {
	t.Helper()
	exp := domain.NormalizeTime(time.Now().Add(time.Hour))
	return envelope(t, domain.AggregateToken, tok.String(), domain.TokenIssued{
		Owner: owner, Name: "token " + tok.String(), Scopes: []string{"read", "write"}, Kind: domain.KindAPI,
		SecretHash: sha256.Sum256([]byte(tok.String())), ExpiresAt: &exp,
	})
}

func expirySet(t *testing.T, tok domain.TokenID, in time.Duration) domain.Envelope {
	t.Helper()
	exp := domain.NormalizeTime(time.Now().Add(in))
	return envelope(t, domain.AggregateToken, tok.String(), domain.TokenExpirySet{ExpiresAt: &exp, Reason: domain.ExpirySetByCaller})
}

func revoked(t *testing.T, tok domain.TokenID, reason string) domain.Envelope {
	t.Helper()
	return envelope(t, domain.AggregateToken, tok.String(), domain.TokenRevoked{Reason: reason})
}

func ownerRevoked(t *testing.T, owner domain.OwnerID) domain.Envelope {
	t.Helper()
	return envelope(t, domain.AggregateOwner, string(owner), domain.OwnerTokensRevoked{
		Owner: owner, RevokedBefore: domain.NormalizeTime(time.Now()), Reason: "test",
	})
}

func used(t *testing.T, tok domain.TokenID, count uint64) domain.Envelope {
	t.Helper()
	now := domain.NormalizeTime(time.Now())
	return envelope(t, domain.AggregateToken, tok.String(), domain.TokenUsed{Count: count, FirstAt: now, LastAt: now})
}

// --- assertion helpers -----------------------------------------------------

func mustAppend(t *testing.T, h *harness, expect eventstore.Expect, events ...domain.Envelope) []domain.Envelope {
	t.Helper()
	stored, err := h.store.Append(h.ctx(), expect, events...)
	if err != nil {
		t.Fatalf("append (%s): %v", expect, err)
	}
	if len(stored) != len(events) {
		t.Fatalf("append returned %d events, want %d", len(stored), len(events))
	}
	for i, e := range stored {
		if e.Sequence == 0 || e.ID != events[i].ID {
			t.Fatalf("append result %d: id %s seq %d, want id %s and a sequence", i, e.ID, e.Sequence, events[i].ID)
		}
		if i > 0 && e.Sequence != stored[i-1].Sequence+1 {
			t.Fatalf("append result %d: sequence %d does not follow %d", i, e.Sequence, stored[i-1].Sequence)
		}
	}
	return stored
}

func mustLoad(t *testing.T, h *harness, a eventstore.Aggregate) []domain.Envelope {
	t.Helper()
	events, err := h.store.Load(h.ctx(), a)
	if err != nil {
		t.Fatalf("load %s: %v", a, err)
	}
	if events == nil {
		t.Fatalf("load %s: nil slice, want an empty one", a)
	}
	return events
}

// sameEvents reports a difference between two event lists, including
// sequences and payloads.
func sameEvents(t *testing.T, what string, got, want []domain.Envelope) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events %v, want %d %v", what, len(got), ids(got), len(want), ids(want))
	}
	for i := range want {
		if !equalEnvelope(got[i], want[i]) {
			t.Fatalf("%s: event %d\n got %+v\nwant %+v", what, i, got[i], want[i])
		}
	}
}

func equalEnvelope(a, b domain.Envelope) bool {
	return a.ID == b.ID && a.Type == b.Type && a.AggregateKind == b.AggregateKind && a.AggregateID == b.AggregateID &&
		a.Actor == b.Actor && a.Time.Equal(b.Time) && a.Schema == b.Schema && a.CorrelationID == b.CorrelationID &&
		a.Sequence == b.Sequence && fmt.Sprintf("%+v", derefData(a.Data)) == fmt.Sprintf("%+v", derefData(b.Data))
}

// derefData renders pointer fields by value so payloads compare by content.
func derefData(d domain.Event) string {
	switch v := d.(type) {
	case domain.TokenIssued:
		return fmt.Sprintf("%v %v %v %v %v %v %v", v.Owner, v.Name, v.Scopes, v.Kind, v.SecretHash, timeOf(v.ExpiresAt), v.RotatedFrom)
	case domain.TokenExpirySet:
		return fmt.Sprintf("%v %v %v", timeOf(v.ExpiresAt), v.Reason, v.RotatedTo)
	default:
		return fmt.Sprintf("%+v", v)
	}
}

func timeOf(t *time.Time) string {
	if t == nil {
		return "nil"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func ids(events []domain.Envelope) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = fmt.Sprintf("%s@%d", e.ID, e.Sequence)
	}
	return out
}

func wantErrorCode(t *testing.T, what string, err error, code jetstream.ErrorCode) {
	t.Helper()
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("%s: got %v, want a JetStream API error %d", what, err, code)
	}
	if apiErr.ErrorCode != code {
		t.Fatalf("%s: got error code %d (%s), want %d", what, apiErr.ErrorCode, apiErr.Description, code)
	}
}

// --- cases -----------------------------------------------------------------

// testLoadInOrder interleaves appends to several tokens and owners and
// checks each aggregate loads exactly its own events, in order, with the
// sequences the appends returned, and that a full read sees them all.
func testLoadInOrder(t *testing.T, h *harness, _ backend) {
	tokens := []domain.TokenID{newTokenID(t), newTokenID(t), newTokenID(t)}
	owners := []domain.OwnerID{"alice", "bob.smith"}
	want := map[eventstore.Aggregate][]domain.Envelope{}
	var all []domain.Envelope
	appendTo := func(a eventstore.Aggregate, e domain.Envelope) {
		prev := want[a]
		var last uint64
		if len(prev) > 0 {
			last = prev[len(prev)-1].Sequence
		}
		stored := mustAppend(t, h, eventstore.ExpectAt(a, last), e)
		want[a] = append(want[a], stored...)
		all = append(all, stored...)
	}
	for _, tok := range tokens {
		appendTo(eventstore.Token(tok), issued(t, tok, owners[0]))
	}
	for round := range 3 {
		for i, tok := range tokens {
			appendTo(eventstore.Token(tok), expirySet(t, tok, time.Duration(round+i+1)*time.Hour))
		}
		for _, o := range owners {
			appendTo(eventstore.Owner(o), ownerRevoked(t, o))
		}
	}
	appendTo(eventstore.Token(tokens[1]), revoked(t, tokens[1], "done"))
	// A multi-event append lands contiguously and in order.
	batch := mustAppend(t, h, eventstore.ExpectToken(tokens[2], want[eventstore.Token(tokens[2])][3].Sequence),
		expirySet(t, tokens[2], time.Minute), revoked(t, tokens[2], "batch"))
	want[eventstore.Token(tokens[2])] = append(want[eventstore.Token(tokens[2])], batch...)
	all = append(all, batch...)

	for a, events := range want {
		sameEvents(t, "load "+a.String(), mustLoad(t, h, a), events)
		last, err := h.store.LastSequence(h.ctx(), a)
		if err != nil || last != events[len(events)-1].Sequence {
			t.Fatalf("last sequence of %s = %d, %v; want %d", a, last, err, events[len(events)-1].Sequence)
		}
	}
	if got := mustLoad(t, h, eventstore.Token(newTokenID(t))); len(got) != 0 {
		t.Fatalf("unknown token loads %d events", len(got))
	}
	if last, err := h.store.LastSequence(h.ctx(), eventstore.Owner("nobody")); err != nil || last != 0 {
		t.Fatalf("last sequence of an owner without events = %d, %v; want 0", last, err)
	}
	var read []domain.Envelope
	last, err := h.store.Read(h.ctx(), 0, func(e domain.Envelope) error {
		read = append(read, e)
		return nil
	})
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	slices.SortFunc(all, func(a, b domain.Envelope) int { return int(a.Sequence) - int(b.Sequence) })
	sameEvents(t, "read", read, all)
	if last != all[len(all)-1].Sequence {
		t.Fatalf("read returned last %d, want %d", last, all[len(all)-1].Sequence)
	}
	if got, err := h.store.StreamLastSequence(h.ctx()); err != nil || got != last {
		t.Fatalf("stream last sequence = %d, %v; want %d", got, err, last)
	}

	// A follower of the stream decodes what it receives with Decode. In a
	// cluster its creation may find nobody answering for a moment, and a
	// follower may lose its consumer and fail to create it again (a stream
	// or meta leader moving, on a loaded machine); a new one is started
	// then, as a worker would.
	var msg eventstore.Message
	stacktest.Eventually(t, 30*time.Second, func() bool {
		f, err := h.store.Follow(h.ctx(), eventstore.Lifecycle, all[3].Sequence, eventstore.FollowConfig{Remove: true})
		if err == nil {
			// Nothing within five seconds: asked again.
			timer := time.AfterFunc(5*time.Second, f.Stop)
			msg, err = f.Next()
			timer.Stop()
			f.Stop()
		}
		if err != nil {
			t.Logf("follower: %v; asking again", err)
		}
		return err == nil
	}, "a follower received the stream's fourth event")
	decoded, err := h.store.Decode(msg)
	if err != nil || !equalEnvelope(decoded, all[3]) {
		t.Fatalf("Decode = %+v, %v; want %+v", decoded, err, all[3])
	}
}

// trickyOwners are owner ids that are unsafe as subject tokens, or close to
// each other once escaped.
func trickyOwners() []domain.OwnerID {
	long := strings.Repeat("x", domain.MaxOwnerLen)
	return []domain.OwnerID{
		"a.b", "a_2Eb", "a b", "a_20b", "*", ">", "a.*.>", "tl.token.x", "_h00", "-", "ünïcødé", "日本語のオーナー",
		"user@example.com", "a%2Eb", "\u00a0nbsp",
		domain.OwnerID(long), domain.OwnerID(long[:domain.MaxOwnerLen-1] + "y"),
		domain.OwnerID(strings.Repeat("é", domain.MaxOwnerLen/2)), domain.OwnerID(strings.Repeat("é", domain.MaxOwnerLen/2-1) + "e."),
		domain.OwnerID(strings.Repeat("ab", 100)), domain.OwnerID(strings.Repeat("ab", 100) + "c"),
	}
}

// testOwnerRoundTrip stores an event for every tricky owner and checks each
// owner loads exactly its own event back, with its id intact.
func testOwnerRoundTrip(t *testing.T, h *harness, _ backend) {
	owners := trickyOwners()
	stored := make([]domain.Envelope, len(owners))
	for i, o := range owners {
		if err := domain.ValidateOwner(o); err != nil {
			t.Fatalf("owner %q is not valid: %v", o, err)
		}
		stored[i] = mustAppend(t, h, eventstore.ExpectOwner(o, 0), ownerRevoked(t, o))[0]
	}
	for i, o := range owners {
		got := mustLoad(t, h, eventstore.Owner(o))
		sameEvents(t, fmt.Sprintf("owner %q", o), got, stored[i:i+1])
		if got[0].AggregateID != string(o) {
			t.Fatalf("owner %q came back as %q", o, got[0].AggregateID)
		}
	}
	// The first append per owner expected "no event yet"; a second one
	// with that stale expectation must conflict, per owner.
	_, err := h.store.Append(h.ctx(), eventstore.ExpectOwner(owners[0], 0), ownerRevoked(t, owners[0]))
	if !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("stale owner expectation: got %v, want ErrConflict", err)
	}
}

// testOneWinnerPerRound has 16 writers append to one token at the same
// expected sequence, round after round.
func testOneWinnerPerRound(t *testing.T, h *harness, b backend) {
	const writers = 16
	tok := newTokenID(t)
	first := mustAppend(t, h, eventstore.ExpectToken(tok, 0), issued(t, tok, "racer"))
	want := []domain.Envelope{first[0]}
	last := first[0].Sequence
	for round := range b.rounds {
		events := make([]domain.Envelope, writers)
		for i := range events {
			events[i] = expirySet(t, tok, time.Duration(i+1)*time.Minute)
		}
		results := make([]domain.Envelope, writers)
		errs := make([]error, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				<-start
				stored, err := h.store.Append(h.ctx(), eventstore.ExpectToken(tok, last), events[i])
				errs[i] = err
				if err == nil {
					results[i] = stored[0]
				}
			})
		}
		close(start)
		wg.Wait()
		winners := 0
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
				want = append(want, results[i])
				last = results[i].Sequence
			case !errors.Is(err, eventstore.ErrConflict):
				t.Fatalf("round %d writer %d: got %v, want success or ErrConflict", round, i, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d winners, want exactly 1", round, winners)
		}
	}
	sameEvents(t, "history after the races", mustLoad(t, h, eventstore.Token(tok)), want)
}

// testResendAfterLostAck re-sends stored events with their now-stale
// expectations, as a client does whose acknowledgement was lost, and checks
// the store reports the original sequences and stores nothing twice. It
// also pins the server behaviour the store relies on: a single replica
// answers such a resend with a failed expectation (10071), a replicated
// stream with a duplicate acknowledgement, and an atomic batch with
// "batch contains a duplicate" (10201).
func testResendAfterLostAck(t *testing.T, h *harness, b backend) {
	tok := newTokenID(t)
	first := mustAppend(t, h, eventstore.ExpectToken(tok, 0), issued(t, tok, "o"))[0]

	// The store's own resend: same event, stale expectation.
	again := mustAppend(t, h, eventstore.ExpectToken(tok, 0), first)
	if again[0].Sequence != first.Sequence {
		t.Fatalf("resend reported sequence %d, want the original %d", again[0].Sequence, first.Sequence)
	}
	// Resend without expectation.
	again = mustAppend(t, h, eventstore.ExpectNothing(), first)
	if again[0].Sequence != first.Sequence {
		t.Fatalf("unchecked resend reported sequence %d, want %d", again[0].Sequence, first.Sequence)
	}

	// A batch, then its resend.
	pair := mustAppend(t, h, eventstore.ExpectToken(tok, first.Sequence), expirySet(t, tok, time.Hour), expirySet(t, tok, 2*time.Hour))
	againPair := mustAppend(t, h, eventstore.ExpectToken(tok, first.Sequence), pair...)
	if againPair[0].Sequence != pair[0].Sequence || againPair[1].Sequence != pair[1].Sequence {
		t.Fatalf("batch resend reported %v, want %v", ids(againPair), ids(pair))
	}

	// Another writer moves the token on; the late resend still succeeds.
	later := mustAppend(t, h, eventstore.ExpectToken(tok, pair[1].Sequence), revoked(t, tok, "later"))[0]
	again = mustAppend(t, h, eventstore.ExpectToken(tok, 0), first)
	if again[0].Sequence != first.Sequence {
		t.Fatalf("late resend reported sequence %d, want %d", again[0].Sequence, first.Sequence)
	}

	// A different event with a stale expectation is a real conflict.
	_, err := h.store.Append(h.ctx(), eventstore.ExpectToken(tok, pair[1].Sequence), revoked(t, tok, "stale"))
	if !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("stale expectation: got %v, want ErrConflict", err)
	}
	sameEvents(t, "history after resends", mustLoad(t, h, eventstore.Token(tok)), []domain.Envelope{first, pair[0], pair[1], later})

	// The raw server answers the store handles.
	subjects := h.store.Subjects()
	raw := func(e domain.Envelope, expectSeq uint64) *nats.Msg {
		data, err := h.store.Registry().Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		subject, err := subjects.Subject(e)
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg(subject)
		m.Data = data
		m.Header.Set(jetstream.MsgIDHeader, e.ID.String())
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, fmt.Sprint(expectSeq))
		m.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, subjects.TokenFilter(tok))
		return m
	}
	ack, err := h.appJS.PublishMsg(h.ctx(), raw(first, 0))
	switch b.replicas {
	case 1:
		wantErrorCode(t, "raw resend on one replica", err, jetstream.JSErrCodeStreamWrongLastSequence)
	default:
		if err != nil || !ack.Duplicate || ack.Sequence != first.Sequence {
			t.Fatalf("raw resend on a replicated stream: ack %+v, err %v; want a duplicate of %d", ack, err, first.Sequence)
		}
	}
	sameEvents(t, "history after raw resends", mustLoad(t, h, eventstore.Token(tok)), []domain.Envelope{first, pair[0], pair[1], later})
}

// testAppendOnly checks that no user can remove or rewrite history: the
// stream refuses purges, message deletes and rollups even to the operator,
// and cannot be made deletable again; deleting or updating the whole
// stream is refused to the application user by its permissions.
func testAppendOnly(t *testing.T, h *harness, _ backend) {
	tok := newTokenID(t)
	stored := mustAppend(t, h, eventstore.ExpectToken(tok, 0), issued(t, tok, "o"), revoked(t, tok, "x"))
	ctx := h.ctx()
	admin, err := h.adminJS.Stream(ctx, h.cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	err = admin.Purge(ctx)
	wantErrorCode(t, "purge", err, 10110)
	err = admin.Purge(ctx, jetstream.WithPurgeSubject(h.store.Subjects().TokenFilter(tok)))
	wantErrorCode(t, "purge subject", err, 10110)
	// The client library flattens the message-delete error to text, so
	// the request is made directly to read the server's error code.
	for _, secure := range []bool{false, true} {
		req := fmt.Sprintf(`{"seq":%d,"no_erase":%t}`, stored[0].Sequence, !secure)
		wantErrorCode(t, "delete message", adminRequest(t, h, "$JS.API.STREAM.MSG.DELETE."+h.cfg.Stream, req), 10057)
	}
	if err := admin.DeleteMsg(ctx, stored[0].Sequence); err == nil {
		t.Fatal("message deleted")
	}

	rollup, err := h.store.Subjects().TokenSubject(tok, domain.TypeTokenRevoked)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(rollup)
	m.Data = []byte("{}")
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	_, err = h.adminJS.PublishMsg(ctx, m)
	wantErrorCode(t, "rollup", err, 10111)

	cfg := admin.CachedInfo().Config
	cfg.DenyDelete = false
	_, err = h.adminJS.UpdateStream(ctx, cfg)
	wantErrorCode(t, "turn deletes back on", err, 10052)
	cfg = admin.CachedInfo().Config
	cfg.DenyPurge = false
	_, err = h.adminJS.UpdateStream(ctx, cfg)
	wantErrorCode(t, "turn purges back on", err, 10052)

	// The application user may not delete the stream nor add limits to
	// it: the server drops the request with a permissions violation.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = h.appJS.DeleteStream(short, h.cfg.Stream)
	cancel()
	if err == nil {
		t.Fatal("application user deleted the stream")
	}
	wantPermissionViolation(t, h, "$JS.API.STREAM.DELETE."+h.cfg.Stream)
	cfg = admin.CachedInfo().Config
	cfg.MaxAge = time.Millisecond
	short, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = h.appJS.UpdateStream(short, cfg)
	cancel()
	if err == nil {
		t.Fatal("application user added an age limit to the stream")
	}
	wantPermissionViolation(t, h, "$JS.API.STREAM.UPDATE."+h.cfg.Stream)

	sameEvents(t, "history after the attempts", mustLoad(t, h, eventstore.Token(tok)), stored)
	info, err := admin.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 || info.Config.MaxAge != 0 || !info.Config.DenyDelete || !info.Config.DenyPurge || info.Config.AllowRollup {
		t.Fatalf("stream after the attempts: %d msgs, config %+v", info.State.Msgs, info.Config)
	}
}

// adminRequest makes a JetStream API request as the operator and returns
// the error in its answer.
func adminRequest(t *testing.T, h *harness, subject, req string) error {
	t.Helper()
	resp, err := h.adminJS.Conn().RequestWithContext(h.ctx(), subject, []byte(req))
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	var r struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		t.Fatalf("answer to %s: %v", subject, err)
	}
	if r.Error == nil {
		return nil
	}
	return r.Error
}

func wantPermissionViolation(t *testing.T, h *harness, subject string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case err := <-h.asyncErr:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), subject) {
				return
			}
		case <-timeout:
			t.Fatalf("no permissions violation reported for %s", subject)
		}
	}
}

// testAtomicAllOrNothing appends to two tokens atomically: a failed
// expectation on either change stores neither; when both hold, both are
// stored contiguously.
func testAtomicAllOrNothing(t *testing.T, h *harness, _ backend) {
	a, b := newTokenID(t), newTokenID(t)
	ia := mustAppend(t, h, eventstore.ExpectToken(a, 0), issued(t, a, "o"))[0]
	ib := mustAppend(t, h, eventstore.ExpectToken(b, 0), issued(t, b, "o"))[0]
	// Move b on so an expectation of ib.Sequence is stale.
	eb := mustAppend(t, h, eventstore.ExpectToken(b, ib.Sequence), expirySet(t, b, time.Hour))[0]

	cases := []struct {
		name    string
		changes []eventstore.Change
	}{
		{"second change stale", []eventstore.Change{
			{Expect: eventstore.ExpectToken(a, ia.Sequence), Events: []domain.Envelope{expirySet(t, a, time.Hour)}},
			{Expect: eventstore.ExpectToken(b, ib.Sequence), Events: []domain.Envelope{revoked(t, b, "x")}},
		}},
		{"first change stale", []eventstore.Change{
			{Expect: eventstore.ExpectToken(b, ib.Sequence), Events: []domain.Envelope{revoked(t, b, "x"), expirySet(t, b, time.Minute)}},
			{Expect: eventstore.ExpectToken(a, ia.Sequence), Events: []domain.Envelope{expirySet(t, a, time.Hour)}},
		}},
		{"expecting a token that has events to have none", []eventstore.Change{
			{Expect: eventstore.ExpectToken(a, ia.Sequence), Events: []domain.Envelope{expirySet(t, a, time.Hour)}},
			{Expect: eventstore.ExpectToken(b, 0), Events: []domain.Envelope{revoked(t, b, "x")}},
		}},
	}
	for _, tc := range cases {
		_, err := h.store.AppendAtomic(h.ctx(), tc.changes...)
		if !errors.Is(err, eventstore.ErrConflict) {
			t.Fatalf("%s: got %v, want ErrConflict", tc.name, err)
		}
		sameEvents(t, tc.name+": token a", mustLoad(t, h, eventstore.Token(a)), []domain.Envelope{ia})
		sameEvents(t, tc.name+": token b", mustLoad(t, h, eventstore.Token(b)), []domain.Envelope{ib, eb})
	}

	// Rotation: issue c expecting the owner, expire a expecting a.
	c := newTokenID(t)
	ownerSeq, err := h.store.LastSequence(h.ctx(), eventstore.Owner("o"))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := h.store.AppendAtomic(h.ctx(),
		eventstore.Change{Expect: eventstore.ExpectOwner("o", ownerSeq), Events: []domain.Envelope{issued(t, c, "o")}},
		eventstore.Change{Expect: eventstore.ExpectToken(a, ia.Sequence), Events: []domain.Envelope{expirySet(t, a, time.Minute)}},
	)
	if err != nil {
		t.Fatalf("rotation: %v", err)
	}
	if stored[1].Sequence != stored[0].Sequence+1 {
		t.Fatalf("rotation stored at %d and %d, want contiguous", stored[0].Sequence, stored[1].Sequence)
	}
	sameEvents(t, "rotated token", mustLoad(t, h, eventstore.Token(a)), []domain.Envelope{ia, stored[1]})
	sameEvents(t, "new token", mustLoad(t, h, eventstore.Token(c)), stored[:1])
}

// testIssueExpectsOwner: an issue decided before an owner-wide revocation
// (expecting the owner's sequence from before it) must not be stored after
// it.
func testIssueExpectsOwner(t *testing.T, h *harness, _ backend) {
	const owner = domain.OwnerID("team.blue")
	seen, err := h.store.LastSequence(h.ctx(), eventstore.Owner(owner))
	if err != nil {
		t.Fatal(err)
	}
	t1 := newTokenID(t)
	mustAppend(t, h, eventstore.ExpectOwner(owner, seen), issued(t, t1, owner))
	rev := mustAppend(t, h, eventstore.ExpectOwner(owner, seen), ownerRevoked(t, owner))[0]

	t2 := newTokenID(t)
	_, err = h.store.Append(h.ctx(), eventstore.ExpectOwner(owner, seen), issued(t, t2, owner))
	if !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("issue expecting the owner before its revocation: got %v, want ErrConflict", err)
	}
	if got := mustLoad(t, h, eventstore.Token(t2)); len(got) != 0 {
		t.Fatalf("refused issue stored %d events", len(got))
	}
	mustAppend(t, h, eventstore.ExpectOwner(owner, rev.Sequence), issued(t, t2, owner))
}

// testInvalidAppends: appends that can never be valid fail with
// ErrInvalidArgument and store nothing.
func testInvalidAppends(t *testing.T, h *harness, _ backend) {
	tok := newTokenID(t)
	good := issued(t, tok, "o")
	noID := issued(t, tok, "o")
	noID.ID = domain.EventID{}
	badOwner := ownerRevoked(t, "o")
	badOwner.AggregateID = ""
	wrongKind := revoked(t, tok, "x")
	wrongKind.AggregateKind = domain.AggregateOwner
	tooMany := make([]domain.Envelope, eventstore.MaxBatch+1)
	for i := range tooMany {
		tooMany[i] = expirySet(t, tok, time.Hour)
	}
	cases := []struct {
		name    string
		changes []eventstore.Change
	}{
		{"no events", []eventstore.Change{{Expect: eventstore.ExpectToken(tok, 0)}}},
		{"no changes", nil},
		{"event without id", []eventstore.Change{{Events: []domain.Envelope{noID}}}},
		{"usage event", []eventstore.Change{{Events: []domain.Envelope{used(t, tok, 1)}}}},
		{"invalid owner", []eventstore.Change{{Events: []domain.Envelope{badOwner}}}},
		{"kind does not match type", []eventstore.Change{{Events: []domain.Envelope{wrongKind}}}},
		{"same id twice", []eventstore.Change{{Events: []domain.Envelope{good, good}}}},
		{"two changes expect one aggregate", []eventstore.Change{
			{Expect: eventstore.ExpectToken(tok, 0), Events: []domain.Envelope{good}},
			{Expect: eventstore.ExpectToken(tok, 0), Events: []domain.Envelope{expirySet(t, tok, time.Hour)}},
		}},
		{"expectation on an invalid owner", []eventstore.Change{{Expect: eventstore.ExpectOwner("", 0), Events: []domain.Envelope{good}}}},
		{"more than a batch", []eventstore.Change{{Events: tooMany}}},
	}
	for _, tc := range cases {
		_, err := h.store.AppendAtomic(h.ctx(), tc.changes...)
		if !errors.Is(err, domain.ErrInvalidArgument) {
			t.Fatalf("%s: got %v, want ErrInvalidArgument", tc.name, err)
		}
	}
	if last, err := h.store.StreamLastSequence(h.ctx()); err != nil || last != 0 {
		t.Fatalf("stream last sequence after refused appends = %d, %v; want 0", last, err)
	}
}

// appendMany stores n events on a few tokens and returns them.
func appendMany(t *testing.T, h *harness, n int) []domain.Envelope {
	t.Helper()
	var out []domain.Envelope
	for len(out) < n {
		tok := newTokenID(t)
		events := []domain.Envelope{issued(t, tok, "reader")}
		for len(events) < min(5, n-len(out)) {
			events = append(events, expirySet(t, tok, time.Hour))
		}
		out = append(out, mustAppend(t, h, eventstore.ExpectToken(tok, 0), events...)...)
	}
	return out
}

// testScanInOrder scans a stream of several of the Scanner's chunks (whose
// memory it uses again) and checks that copies of the events it hands out
// are the stream's events in order, as Read gives them.
func testScanInOrder(t *testing.T, h *harness, _ backend) {
	events := appendMany(t, h, 2600)
	end := events[len(events)-1].Sequence
	sc, err := h.store.Scan(h.ctx(), eventstore.Lifecycle, end)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	var got []domain.Envelope
	for {
		e, err := sc.Next(h.ctx())
		if err != nil {
			t.Fatalf("scan after %d events: %v", len(got), err)
		}
		if e == nil {
			break
		}
		got = append(got, *e)
	}
	sameEvents(t, "scan", got, events)
	if sc.Scanned() != uint64(len(events)) {
		t.Fatalf("Scanned() = %d, want %d", sc.Scanned(), len(events))
	}
}

// testReadCapturedEnd reads from a middle sequence while the stream grows
// and checks Read stops at the end it captured.
func testReadCapturedEnd(t *testing.T, h *harness, _ backend) {
	events := appendMany(t, h, 40)
	from := events[10].Sequence
	end := events[len(events)-1].Sequence
	var got []domain.Envelope
	extra := newTokenID(t)
	last, err := h.store.Read(h.ctx(), from, func(e domain.Envelope) error {
		if len(got) == 0 {
			// Appended during the read: after the captured end.
			mustAppend(t, h, eventstore.ExpectToken(extra, 0), issued(t, extra, "late"))
		}
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	sameEvents(t, "read from the middle", got, events[10:])
	if last != end {
		t.Fatalf("read returned last %d, want %d", last, end)
	}

	// Nothing to read from past the end.
	calls := 0
	last, err = h.store.Read(h.ctx(), end+100, func(domain.Envelope) error { calls++; return nil })
	if err != nil || calls != 0 || last != end+99 {
		t.Fatalf("read past the end: last %d, %d calls, %v; want last %d and no calls", last, calls, err, end+99)
	}

	// An error from fn stops the read; last is the last event accepted.
	stop := errors.New("stop here")
	n := 0
	last, err = h.store.Read(h.ctx(), 1, func(domain.Envelope) error {
		n++
		if n == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || last != events[3].Sequence {
		t.Fatalf("read stopped by fn: last %d, %v; want last %d and the fn error", last, err, events[3].Sequence)
	}

	// Cancelling the context stops the read.
	ctx, cancel := context.WithCancel(h.ctx())
	defer cancel()
	n = 0
	last, err = h.store.Read(ctx, 1, func(domain.Envelope) error {
		n++
		if n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || last != events[2].Sequence {
		t.Fatalf("cancelled read: last %d, %v; want last %d and context.Canceled", last, err, events[2].Sequence)
	}
}

// testCorruptMessage publishes garbage, and a valid event on the wrong
// subject, with plain NATS and checks reads report them with their stream
// sequences instead of skipping them.
func testCorruptMessage(t *testing.T, h *harness, _ backend) {
	tok, other := newTokenID(t), newTokenID(t)
	good := mustAppend(t, h, eventstore.ExpectToken(tok, 0), issued(t, tok, "o"))[0]
	subject, err := h.store.Subjects().TokenSubject(tok, domain.TypeTokenRevoked)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.appConn.Publish(subject, []byte("garbage{")); err != nil {
		t.Fatal(err)
	}
	garbageSeq := good.Sequence + 1
	stacktest.Eventually(t, 5*time.Second, func() bool {
		last, err := h.store.StreamLastSequence(h.ctx())
		return err == nil && last >= garbageSeq
	}, "garbage stored at %d", garbageSeq)

	var got []domain.Envelope
	last, err := h.store.Read(h.ctx(), 1, func(e domain.Envelope) error {
		got = append(got, e)
		return nil
	})
	wantDecodeError(t, "read", err, garbageSeq, subject, domain.ErrCorruptEvent)
	if last != good.Sequence || len(got) != 1 {
		t.Fatalf("read before the garbage: last %d, %d events; want last %d and 1 event", last, len(got), good.Sequence)
	}
	_, err = h.store.LoadToken(h.ctx(), tok)
	wantDecodeError(t, "load", err, garbageSeq, subject, domain.ErrCorruptEvent)

	// A valid event of one token stored on another token's subject.
	misplaced := revoked(t, tok, "misplaced")
	data, err := h.store.Registry().Marshal(misplaced)
	if err != nil {
		t.Fatal(err)
	}
	otherSubject, err := h.store.Subjects().TokenSubject(other, domain.TypeTokenRevoked)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := h.appJS.Publish(h.ctx(), otherSubject, data)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.store.LoadToken(h.ctx(), other)
	wantDecodeError(t, "load misplaced", err, ack.Sequence, otherSubject, domain.ErrCorruptEvent)
}

func wantDecodeError(t *testing.T, what string, err error, seq uint64, subject string, cause error) {
	t.Helper()
	var de *eventstore.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("%s: got %v, want a *DecodeError", what, err)
	}
	if de.Sequence != seq || de.Subject != subject || !errors.Is(err, cause) {
		t.Fatalf("%s: decode error %+v, want sequence %d on %s wrapping %v", what, de, seq, subject, cause)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(seq)) {
		t.Fatalf("%s: message %q does not name sequence %d", what, err, seq)
	}
}

// testAppendUsage stores usage events in the usage stream, deduplicated by
// id, and keeps them out of the lifecycle stream.
func testAppendUsage(t *testing.T, h *harness, _ backend) {
	tok := newTokenID(t)
	events := []domain.Envelope{used(t, tok, 3), used(t, tok, 1), used(t, newTokenID(t), 7)}
	stored, err := h.store.AppendUsage(h.ctx(), events...)
	if err != nil {
		t.Fatalf("append usage: %v", err)
	}
	again, err := h.store.AppendUsage(h.ctx(), events[0])
	if err != nil || again[0].Sequence != stored[0].Sequence {
		t.Fatalf("usage resend: %v, %v; want sequence %d", ids(again), err, stored[0].Sequence)
	}
	if _, err := h.store.AppendUsage(h.ctx(), issued(t, tok, "o")); !errors.Is(err, domain.ErrInvalidArgument) {
		t.Fatalf("lifecycle event as usage: got %v, want ErrInvalidArgument", err)
	}
	usage, err := h.appJS.Stream(h.ctx(), h.cfg.UsageStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := usage.Info(h.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 || info.Config.MaxAge != h.cfg.UsageMaxAge || !info.Config.DenyDelete || !info.Config.DenyPurge {
		t.Fatalf("usage stream: %d msgs, config %+v", info.State.Msgs, info.Config)
	}
	msg, err := usage.GetMsg(h.ctx(), stored[2].Sequence)
	if err != nil {
		t.Fatal(err)
	}
	e, err := h.store.DecodeRaw(msg)
	if err != nil || !equalEnvelope(e, stored[2]) {
		t.Fatalf("usage event read back as %+v, %v; want %+v", e, err, stored[2])
	}
	if last, err := h.store.StreamLastSequence(h.ctx()); err != nil || last != 0 {
		t.Fatalf("lifecycle stream after usage appends: last %d, %v; want 0", last, err)
	}

	// A usage batch is one message on the batch subject, deduplicated by
	// its id like any event, and reads back as it was recorded.
	now := time.Now()
	batches, err := domain.RecordUsage([]domain.TokenUse{
		{Token: tok, Count: 5, FirstAt: now.Add(-time.Second), LastAt: now, ClientAddr: "192.0.2.7:1234"},
		{Token: newTokenID(t), Count: 1, FirstAt: now, LastAt: now},
	}, domain.Meta{Actor: "system:validator"}, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	storedBatch, err := h.store.AppendUsage(h.ctx(), batches...)
	if err != nil {
		t.Fatalf("append usage batch: %v", err)
	}
	if again, err := h.store.AppendUsage(h.ctx(), batches...); err != nil || again[0].Sequence != storedBatch[0].Sequence {
		t.Fatalf("usage batch resend: %v, %v; want sequence %d", ids(again), err, storedBatch[0].Sequence)
	}
	msg, err = usage.GetMsg(h.ctx(), storedBatch[0].Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != h.store.Subjects().UsageBatchSubject() || !domain.IsUsageBatch(msg.Data) {
		t.Fatalf("usage batch stored on %s, binary %v", msg.Subject, domain.IsUsageBatch(msg.Data))
	}
	e, err = h.store.DecodeRaw(msg)
	if err != nil || !reflect.DeepEqual(e, storedBatch[0]) {
		t.Fatalf("usage batch read back as %+v, %v; want %+v", e, err, storedBatch[0])
	}
	if _, err := h.store.Append(h.ctx(), eventstore.Expect{}, batches...); !errors.Is(err, domain.ErrInvalidArgument) {
		t.Fatalf("usage batch to the lifecycle stream: got %v, want ErrInvalidArgument", err)
	}
}

// testReopen opens the store again as the application user, who may not
// update streams: an up-to-date stream needs no update.
func testReopen(t *testing.T, h *harness, _ backend) {
	tok := newTokenID(t)
	stored := mustAppend(t, h, eventstore.ExpectToken(tok, 0), issued(t, tok, "o"))
	again, err := eventstore.Open(h.ctx(), h.appConn, domain.NewDefaultRegistry(), h.cfg)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	sameEvents(t, "after reopen", mustLoad(t, h, eventstore.Token(tok)), stored)
	got, err := again.LoadToken(h.ctx(), tok)
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, "through the reopened store", got, stored)
	// Close releases the store's subscription; a closed store still works.
	for range 2 {
		if err := again.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
	if got, err = again.LoadToken(h.ctx(), tok); err != nil {
		t.Fatalf("load after close: %v", err)
	}
	sameEvents(t, "after close", got, stored)
	// The operator may change what may be changed.
	cfg := h.cfg
	cfg.DuplicateWindow = 5 * time.Minute
	if _, err := eventstore.Open(h.ctx(), h.adminJS.Conn(), domain.NewDefaultRegistry(), cfg); err != nil {
		t.Fatalf("reopen with a new duplicate window: %v", err)
	}
	info, err := h.appJS.Stream(h.ctx(), h.cfg.Stream)
	if err != nil || info.CachedInfo().Config.Duplicates != 5*time.Minute {
		t.Fatalf("duplicate window after update: %v, %v", info, err)
	}
}

// lossyJetStream is a real JetStream client that loses the answers of the
// next publishes: with store set the message reaches the server and only
// its acknowledgement is lost; without, the request itself is lost.
type lossyJetStream struct {
	jetstream.JetStream
	lose  atomic.Int32
	store bool
	sent  atomic.Int32
}

func (l *lossyJetStream) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	l.sent.Add(1)
	if l.lose.Add(-1) < 0 {
		l.lose.Store(0)
		return l.JetStream.PublishMsg(ctx, m, opts...)
	}
	if l.store {
		if _, err := l.JetStream.PublishMsg(ctx, m, opts...); err != nil {
			return nil, err
		}
	}
	return nil, nats.ErrTimeout
}

// testLostAck appends through a client that loses acknowledgements.
func testLostAck(t *testing.T, h *harness, _ backend) {
	cases := []struct {
		name  string
		lose  int32
		store bool
		// deadline bounds the append; zero: the harness's 20 s.
		deadline time.Duration
		// wantSent is the exact number of publishes, or with atLeast the
		// least; zero: not checked.
		wantSent int32
		atLeast  bool
		wantErr  error
	}{
		{name: "first ack lost, retry resolves", lose: 1, store: true, wantSent: 2},
		// A single replica answers the second attempt with a conflict
		// (the first one was stored), a replicated stream with a duplicate
		// acknowledgement that is lost in turn.
		{name: "every ack lost, lookup resolves", lose: 3, store: true},
		// As in a leader election: nothing answers for longer than a few
		// quick attempts take, then the server answers again. The append
		// keeps trying, with the same id, and succeeds.
		{name: "unanswered for a while, then stored", lose: 10, wantSent: 11},
		{name: "every request lost until the deadline", lose: 1 << 30, deadline: 1500 * time.Millisecond,
			wantSent: 4, atLeast: true, wantErr: eventstore.ErrOutcomeUnknown},
	}
	for _, tc := range cases {
		lossy := &lossyJetStream{JetStream: h.appJS, store: tc.store}
		store, err := eventstore.OpenJetStream(h.ctx(), lossy, domain.NewDefaultRegistry(), h.cfg)
		if err != nil {
			t.Fatal(err)
		}
		tok := newTokenID(t)
		e := issued(t, tok, "o")
		lossy.sent.Store(0)
		lossy.lose.Store(tc.lose)
		ctx := h.ctx()
		if tc.deadline > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, tc.deadline)
			defer cancel()
		}
		start := time.Now()
		stored, err := store.Append(ctx, eventstore.ExpectToken(tok, 0), e)
		elapsed := time.Since(start)
		got := lossy.sent.Load()
		switch {
		case tc.wantSent == 0:
		case tc.atLeast && got < tc.wantSent:
			t.Fatalf("%s: %d publishes, want at least %d", tc.name, got, tc.wantSent)
		case !tc.atLeast && got != tc.wantSent:
			t.Fatalf("%s: %d publishes, want %d", tc.name, got, tc.wantSent)
		}
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) || errors.Is(err, eventstore.ErrConflict) {
				t.Fatalf("%s: got %v, want %v", tc.name, err, tc.wantErr)
			}
			// The append answers by its deadline, not after it.
			if elapsed > tc.deadline+time.Second {
				t.Fatalf("%s: answered after %v, deadline %v", tc.name, elapsed, tc.deadline)
			}
			if got := mustLoad(t, h, eventstore.Token(tok)); len(got) != 0 {
				t.Fatalf("%s: %d events stored", tc.name, len(got))
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		sameEvents(t, tc.name, mustLoad(t, h, eventstore.Token(tok)), stored)
	}
}
