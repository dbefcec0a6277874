package audit_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/audit"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/projections"
)

// simulation runs random commands of the real domain over simulated time
// and stores their events in a ledger, as the API and the validators would.
type simulation struct {
	t       *testing.T
	l       *ledger
	rng     *rand.Rand
	entropy *rand.ChaCha8
	policy  domain.Policy
	owners  []*domain.Owner
	tokens  []*domain.Token
	// done counts the commands of each kind that recorded something.
	done map[string]int
}

func newSimulation(t *testing.T, l *ledger, seed uint64) *simulation {
	s := &simulation{
		t:       t,
		l:       l,
		rng:     rand.New(rand.NewPCG(seed, 0x5eed)),
		entropy: rand.NewChaCha8([32]byte{byte(seed), 42}),
		policy:  domain.DefaultPolicy(),
		done:    map[string]int{},
	}
	s.policy.AllowNeverExpires = true
	for _, id := range []domain.OwnerID{"alice", "bob", "svc-billing", "team/payments"} {
		s.owners = append(s.owners, domain.NewOwner(id))
	}
	return s
}

func (s *simulation) meta() domain.Meta {
	return domain.Meta{Actor: fmt.Sprintf("user:%d", s.rng.IntN(4)), CorrelationID: fmt.Sprintf("c-%d", s.rng.IntN(1000))}
}

func (s *simulation) owner(id domain.OwnerID) *domain.Owner {
	for _, o := range s.owners {
		if o.ID() == id {
			return o
		}
	}
	s.t.Fatalf("no owner %q", id)
	return nil
}

// step runs one random command at now.
func (s *simulation) step(now time.Time) {
	s.t.Helper()
	if len(s.tokens) == 0 {
		s.issue(now)
		return
	}
	// Half the commands act on one of the newest tokens, which are more
	// often still usable (a session slides only while it lives).
	tok := s.tokens[s.rng.IntN(len(s.tokens))]
	if s.rng.IntN(2) == 0 {
		tok = s.tokens[len(s.tokens)-1-s.rng.IntN(min(4, len(s.tokens)))]
	}
	switch p := s.rng.IntN(100); {
	case p < 25:
		s.issue(now)
	case p < 45:
		s.use(tok, now)
	case p < 58:
		s.setExpiry(tok, now)
	case p < 70:
		s.revoke(tok, now)
	case p < 82:
		s.rotate(tok, now)
	case p < 86:
		s.revokeOwner(now)
	case p < 92:
		s.revokeFamily(now)
	}
}

// revokeFamily revokes the rotation family of a rotated-out token, as a
// presentation of its secret after its grace does.
func (s *simulation) revokeFamily(now time.Time) {
	var out []*domain.Token
	for _, t := range s.tokens {
		if t.RotatedOut(now) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return
	}
	tok := out[s.rng.IntN(len(out))]
	o := s.owner(tok.Owner())
	reuse := domain.SecretReuse{Token: tok.ID(), ClientAddr: "198.51.100.7", Route: "GET /v1/auth"}
	if err := o.RevokeFamily(tok, reuse, domain.Meta{Actor: "system:reuse-detection"}, now); err != nil {
		s.t.Fatalf("revoke family: %v", err)
	}
	if len(o.Changes()) == 0 {
		return
	}
	s.l.revokeOwner(o)
	s.done["revoke_family"]++
}

func (s *simulation) issue(now time.Time) {
	o := s.owners[s.rng.IntN(len(s.owners))]
	req := domain.IssueRequest{
		Owner:  o.ID(),
		Name:   fmt.Sprintf("token %d", len(s.tokens)),
		Scopes: []string{"read", "repo:write", "write"}[:1+s.rng.IntN(3)],
	}
	switch s.rng.IntN(5) {
	case 0:
		req.Kind = domain.KindSession
		req.IdleTimeout = time.Duration(1+s.rng.IntN(180)) * time.Minute
	case 1:
		req.NeverExpires = true
	case 2, 3:
		req.ExpiresIn = time.Duration(1+s.rng.IntN(10*24)) * time.Hour
	}
	tok, _, err := domain.IssueToken(s.policy, o, req, s.meta(), now, s.entropy)
	if errors.Is(err, domain.ErrOwnerBlocked) {
		return
	}
	if err != nil {
		s.t.Fatalf("issue: %v", err)
	}
	s.l.issue(tok, o)
	s.tokens = append(s.tokens, tok)
	s.done["issue"]++
}

// use records uses of tok, and slides it when it is a session, as the
// validators and the usage consumer do.
func (s *simulation) use(tok *domain.Token, now time.Time) {
	first := now.Add(-time.Duration(s.rng.IntN(1800)) * time.Second)
	if first.Before(tok.CreatedAt()) {
		first = tok.CreatedAt()
	}
	addrs := []string{"10.0.0.1", "192.0.2.7", ""}
	s.l.use(tok, uint64(1+s.rng.IntN(50)), first, addrs[s.rng.IntN(len(addrs))], s.meta(), now)
	s.done["use"]++
	if tok.Kind() != domain.KindSession {
		return
	}
	ok, err := tok.ExtendSession(now, s.policy.SessionExtendStep, domain.Meta{Actor: "system:session-slide"}, now)
	if err == nil && ok {
		s.l.change(tok)
		s.done["extend"]++
	}
}

func (s *simulation) setExpiry(tok *domain.Token, now time.Time) {
	at := now.Add(time.Duration(1+s.rng.IntN(5*24*60)) * time.Minute)
	atp := &at
	if tok.Kind() == domain.KindSession {
		limit, _ := tok.AbsoluteExpiresAt()
		if !limit.After(now) {
			return
		}
		at = now.Add(time.Duration(1 + s.rng.Int64N(int64(limit.Sub(now)))))
	} else if s.rng.IntN(6) == 0 {
		atp = nil
	}
	if err := tok.SetExpiry(s.policy, atp, s.meta(), now); err != nil {
		return // revoked, or out of policy: nothing recorded
	}
	s.l.change(tok)
	s.done["set_expiry"]++
}

func (s *simulation) revoke(tok *domain.Token, now time.Time) {
	if err := tok.Revoke(fmt.Sprintf("reason %d", s.rng.IntN(3)), s.meta(), now); err != nil {
		s.t.Fatalf("revoke: %v", err)
	}
	if len(tok.Changes()) == 0 {
		return
	}
	s.l.change(tok)
	s.done["revoke"]++
}

func (s *simulation) rotate(old *domain.Token, now time.Time) {
	o := s.owner(old.Owner())
	nt, _, err := domain.Rotate(s.policy, o, old, time.Duration(s.rng.IntN(12))*time.Hour, nil, s.meta(), now, s.entropy)
	if err != nil {
		return // not usable at now, already rotated, or the owner is blocked
	}
	s.l.rotate(old, nt, o)
	s.tokens = append(s.tokens, nt)
	s.done["rotate"]++
}

func (s *simulation) revokeOwner(now time.Time) {
	o := s.owners[s.rng.IntN(len(s.owners))]
	var until *time.Time
	if s.rng.IntN(3) == 0 {
		u := now.Add(time.Duration(1+s.rng.IntN(12)) * time.Hour)
		until = &u
	}
	if err := o.RevokeTokens(until, "compromised", s.meta(), now); err != nil {
		s.t.Fatalf("revoke owner: %v", err)
	}
	s.l.revokeOwner(o)
	s.done["revoke_owner"]++
}

// projectionAt is what the live read model answered at an instant.
type projectionAt struct {
	at time.Time
	// checkpoint is the lifecycle projection's checkpoint then.
	checkpoint uint64
	rows       map[domain.TokenID]projections.TokenRow
}

// snapshot reads every token of the read model with statuses at at.
func snapshot(t *testing.T, read *projections.ReadModel, at time.Time) projectionAt {
	t.Helper()
	ctx := context.Background()
	cp, err := read.Checkpoint(ctx, lifecycleName)
	if err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	out := projectionAt{at: at, checkpoint: cp, rows: map[domain.TokenID]projections.TokenRow{}}
	f := projections.ListFilter{Limit: projections.MaxListLimit, Now: at}
	for {
		page, err := read.List(ctx, f)
		if err != nil {
			t.Fatalf("list at %s: %v", at, err)
		}
		for _, r := range page.Items {
			out.rows[r.ID] = r
		}
		if page.NextCursor == "" {
			return out
		}
		f.Cursor = page.NextCursor
	}
}

// fold is the reference: domain.State applied directly to the kept events
// whose time is at or before at, usage included.
func fold(l *ledger, at time.Time) map[domain.TokenID]projections.TokenRow {
	st := domain.NewState()
	for _, e := range l.lifecycle {
		if !e.Time.After(at) {
			st.Apply(e)
		}
	}
	for _, e := range l.usage {
		if e.Time.After(at) {
			continue
		}
		if e.Type != domain.TypeUsageBatch {
			st.Apply(e)
			continue
		}
		// A batch counts as the token.used event of each token it holds.
		for id, d := range domain.Uses(e) {
			st.Apply(domain.Envelope{ID: e.ID, Type: domain.TypeTokenUsed, AggregateKind: domain.AggregateToken,
				AggregateID: id.String(), Actor: e.Actor, Time: e.Time, Schema: 1, Data: d, Sequence: e.Sequence})
		}
	}
	rows := map[domain.TokenID]projections.TokenRow{}
	for tok := range st.Tokens() {
		r := projections.TokenRowFromDomain(tok)
		o, _ := st.Owner(tok.Owner())
		r.Status, r.OwnerRevoked = tok.Status(at, o), o.Covers(tok)
		rows[r.ID] = r
	}
	return rows
}

// diffRows lists how got differs from want, column by column, row by row.
// The secret hash is not compared (StateAt never gives it), nor last_seq
// unless lastSeq (a fold that applies usage events moves a token's version
// to usage-stream sequences).
func diffRows(want map[domain.TokenID]projections.TokenRow, got []projections.TokenRow, lastSeq bool) []string {
	var diffs []string
	seen := map[domain.TokenID]bool{}
	for _, g := range got {
		seen[g.ID] = true
		w, ok := want[g.ID]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("token %s: not expected", g.ID))
			continue
		}
		w.SecretHash = g.SecretHash
		if !lastSeq {
			w.LastSeq = g.LastSeq
		}
		if d := projectionstest.DiffToken(w, g); d != "" {
			diffs = append(diffs, fmt.Sprintf("token %s: %s", g.ID, d))
		}
		if w.Status != g.Status {
			diffs = append(diffs, fmt.Sprintf("token %s: status: want %s, got %s", g.ID, w.Status, g.Status))
		}
		if w.OwnerRevoked != g.OwnerRevoked {
			diffs = append(diffs, fmt.Sprintf("token %s: owner_revoked: want %v, got %v", g.ID, w.OwnerRevoked, g.OwnerRevoked))
		}
	}
	for _, id := range slices.SortedFunc(maps.Keys(want), domain.TokenID.Compare) {
		if !seen[id] {
			diffs = append(diffs, fmt.Sprintf("token %s: missing", id))
		}
	}
	return diffs
}

// TestStateAtMatchesFoldAndProjection runs a random history of real domain
// commands over simulated time, stored in a real event store and applied to
// a real read model right after each append as the live projectors do. At
// 20 instants of the run (some exactly at an event's time, one before the
// first event) it reads the read model as it stood then. Afterwards StateAt
// at each instant must equal, column by column and with statuses, both an
// independent fold of the events up to that instant and what the read model
// answered at that instant.
func TestStateAtMatchesFoldAndProjection(t *testing.T) {
	t.Parallel()
	l := newLedger(t)
	const seed = 20261122
	sim := newSimulation(t, l, seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	// Simulated time starts at the real now (the streams' own timestamps
	// are real time) and only moves forward.
	start := time.Now().UTC().Truncate(time.Microsecond)
	const steps = 600
	times := make([]time.Time, steps)
	now := start
	for i := range times {
		switch rng.IntN(10) {
		case 0:
			now = now.Add(time.Duration(1+rng.IntN(36)) * time.Hour)
		case 1:
			// Several commands at one instant.
		default:
			now = now.Add(time.Duration(1+rng.IntN(90*60)) * time.Second)
		}
		times[i] = now
	}
	instants := []time.Time{start}
	for range 5 {
		instants = append(instants, times[rng.IntN(steps)])
	}
	for len(instants) < 20 {
		instants = append(instants, start.Add(time.Duration(rng.Int64N(int64(now.Sub(start))))))
	}
	slices.SortFunc(instants, time.Time.Compare)

	clock := domain.NewManualClock(start)
	var seen []projectionAt
	pending := instants
	for _, at := range times {
		for len(pending) > 0 && pending[0].Before(at) {
			seen = append(seen, snapshot(t, l.read, pending[0]))
			pending = pending[1:]
		}
		clock.Set(at)
		sim.step(clock.Now())
	}
	for _, at := range pending {
		seen = append(seen, snapshot(t, l.read, at))
	}
	t.Logf("%d lifecycle and %d usage events; commands %v", len(l.lifecycle), len(l.usage), sim.done)
	for _, kind := range []string{"issue", "use", "extend", "set_expiry", "revoke", "rotate", "revoke_owner", "revoke_family"} {
		if sim.done[kind] == 0 {
			t.Fatalf("the history has no %s; choose another seed", kind)
		}
	}

	ctx := context.Background()
	statuses := map[domain.TokenStatus]int{}
	ownerRevoked, used := 0, 0
	for i, p := range seen {
		t.Run(fmt.Sprintf("T%02d", i), func(t *testing.T) {
			got, err := audit.StateAt(ctx, l.store, p.at, nil)
			if err != nil {
				t.Fatalf("StateAt(%s): %v", p.at, err)
			}
			if !got.At.Equal(p.at) {
				t.Errorf("At = %s, want %s", got.At, p.at)
			}
			if got.Sequence != p.checkpoint {
				t.Errorf("Sequence = %d, want the projection's checkpoint then, %d", got.Sequence, p.checkpoint)
			}
			if !slices.IsSortedFunc(got.Tokens, func(a, b projections.TokenRow) int { return a.ID.Compare(b.ID) }) {
				t.Error("tokens are not in id order")
			}
			for _, r := range got.Tokens {
				if !r.SecretHash.IsZero() {
					t.Fatalf("token %s: StateAt gives the secret's hash", r.ID)
				}
				statuses[r.Status]++
				if r.OwnerRevoked {
					ownerRevoked++
				}
				if r.UseCount > 0 {
					used++
				}
			}
			for _, d := range diffRows(fold(l, p.at), got.Tokens, false) {
				t.Errorf("against the fold at %s: %s", p.at.Format(time.RFC3339Nano), d)
			}
			for _, d := range diffRows(p.rows, got.Tokens, true) {
				t.Errorf("against the read model at %s: %s", p.at.Format(time.RFC3339Nano), d)
			}
		})
	}
	if len(seen[0].rows) != 0 {
		t.Errorf("the read model held %d tokens before the first event", len(seen[0].rows))
	}
	// The comparisons above prove something only if the history reached
	// every status at the instants compared.
	if statuses[domain.StatusActive] == 0 || statuses[domain.StatusExpired] == 0 || statuses[domain.StatusRevoked] == 0 || ownerRevoked == 0 || used == 0 {
		t.Errorf("the instants compared saw statuses %v, %d owner-revoked and %d used tokens; want each", statuses, ownerRevoked, used)
	}

	t.Run("one owner", func(t *testing.T) {
		for _, p := range seen[len(seen)-3:] {
			all, err := audit.StateAt(ctx, l.store, p.at, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range sim.owners {
				id := o.ID()
				got, err := audit.StateAt(ctx, l.store, p.at, &id)
				if err != nil {
					t.Fatal(err)
				}
				want := map[domain.TokenID]projections.TokenRow{}
				for _, r := range all.Tokens {
					if r.Owner == id {
						want[r.ID] = r
					}
				}
				if len(want) == 0 {
					t.Errorf("owner %s has no token at %s: the check proves nothing", id, p.at)
				}
				for _, d := range diffRows(want, got.Tokens, true) {
					t.Errorf("owner %s at %s: %s", id, p.at.Format(time.RFC3339Nano), d)
				}
				if got.Sequence != all.Sequence {
					t.Errorf("owner %s: Sequence %d, want %d as without the filter", id, got.Sequence, all.Sequence)
				}
			}
		}
	})
}

// TestStateAtRefusesNoInstant: a zero instant is a caller's mistake, not
// the beginning of time.
func TestStateAtRefusesNoInstant(t *testing.T) {
	t.Parallel()
	if _, err := audit.StateAt(context.Background(), nil, time.Time{}, nil); !errors.Is(err, domain.ErrInvalidArgument) {
		t.Fatalf("StateAt(zero) = %v, want ErrInvalidArgument", err)
	}
}
