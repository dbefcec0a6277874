package projectionstest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tokenledger/tokenledger/domain"
)

// HistoryConfig shapes a random history.
type HistoryConfig struct {
	// Tokens is how many tokens are issued (rotations included).
	Tokens int
	// Owners is how many distinct owners the tokens belong to.
	Owners int
	// Events is the least number of events; the history stops at the first
	// step that reaches it once every token is issued.
	Events int
	// Start is the clock's first reading; zero means 2030-01-01 UTC.
	Start time.Time
	// Odd adds events no command records but a stream may hold after races
	// or bugs, which a fold must ignore: expiry_set and revoked after a
	// revocation, a second token.issued for an id, a second revocation
	// of a rotation family, and events of tokens never issued.
	Odd bool
}

// History is a generated stream: its events, with sequences 1..N, and the
// clock reading after the last one.
type History struct {
	Events []domain.Envelope
	End    time.Time
}

// RandomHistory generates a stream of lifecycle events by running domain
// commands (IssueToken, Rotate, SetExpiry, SetAllowedCIDRs, Revoke, RecordUse, ExtendSession,
// Owner.RevokeTokens, Owner.RevokeFamily) in random order over a domain.ManualClock that moves
// forward between commands, assigning sequences 1..N as a store would. The
// same seed gives the same commands (event ids differ).
func RandomHistory(seed uint64, cfg HistoryConfig) History {
	g := &generator{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		entropy: rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)}),
		owners:  make(map[domain.OwnerID]*domain.Owner),
		policy:  domain.DefaultPolicy(),
	}
	g.policy.AllowNeverExpires = true
	start := cfg.Start
	if start.IsZero() {
		start = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	g.clock = domain.NewManualClock(start)
	for i := range max(cfg.Owners, 1) {
		g.ownerIDs = append(g.ownerIDs, domain.OwnerID(fmt.Sprintf("owner %d/ü.*>", i)))
	}
	for g.issued < cfg.Tokens || len(g.events) < cfg.Events {
		g.clock.Advance(time.Duration(1+g.rng.IntN(600)) * time.Second)
		g.step(cfg)
	}
	return History{Events: g.events, End: g.clock.Now()}
}

type generator struct {
	rng      *rand.Rand
	entropy  *rand.ChaCha8
	clock    *domain.ManualClock
	policy   domain.Policy
	ownerIDs []domain.OwnerID
	owners   map[domain.OwnerID]*domain.Owner
	tokens   []*domain.Token
	issued   int
	events   []domain.Envelope
}

func (g *generator) meta() domain.Meta {
	return domain.Meta{Actor: fmt.Sprintf("user:%d", g.rng.IntN(5)), CorrelationID: "c"}
}

// store appends the pending changes of a token or owner with the next
// sequences, as an event store would.
func (g *generator) store(changes []domain.Envelope, mark func(...uint64) error) {
	seqs := make([]uint64, len(changes))
	for i, e := range changes {
		e.Sequence = uint64(len(g.events) + 1)
		seqs[i] = e.Sequence
		g.events = append(g.events, e)
	}
	if err := mark(seqs...); err != nil {
		panic(fmt.Sprintf("mark stored: %v", err))
	}
}

// raw appends an event no command would record now.
func (g *generator) raw(kind domain.AggregateKind, aggID string, data domain.Event) {
	now := domain.NormalizeTime(g.clock.Now())
	id, err := domain.NewEventID(now, g.entropy)
	if err != nil {
		panic(err)
	}
	g.events = append(g.events, domain.Envelope{
		ID: id, Type: data.EventType(), AggregateKind: kind, AggregateID: aggID,
		Actor: "odd:actor", Time: now, Schema: 1, Data: data, Sequence: uint64(len(g.events) + 1),
	})
}

func (g *generator) owner(id domain.OwnerID) *domain.Owner {
	o := g.owners[id]
	if o == nil {
		o = domain.NewOwner(id)
		g.owners[id] = o
	}
	return o
}

func (g *generator) step(cfg HistoryConfig) {
	now := g.clock.Now()
	// Issues are spread over the whole history, so that it holds tokens
	// of every age.
	left := max(cfg.Events-len(g.events), 1)
	if len(g.tokens) == 0 || (g.issued < cfg.Tokens && g.rng.IntN(left) < 2*(cfg.Tokens-g.issued)) {
		g.issue(now)
		return
	}
	t := g.tokens[g.rng.IntN(len(g.tokens))]
	p := g.rng.IntN(1000)
	switch {
	case p < 500:
		first := now.Add(-time.Duration(g.rng.IntN(3600)) * time.Second)
		last := first.Add(time.Duration(g.rng.IntN(3600)) * time.Second)
		if err := t.RecordUse(uint64(1+g.rng.IntN(1000)), first, last, "192.0.2.1", g.meta(), now); err == nil {
			g.store(t.Changes(), t.MarkStored)
		}
	case p < 650:
		at := now.Add(time.Duration(1+g.rng.IntN(90*24)) * time.Hour)
		var atp *time.Time
		if g.rng.IntN(5) != 0 || t.Kind() == domain.KindSession {
			atp = &at
		}
		if t.Kind() == domain.KindSession {
			if cap, ok := t.AbsoluteExpiresAt(); ok && cap.After(now) {
				at = now.Add(time.Duration(g.rng.Int64N(int64(cap.Sub(now)))) + time.Microsecond)
			}
		}
		if err := t.SetExpiry(g.policy, atp, g.meta(), now); err == nil {
			g.store(t.Changes(), t.MarkStored)
		}
	case p < 750:
		if _, err := t.ExtendSession(now.Add(-time.Duration(g.rng.IntN(600))*time.Second), 0, g.meta(), now); err == nil {
			g.store(t.Changes(), t.MarkStored)
		}
	case p < 770:
		if err := t.Revoke(fmt.Sprintf("reason %d", g.rng.IntN(3)), g.meta(), now); err == nil {
			g.store(t.Changes(), t.MarkStored)
		}
	case p < 800:
		if g.issued >= cfg.Tokens {
			return
		}
		o := g.owner(t.Owner())
		nt, _, err := domain.Rotate(g.policy, o, t, time.Duration(g.rng.IntN(48))*time.Hour, nil, g.meta(), now, g.entropy)
		if err != nil {
			return
		}
		g.store(nt.Changes(), nt.MarkStored)
		g.store(t.Changes(), t.MarkStored)
		g.tokens = append(g.tokens, nt)
		g.issued++
	case p < 804:
		o := g.owner(g.ownerIDs[g.rng.IntN(len(g.ownerIDs))])
		var until *time.Time
		if g.rng.IntN(3) == 0 {
			u := now.Add(time.Duration(1+g.rng.IntN(72)) * time.Hour)
			until = &u
		}
		if err := o.RevokeTokens(until, fmt.Sprintf("compromise %d", g.rng.IntN(3)), g.meta(), now); err == nil {
			g.store(o.Changes(), o.MarkStored)
		}
	case p < 812:
		// A rotated-out secret presented: its family is revoked (once;
		// a family revoked already records nothing).
		var out []*domain.Token
		for _, c := range g.tokens {
			if c.RotatedOut(now) {
				out = append(out, c)
			}
		}
		if len(out) == 0 {
			return
		}
		t := out[g.rng.IntN(len(out))]
		o := g.owner(t.Owner())
		reuse := domain.SecretReuse{Token: t.ID(), ClientAddr: "198.51.100.7", Route: "GET /v1/auth"}
		if err := o.RevokeFamily(t, reuse, g.meta(), now); err == nil {
			g.store(o.Changes(), o.MarkStored)
		}
	case cfg.Odd && p < 900:
		g.odd(t, now)
	case p >= 985:
		// New allowed networks: narrower, wider, or none at all.
		cidrs := [][]string{nil, {"10.0.0.0/8"}, {"192.0.2.0/24", "2001:db8::/32"}}[g.rng.IntN(3)]
		if err := t.SetAllowedCIDRs(cidrs, g.meta(), now); err == nil {
			g.store(t.Changes(), t.MarkStored)
		}
	}
}

func (g *generator) issue(now time.Time) {
	owner := g.ownerIDs[g.rng.IntN(len(g.ownerIDs))]
	req := domain.IssueRequest{
		Owner:  owner,
		Name:   fmt.Sprintf("token %d", g.issued),
		Scopes: []string{"read", fmt.Sprintf("scope:%d", g.rng.IntN(4)), "write"}[:1+g.rng.IntN(3)],
	}
	if g.issued%5 == 2 {
		req.AllowedCIDRs = []string{"198.51.100.0/24"}
	}
	switch g.rng.IntN(4) {
	case 0:
		req.Kind = domain.KindSession
		req.IdleTimeout = time.Duration(1+g.rng.IntN(120)) * time.Minute
	case 1:
		req.NeverExpires = true
	case 2:
		req.ExpiresIn = time.Duration(1+g.rng.IntN(60*24)) * time.Hour
	}
	t, _, err := domain.IssueToken(g.policy, g.owner(owner), req, g.meta(), now, g.entropy)
	if err != nil {
		return // the owner is blocked
	}
	g.store(t.Changes(), t.MarkStored)
	g.tokens = append(g.tokens, t)
	g.issued++
}

// odd appends an event a fold must ignore, or must apply although no
// command of the token's current state would record it.
func (g *generator) odd(t *domain.Token, now time.Time) {
	id := t.ID().String()
	switch g.rng.IntN(5) {
	case 4:
		// A revocation of the token's family no command decided: a second
		// one, as racing reports could record, or one without a reuse.
		g.raw(domain.AggregateOwner, string(t.Owner()), domain.OwnerFamilyRevoked{
			Owner: t.Owner(), Family: t.Family(), Reason: domain.ReasonRotatedSecretReused,
		})
	case 0:
		exp := now.Add(time.Hour)
		g.raw(domain.AggregateToken, id, domain.TokenExpirySet{ExpiresAt: &exp, Reason: domain.ExpirySetByCaller})
	case 1:
		g.raw(domain.AggregateToken, id, domain.TokenRevoked{Reason: "again"})
	case 2:
		var h domain.SecretHash
		h[0], h[31] = 0xAB, byte(g.rng.IntN(256))
		g.raw(domain.AggregateToken, id, domain.TokenIssued{Owner: "someone else", Name: "dup", Scopes: []string{}, Kind: domain.KindAPI, SecretHash: h})
	default:
		unknown, err := domain.NewTokenID(now, g.entropy)
		if err != nil {
			panic(err)
		}
		g.raw(domain.AggregateToken, unknown.String(), domain.TokenUsed{Count: 3, FirstAt: now, LastAt: now})
		g.raw(domain.AggregateToken, unknown.String(), domain.TokenRevoked{Reason: "unknown"})
	}
}

// LifecycleHistory is a random history of at least n lifecycle events
// made by domain commands over a manual clock (RandomHistory), without the
// token.used events, which belong to the usage stream. It ends at the
// returned instant.
func LifecycleHistory(seed uint64, n int) ([]domain.Envelope, time.Time) {
	for total := 3 * n; ; total *= 2 {
		h := RandomHistory(seed, HistoryConfig{
			Tokens: n / 5, Owners: max(n/400, 2), Events: total, Odd: true,
		})
		out := make([]domain.Envelope, 0, n)
		for _, e := range h.Events {
			if e.Type != domain.TypeTokenUsed {
				out = append(out, e)
			}
		}
		if len(out) >= n {
			return out, h.End
		}
	}
}
