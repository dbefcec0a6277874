package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
)

// TimeLayout is how entries write instants: UTC, to the second.
const TimeLayout = "2006-01-02 15:04:05"

// actorTokenPrefix starts an actor that is a token: "token:<id>".
const actorTokenPrefix = "token:"

// Entry is one event of a history, told for people.
type Entry struct {
	// Time is the event's time.
	Time time.Time
	// Sequence is the event's position in its stream.
	Sequence uint64
	// Type is the event's type.
	Type domain.EventType
	// Subject is what the event is about: "token <id>" or "owner <id>".
	Subject string
	// Actor is who caused the event, as recorded, followed by the owner
	// of the acting token when it is one and known: "token:<id> (owner
	// admin)".
	Actor string
	// Text is the event as a sentence, starting with what happened:
	// "revoked by token:<id> (owner admin), reason: leaked".
	Text string
}

// String returns the entry as one line: its time and its text.
func (e Entry) String() string {
	return e.Time.UTC().Format(TimeLayout) + "  " + e.Text
}

// OwnerOf tells whose token id is; ok is false when that is not known.
type OwnerOf func(id domain.TokenID) (owner domain.OwnerID, ok bool)

// Timeline tells events, in the order given, as entries. Actors of the
// form "token:<id>" are resolved to "token:<id> (owner X)": from the
// token.issued events among events themselves, else by asking owners,
// once per token (owners may be nil). Unknown event types are told by
// their name and actor. No entry contains a secret's hash.
func Timeline(events []domain.Envelope, owners OwnerOf) []Entry {
	known := map[domain.TokenID]domain.OwnerID{}
	for _, e := range events {
		if d, ok := domain.PayloadAs[domain.TokenIssued](e.Data); ok {
			if id, ok := e.TokenID(); ok {
				known[id] = d.Owner
			}
		}
	}
	asked := map[domain.TokenID]bool{}
	actor := func(a string) string {
		rest, ok := strings.CutPrefix(a, actorTokenPrefix)
		if !ok {
			return text(a)
		}
		id, err := domain.ParseTokenID(rest)
		if err != nil {
			return text(a)
		}
		o, ok := known[id]
		if !ok && owners != nil && !asked[id] {
			asked[id] = true
			if o, ok = owners(id); ok {
				known[id] = o
			}
		}
		if !ok {
			return text(a)
		}
		return text(a) + " (owner " + text(string(o)) + ")"
	}
	out := make([]Entry, 0, len(events))
	for _, e := range events {
		en := Entry{
			Time:     e.Time,
			Sequence: e.Sequence,
			Type:     e.Type,
			Subject:  string(e.AggregateKind) + " " + text(e.AggregateID),
			Actor:    actor(e.Actor),
		}
		en.Text = sentence(e, en.Actor)
		out = append(out, en)
	}
	return out
}

// sentence tells event e, caused by actor (already resolved).
func sentence(e domain.Envelope, actor string) string {
	var b strings.Builder
	switch e.Type {
	case domain.TypeTokenIssued:
		d, ok := domain.PayloadAs[domain.TokenIssued](e.Data)
		if !ok {
			break
		}
		fmt.Fprintf(&b, "issued by %s for owner %s", actor, text(string(d.Owner)))
		if d.RotatedFrom != nil {
			fmt.Fprintf(&b, ", rotated from %s", d.RotatedFrom)
		}
		if d.Family != nil {
			fmt.Fprintf(&b, ", family %s", d.Family)
		}
		if d.Name != "" {
			fmt.Fprintf(&b, ", name %s", strconv.Quote(d.Name))
		}
		if len(d.Scopes) == 0 {
			b.WriteString(", no scopes")
		} else {
			b.WriteString(", scopes " + text(strings.Join(d.Scopes, " ")))
		}
		if d.Kind == domain.KindSession {
			fmt.Fprintf(&b, ", session with idle timeout %s", d.IdleTimeout.Duration())
			if d.AbsoluteExpiresAt != nil {
				fmt.Fprintf(&b, " and absolute expiry %s", stamp(*d.AbsoluteExpiresAt))
			}
		}
		b.WriteString(", " + expires(d.ExpiresAt))
		return b.String()
	case domain.TypeTokenExpirySet:
		d, ok := domain.PayloadAs[domain.TokenExpirySet](e.Data)
		if !ok {
			break
		}
		if d.ExpiresAt == nil {
			b.WriteString("expiry removed (does not expire)")
		} else {
			b.WriteString("expiry set to " + stamp(*d.ExpiresAt))
		}
		fmt.Fprintf(&b, " (reason: %s", text(string(d.Reason)))
		if d.RotatedTo != nil {
			fmt.Fprintf(&b, ", rotated to %s", d.RotatedTo)
		}
		b.WriteString(") by " + actor)
		return b.String()
	case domain.TypeTokenCIDRsSet:
		d, ok := domain.PayloadAs[domain.TokenCIDRsSet](e.Data)
		if !ok {
			break
		}
		if len(d.AllowedCIDRs) == 0 {
			b.WriteString("network limit lifted (any network) by " + actor)
		} else {
			b.WriteString("allowed networks set to " + text(strings.Join(d.AllowedCIDRs, " ")) + " by " + actor)
		}
		return b.String()
	case domain.TypeTokenRevoked:
		d, ok := domain.PayloadAs[domain.TokenRevoked](e.Data)
		if !ok {
			break
		}
		b.WriteString("revoked by " + actor)
		if d.Reason != "" {
			b.WriteString(", reason: " + text(d.Reason))
		}
		if r := d.Report; r != nil {
			b.WriteString(" (found in " + text(r.Source))
			if r.URL != "" {
				b.WriteString(" at " + text(r.URL))
			}
			b.WriteString(")")
		}
		writeReuse(&b, d.Reuse)
		return b.String()
	case domain.TypeOwnerTokensRevoked:
		d, ok := domain.PayloadAs[domain.OwnerTokensRevoked](e.Data)
		if !ok {
			break
		}
		b.WriteString("all tokens revoked by " + actor)
		if d.Reason != "" {
			b.WriteString(", reason: " + text(d.Reason))
		}
		if d.Until != nil {
			b.WriteString(", no new tokens until " + stamp(*d.Until))
		}
		return b.String()
	case domain.TypeOwnerFamilyRevoked:
		d, ok := domain.PayloadAs[domain.OwnerFamilyRevoked](e.Data)
		if !ok {
			break
		}
		fmt.Fprintf(&b, "rotation family %s revoked by %s", d.Family, actor)
		if d.Reason != "" {
			b.WriteString(", reason: " + text(d.Reason))
		}
		writeReuse(&b, d.Reuse)
		return b.String()
	case domain.TypeTokenUsed:
		d, ok := domain.PayloadAs[domain.TokenUsed](e.Data)
		if !ok {
			break
		}
		switch {
		case d.Count == 1:
			b.WriteString("used once at " + stamp(d.LastAt))
		case d.FirstAt.Equal(d.LastAt):
			fmt.Fprintf(&b, "used %d times at %s", d.Count, stamp(d.LastAt))
		default:
			fmt.Fprintf(&b, "used %d times between %s and %s", d.Count, stamp(d.FirstAt), stamp(d.LastAt))
		}
		if d.ClientAddr != "" {
			b.WriteString(" from " + text(d.ClientAddr))
		}
		return b.String()
	case domain.TypeTokenExpiring:
		d, ok := domain.PayloadAs[domain.TokenExpiring](e.Data)
		if !ok {
			break
		}
		what := "expires"
		if d.Reason == domain.ExpiringByInactivity {
			what = "will be revoked for inactivity"
		}
		fmt.Fprintf(&b, "announced: %s at %s (lead time %s) by %s", what, stamp(d.ExpiresAt), leadText(d.Lead.Duration()), actor)
		return b.String()
	case domain.TypeTokenExpired:
		d, ok := domain.PayloadAs[domain.TokenExpired](e.Data)
		if !ok {
			break
		}
		fmt.Fprintf(&b, "announced: expired at %s by %s", stamp(d.ExpiresAt), actor)
		return b.String()
	case domain.TypeOwnerWebhookDisabled:
		d, ok := domain.PayloadAs[domain.OwnerWebhookDisabled](e.Data)
		if !ok {
			break
		}
		fmt.Fprintf(&b, "webhook endpoint %s (%s) disabled by %s: %s", text(d.Endpoint), text(d.URL), actor, text(d.Reason))
		return b.String()
	}
	return text(string(e.Type)) + " by " + actor
}

// writeReuse tells a presentation of a rotated-out secret, if any: " (the
// rotated-out secret of <id> was presented from <addr> at <route>)".
func writeReuse(b *strings.Builder, r *domain.SecretReuse) {
	if r == nil {
		return
	}
	fmt.Fprintf(b, " (the rotated-out secret of %s was presented", r.Token)
	if r.ClientAddr != "" {
		b.WriteString(" from " + text(r.ClientAddr))
	}
	if r.Route != "" {
		b.WriteString(" at " + text(r.Route))
	}
	b.WriteString(")")
}

// expires tells an expiry: "expires <time>", or "does not expire".
func expires(at *time.Time) string {
	if at == nil {
		return "does not expire"
	}
	return "expires " + stamp(*at)
}

// stamp writes t as entries do.
// leadText writes a lead time in days when it is whole days.
func leadText(d time.Duration) string {
	if d > 0 && d%domain.Day == 0 {
		return strconv.FormatInt(int64(d/domain.Day), 10) + "d"
	}
	return d.String()
}

func stamp(t time.Time) string { return t.UTC().Format(TimeLayout) }

// text keeps free text (reasons, names, actors, owners) on one line:
// printable text as is, anything else Go-quoted.
func text(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// TokenLoader loads a token's stored history; *eventstore.Store
// implements it.
type TokenLoader interface {
	LoadToken(ctx context.Context, id domain.TokenID) ([]domain.Envelope, error)
}

// StoreOwners returns an OwnerOf that finds a token's owner in its
// token.issued event, loaded through l. Answers are cached for the life of
// the returned function, so use one per Timeline call. A token whose
// history cannot be loaded (unknown, or the store failing) is told as
// unknown: a history is still worth showing without the actors' owners.
// The returned function is safe for concurrent use.
func StoreOwners(ctx context.Context, l TokenLoader) OwnerOf {
	var mu sync.Mutex
	cache := map[domain.TokenID]domain.OwnerID{}
	misses := map[domain.TokenID]bool{}
	return func(id domain.TokenID) (domain.OwnerID, bool) {
		mu.Lock()
		defer mu.Unlock()
		if o, ok := cache[id]; ok {
			return o, true
		}
		if misses[id] {
			return "", false
		}
		events, err := l.LoadToken(ctx, id)
		if err == nil && len(events) > 0 {
			if d, ok := domain.PayloadAs[domain.TokenIssued](events[0].Data); ok {
				cache[id] = d.Owner
				return d.Owner, true
			}
		}
		misses[id] = true
		return "", false
	}
}

// HistorySource is the event store as TokenHistory and OwnerHistory read
// it; *eventstore.Store implements it.
type HistorySource interface {
	TokenLoader
	LoadOwner(ctx context.Context, owner domain.OwnerID) ([]domain.Envelope, error)
	// StreamLastSequence returns the lifecycle stream's last sequence.
	StreamLastSequence(ctx context.Context) (uint64, error)
	// ReadTokenEvents passes every event of type t on any token, from
	// sequence from through through, in stream order, to fn.
	ReadTokenEvents(ctx context.Context, t domain.EventType, from, through uint64, fn func(domain.Envelope) error) (last uint64, err error)
}

// TokenLister lists tokens of the read model; *projections.ReadModel
// implements it.
type TokenLister interface {
	List(ctx context.Context, f projections.ListFilter) (projections.Page, error)
}

// ReadModel is the read model as OwnerHistory reads it: the tokens it
// lists and the checkpoint of the projection that wrote them.
// *projections.ReadModel implements it.
type ReadModel interface {
	TokenLister
	// Checkpoint returns the sequence of the last event projection name
	// has applied.
	Checkpoint(ctx context.Context, name string) (uint64, error)
}

// History is a history complete up to a stream sequence.
type History struct {
	// Owner is the owner whose history it is, or the token's owner.
	Owner domain.OwnerID
	// Events are the events, in stream order, every one at or before
	// Sequence.
	Events []domain.Envelope
	// Sequence is the lifecycle stream sequence the history is complete
	// up to: every event of the history stored at or before it is in
	// Events, and none stored after it.
	Sequence uint64
}

// TokenHistory returns everything recorded of token id up to the stream's
// last sequence when it starts: the token's own events, the revocation of
// its rotation family that revoked it (domain.Owner.FamilyRevocationOf,
// which names the reused token, the client address and the route) and the
// owner-wide revocation that revoked it (domain.Owner.RevocationOf), each
// unless the token had been revoked before it (by itself, or the owner-wide
// one by the family's), merged in stream order. Later owner-wide revocations, which change nothing for the token,
// are in its owner's history only. A token never issued is
// domain.ErrNotFound; other errors are the store's or the history's
// (domain.ErrCorruptEvent), wrapped.
func TokenHistory(ctx context.Context, src HistorySource, id domain.TokenID) (History, error) {
	through, err := src.StreamLastSequence(ctx)
	if err != nil {
		return History{}, fmt.Errorf("history of token %s: %w", id, err)
	}
	events, err := src.LoadToken(ctx, id)
	if err != nil {
		return History{}, fmt.Errorf("history of token %s: %w", id, err)
	}
	events = upTo(events, through)
	tok, err := domain.TokenFromHistory(events)
	if err != nil {
		return History{}, fmt.Errorf("history of token %s: %w", id, err)
	}
	ownerEvents, err := src.LoadOwner(ctx, tok.Owner())
	if err != nil {
		return History{}, fmt.Errorf("history of token %s: its owner: %w", id, err)
	}
	ownerEvents = upTo(ownerEvents, through)
	owner, err := domain.OwnerFromHistory(tok.Owner(), ownerEvents)
	if err != nil {
		return History{}, fmt.Errorf("history of token %s: %w", id, err)
	}
	var revocations []uint64
	family, byFamily := owner.FamilyRevocationOf(tok)
	if byFamily {
		revocations = append(revocations, family.Sequence)
	}
	// An owner-wide revocation after the family's changed nothing for the
	// token.
	if rev, ok := owner.RevocationOf(tok); ok && !revokedBefore(events, rev.Sequence) &&
		(!byFamily || rev.Sequence < family.Sequence) {
		revocations = append(revocations, rev.Sequence)
	}
	for _, e := range ownerEvents {
		if slices.Contains(revocations, e.Sequence) {
			events = append(events, e)
		}
	}
	slices.SortFunc(events, bySequence)
	return History{Owner: tok.Owner(), Events: events, Sequence: through}, nil
}

// revokedBefore reports whether a token's events hold its own revocation
// before stream sequence seq.
func revokedBefore(events []domain.Envelope, seq uint64) bool {
	for _, e := range events {
		if e.Type == domain.TypeTokenRevoked && e.Sequence < seq {
			return true
		}
	}
	return false
}

// upTo returns the events, in stream order, at or before sequence through.
func upTo(events []domain.Envelope, through uint64) []domain.Envelope {
	i := len(events)
	for i > 0 && events[i-1].Sequence > through {
		i--
	}
	return events[:i]
}

func bySequence(a, b domain.Envelope) int { return cmp.Compare(a.Sequence, b.Sequence) }

// loadWorkers is how many token histories OwnerHistory loads at once: each
// load is a few round trips to the store.
const loadWorkers = 8

// OwnerHistory returns everything recorded of owner up to the stream's last
// sequence when it starts: its owner-wide events and every event of every
// token of the owner, merged in stream order. An owner without any event
// has an empty history. Errors are the store's or the read model's,
// wrapped.
//
// The owner's tokens are found in two parts (see the package doc): those
// the read model lists, which hold every token issued up to the
// checkpoint of projection, and those whose token.issued the stream holds
// after that checkpoint, read from the stream with a subject filter. Each
// token's events are then loaded from the store.
func OwnerHistory(ctx context.Context, src HistorySource, read ReadModel, projection string, owner domain.OwnerID) (History, error) {
	fail := func(err error) (History, error) {
		return History{}, fmt.Errorf("history of owner %q: %w", owner, err)
	}
	// The checkpoint is read first: the listing that follows then holds
	// at least every token issued up to it, whatever the projector does
	// meanwhile.
	checkpoint, err := read.Checkpoint(ctx, projection)
	if err != nil {
		return fail(fmt.Errorf("read model checkpoint: %w", err))
	}
	through, err := src.StreamLastSequence(ctx)
	if err != nil {
		return fail(err)
	}
	var ids []domain.TokenID
	seen := map[domain.TokenID]bool{}
	add := func(id domain.TokenID) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	f := projections.ListFilter{Owner: &owner, Limit: projections.MaxListLimit}
	for {
		page, err := read.List(ctx, f)
		if err != nil {
			return fail(fmt.Errorf("list its tokens: %w", err))
		}
		for _, row := range page.Items {
			add(row.ID)
		}
		if page.NextCursor == "" {
			break
		}
		f.Cursor = page.NextCursor
	}
	if checkpoint < through {
		_, err := src.ReadTokenEvents(ctx, domain.TypeTokenIssued, checkpoint+1, through, func(e domain.Envelope) error {
			if d, ok := domain.PayloadAs[domain.TokenIssued](e.Data); ok && d.Owner == owner {
				if id, ok := e.TokenID(); ok {
					add(id)
				}
			}
			return nil
		})
		if err != nil {
			return fail(fmt.Errorf("tokens issued after the read model's checkpoint %d: %w", checkpoint, err))
		}
	}
	events, err := src.LoadOwner(ctx, owner)
	if err != nil {
		return fail(err)
	}
	events = upTo(events, through)
	tokens, err := loadTokens(ctx, src, ids)
	if err != nil {
		return fail(err)
	}
	for _, h := range tokens {
		events = append(events, upTo(h, through)...)
	}
	slices.SortFunc(events, bySequence)
	return History{Owner: owner, Events: events, Sequence: through}, nil
}

// loadTokens loads the histories of ids, loadWorkers at a time, and
// returns them in the order of ids. The first error stops the loads.
func loadTokens(ctx context.Context, l TokenLoader, ids []domain.TokenID) ([][]domain.Envelope, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([][]domain.Envelope, len(ids))
	var (
		once     sync.Once
		firstErr error
	)
	fail := func(err error) {
		once.Do(func() { firstErr = err; cancel() })
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(loadWorkers, len(ids)) {
		wg.Go(func() {
			for i := range next {
				h, err := l.LoadToken(ctx, ids[i])
				if err != nil {
					fail(fmt.Errorf("load token %s: %w", ids[i], err))
					continue
				}
				out[i] = h
			}
		})
	}
feed:
	for i := range ids {
		select {
		case next <- i:
		case <-ctx.Done():
			fail(ctx.Err())
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}
