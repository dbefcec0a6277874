package domain

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// simulation drives random commands over a ManualClock, storing what they
// record in a stream, and checks the invariants after every step.
type simulation struct {
	t      *testing.T
	rng    *rand.Rand
	clock  *ManualClock
	policy Policy
	s      stream
	owners map[OwnerID]*Owner
	tokens []*Token
	// revokedAt remembers each revocation, to check it never changes.
	revokedAt map[TokenID]time.Time
	ops       map[string]int
}

var simOwners = []OwnerID{"alice", "bob", "team ops/ü"}

func TestRandomCommandsReplayToTheLiveState(t *testing.T) {
	t.Parallel()
	runs, steps := 150, 300
	if testing.Short() {
		runs = 20
	}
	total := map[string]int{}
	for run := range runs {
		sim := &simulation{
			t:         t,
			rng:       rand.New(rand.NewPCG(uint64(run), 0x5eed)),
			clock:     NewManualClock(t0),
			policy:    DefaultPolicy(),
			owners:    map[OwnerID]*Owner{},
			revokedAt: map[TokenID]time.Time{},
			ops:       total,
		}
		sim.policy.AllowNeverExpires = run%2 == 0
		for _, o := range simOwners {
			sim.owners[o] = NewOwner(o)
		}
		for step := range steps {
			sim.step(fmt.Sprintf("run %d step %d", run, step))
		}
		sim.checkReplay(fmt.Sprintf("run %d", run))
	}
	t.Logf("commands: %v", total)
	// Every kind of command must have succeeded often enough to matter.
	for _, op := range []string{"issue", "set expiry", "revoke", "rotate", "use", "extend", "owner revoke"} {
		if total[op] < 100 {
			t.Errorf("only %d successful %s commands: the simulation does not exercise them", total[op], op)
		}
	}
}

func (sim *simulation) pickToken() *Token {
	if len(sim.tokens) == 0 {
		return nil
	}
	return sim.tokens[sim.rng.IntN(len(sim.tokens))]
}

func (sim *simulation) liveSessions(now time.Time) []*Token {
	var out []*Token
	for _, tok := range sim.tokens {
		if tok.Kind() == KindSession && tok.Check(now, nil) == nil {
			out = append(out, tok)
		}
	}
	return out
}

func (sim *simulation) randomDuration(max time.Duration) time.Duration {
	return time.Duration(sim.rng.Int64N(int64(max)))
}

func (sim *simulation) step(where string) {
	t := sim.t
	t.Helper()
	rng := sim.rng
	now := sim.clock.Advance(sim.randomDuration(10 * time.Minute))
	if rng.IntN(50) == 0 {
		now = sim.clock.Advance(sim.randomDuration(20 * 24 * time.Hour))
	}
	m := Meta{Actor: "sim", CorrelationID: where}
	tok := sim.pickToken()
	var (
		op       string
		err      error
		touched  []*Token
		owner    *Owner
		expiries = map[*Token][2]any{}
	)
	snapshot := func(tk *Token) {
		at, ok := tk.ExpiresAt()
		expiries[tk] = [2]any{at, ok}
	}
	for _, tk := range sim.tokens {
		snapshot(tk)
	}
	pendingBefore := 0
	if tok != nil {
		pendingBefore = len(tok.Changes())
	}

	switch r := rng.IntN(100); {
	case r < 20 || tok == nil:
		op = "issue"
		oid := simOwners[rng.IntN(len(simOwners))]
		req := IssueRequest{Owner: oid, Name: "sim", Scopes: []string{"b", "a", "b"}}
		if rng.IntN(3) == 0 {
			req.Kind = KindSession
			if rng.IntN(2) == 0 {
				req.IdleTimeout = time.Duration(1+rng.IntN(120)) * time.Minute
			}
		}
		switch rng.IntN(5) {
		case 0:
			req.ExpiresIn = sim.randomDuration(400 * 24 * time.Hour)
		case 1:
			req.ExpiresAt = ptr(now.Add(sim.randomDuration(48*time.Hour) - time.Hour))
		case 2:
			req.NeverExpires = true
		}
		var o *Owner
		if rng.IntN(4) != 0 {
			o = sim.owners[oid]
		}
		var issued *Token
		issued, _, err = IssueToken(sim.policy, o, req, m, now, seededEntropy(rng.Uint64()))
		if err == nil {
			sim.tokens = append(sim.tokens, issued)
			touched = append(touched, issued)
		}
	case r < 30:
		op = "set expiry"
		var at *time.Time
		if rng.IntN(5) != 0 {
			at = ptr(now.Add(sim.randomDuration(400*24*time.Hour) - time.Hour))
		}
		err = tok.SetExpiry(sim.policy, at, m, now)
		touched = append(touched, tok)
	case r < 38:
		op = "revoke"
		err = tok.Revoke("sim", m, now)
		touched = append(touched, tok)
	case r < 46:
		op = "rotate"
		var o *Owner
		if rng.IntN(2) == 0 {
			o = sim.owners[tok.Owner()]
		}
		var next *Token
		next, _, err = Rotate(sim.policy, o, tok, sim.randomDuration(2*time.Hour), nil, m, now, seededEntropy(rng.Uint64()))
		touched = append(touched, tok)
		if err == nil {
			sim.tokens = append(sim.tokens, next)
			touched = append(touched, next)
		}
	case r < 75:
		op = "use"
		last := now.Add(-sim.randomDuration(10 * time.Minute))
		first := last.Add(-sim.randomDuration(10 * time.Minute))
		err = tok.RecordUse(uint64(1+rng.IntN(1000)), first, last, "192.0.2.1", m, now)
		touched = append(touched, tok)
		if err == nil {
			sim.checkExpiryUnchanged(where, tok, expiries[tok], "a recorded use")
		}
	case r < 95:
		op = "extend"
		if live := sim.liveSessions(now); len(live) > 0 && rng.IntN(5) != 0 {
			tok = live[rng.IntN(len(live))]
			pendingBefore = len(tok.Changes())
		}
		wasExpired := tok.Check(now, nil) == ErrTokenExpired
		var extended bool
		extended, err = tok.ExtendSession(now.Add(-sim.randomDuration(5*time.Minute)), sim.policy.SessionExtendStep, m, now)
		touched = append(touched, tok)
		if tok.Kind() == KindAPI || wasExpired || !extended {
			sim.checkExpiryUnchanged(where, tok, expiries[tok], "an extension of an api token, an expired session or a debounced one")
		}
		if err == nil && !extended {
			op = "extend (nothing to do)"
		}
	default:
		op = "owner revoke"
		owner = sim.owners[simOwners[rng.IntN(len(simOwners))]]
		var until *time.Time
		if rng.IntN(3) == 0 {
			until = ptr(now.Add(sim.randomDuration(6 * time.Hour)))
		}
		err = owner.RevokeTokens(until, "sim", m, now)
	}

	if err != nil {
		if tok != nil && len(tok.Changes()) != pendingBefore {
			t.Fatalf("%s: refused %s recorded events: %v", where, op, err)
		}
		op += " (refused)"
	}
	sim.ops[op]++
	// Store in the order a service would append: the changed tokens, then
	// the owner.
	for _, tk := range touched {
		sim.s.store(t, tk)
	}
	if owner != nil {
		sim.s.store(t, owner)
	}
	sim.checkInvariants(where, now)
}

func (sim *simulation) checkExpiryUnchanged(where string, tok *Token, before [2]any, what string) {
	sim.t.Helper()
	at, ok := tok.ExpiresAt()
	if !reflect.DeepEqual([2]any{at, ok}, before) {
		sim.t.Fatalf("%s: %s moved the expiry of %s from %v to %v", where, what, tok.ID(), before, at)
	}
}

func (sim *simulation) checkInvariants(where string, now time.Time) {
	t := sim.t
	t.Helper()
	for _, tok := range sim.tokens {
		exp, expires := tok.ExpiresAt()
		created := tok.CreatedAt()
		if tok.Kind() == KindSession {
			capAt, ok := tok.AbsoluteExpiresAt()
			switch {
			case !expires || !ok:
				t.Fatalf("%s: session %s without expiry or cap", where, tok.ID())
			case exp.After(capAt):
				t.Fatalf("%s: session %s expires at %v, past its cap %v", where, tok.ID(), exp, capAt)
			case capAt.After(created.Add(sim.policy.SessionMaxLifetime)):
				t.Fatalf("%s: session %s cap beyond the session max lifetime", where, tok.ID())
			}
		} else {
			switch {
			case !expires && !sim.policy.AllowNeverExpires:
				t.Fatalf("%s: token %s never expires against the policy", where, tok.ID())
			case expires && exp.After(created.Add(sim.policy.MaxLifetime)):
				t.Fatalf("%s: token %s expires beyond the max lifetime", where, tok.ID())
			}
		}
		at, revoked := tok.RevokedAt()
		if first, seen := sim.revokedAt[tok.ID()]; seen && (!revoked || !at.Equal(first)) {
			t.Fatalf("%s: token %s came back from its revocation", where, tok.ID())
		}
		if revoked {
			sim.revokedAt[tok.ID()] = at
			if tok.Status(now, sim.owners[tok.Owner()]) != StatusRevoked {
				t.Fatalf("%s: revoked token %s is %s", where, tok.ID(), tok.Status(now, nil))
			}
		}
		if len(tok.Changes()) != 0 {
			t.Fatalf("%s: token %s has unstored changes", where, tok.ID())
		}
	}
}

// checkReplay rebuilds every aggregate from the stream — directly, through
// the registry's encoding, and as one State fold — and compares it with the
// live aggregate.
func (sim *simulation) checkReplay(where string) {
	t := sim.t
	t.Helper()
	reg := NewDefaultRegistry()
	decoded := make([]Envelope, len(sim.s.events))
	for i, e := range sim.s.events {
		d, err := reg.Unmarshal(mustMarshal(t, reg, e))
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		d.Sequence = e.Sequence
		decoded[i] = d
	}
	st := NewState()
	for _, e := range decoded {
		st.Apply(e)
	}
	if st.Len() != len(sim.tokens) {
		t.Fatalf("%s: State has %d tokens, want %d", where, st.Len(), len(sim.tokens))
	}
	now := sim.clock.Now()
	for _, live := range sim.tokens {
		id := live.ID().String()
		direct, err := TokenFromHistory(sim.s.of(AggregateToken, id))
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		sameTokenState(t, direct, live)
		var history []Envelope
		for _, e := range decoded {
			if e.AggregateKind == AggregateToken && e.AggregateID == id {
				history = append(history, e)
			}
		}
		viaJSON, err := TokenFromHistory(history)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		sameTokenState(t, viaJSON, live)
		folded, ok := st.Token(live.ID())
		if !ok {
			t.Fatalf("%s: token %s missing from the State", where, id)
		}
		sameTokenState(t, folded, live)
		if got, want := st.Check(live.ID(), now), live.Check(now, sim.owners[live.Owner()]); got != want {
			t.Fatalf("%s: State.Check = %v, live Check = %v", where, got, want)
		}
	}
	for oid, live := range sim.owners {
		rebuilt, err := OwnerFromHistory(oid, sim.s.of(AggregateOwner, string(oid)))
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if !reflect.DeepEqual(rebuilt.st, live.st) {
			t.Fatalf("%s: owner %q rebuilt %+v, live %+v", where, oid, rebuilt.st, live.st)
		}
		if folded, ok := st.Owner(oid); ok && !reflect.DeepEqual(folded.st, live.st) {
			t.Fatalf("%s: owner %q folded %+v, live %+v", where, oid, folded.st, live.st)
		}
	}
}
