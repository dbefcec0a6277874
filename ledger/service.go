package ledger

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenledger/tokenledger/audit"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/projections"
)

// DefaultMaxAttempts is how many times a mutation is decided and appended
// before a persisting conflict is reported.
const DefaultMaxAttempts = 8

// SecretHolderActor is the actor recorded for revocations by a presented
// secret (RFC 7009), where the holder has no other identity.
const SecretHolderActor = "secret-holder"

// Observer receives events right after the store acknowledged them; a
// validator's Observe. It must not block.
type Observer interface {
	Observe(events ...domain.Envelope)
}

// AppendObserver is told the outcome and latency of every append and of
// every conflict retry (package metrics implements it). op names the use
// case: issue, set_expiry, revoke, rotate, revoke_owner, revoke_secret,
// revoke_family.
type AppendObserver interface {
	ObserveAppend(op string, d time.Duration, err error)
	ObserveRetry(op string)
}

// LocalUsage is what this node itself knows of a token's use: a
// validator's LastUse. It must not block.
type LocalUsage interface {
	LastUse(id domain.TokenID) (at time.Time, ok bool)
}

// Config configures a Service.
type Config struct {
	Store       *eventstore.Store
	Projections *projections.Store
	// Policy bounds every lifetime the service decides.
	Policy domain.Policy
	// Clock tells the time; nil means domain.SystemClock.
	Clock domain.Clock
	// Entropy is the randomness of ids and secrets; nil means crypto/rand.
	Entropy io.Reader
	// Observer, if set, is given every stored event (the local validator,
	// so it sees this node's own writes at once).
	Observer Observer
	// Metrics, if set, observes appends and retries.
	Metrics AppendObserver
	// LocalUsage, if set, answers the last use of a token when the read
	// model cannot be read (the local validator); see View.UsagePartial.
	LocalUsage LocalUsage
	// MaxAttempts bounds decide-and-append attempts on conflicts; zero
	// means DefaultMaxAttempts.
	MaxAttempts int
}

// Service runs the use cases. It is safe for concurrent use.
type Service struct {
	cfg Config
}

// New returns a Service for cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Projections == nil {
		return nil, errors.New("ledger: Store and Projections are required")
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("ledger: policy: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	if cfg.Entropy == nil {
		cfg.Entropy = rand.Reader
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	return &Service{cfg: cfg}, nil
}

// Policy returns the issuing policy.
func (s *Service) Policy() domain.Policy { return s.cfg.Policy }

// Issued is a newly issued token and its secret, which exists only here.
type Issued struct {
	View
	Secret domain.Secret
}

// Issue issues a token for req.Owner (the caller's owner when empty). A
// non-admin caller may issue only for its own owner, only scopes it holds
// itself, and no token that outlives its own: without a requested expiry the
// policy's default is capped at the caller's expiry, and a requested expiry
// after it (or none at all) is ErrLifetimeExceedsCaller.
func (s *Service) Issue(ctx context.Context, c Caller, req domain.IssueRequest, correlationID string) (Issued, error) {
	if req.Owner == "" {
		req.Owner = c.Owner
	}
	if err := domain.ValidateOwner(req.Owner); err != nil {
		return Issued{}, err
	}
	if !c.mayManage(req.Owner) {
		return Issued{}, fmt.Errorf("%w: a token of owner %q may not issue tokens for another owner", ErrForbidden, c.Owner)
	}
	scopes, err := domain.NormalizeScopes(req.Scopes)
	if err != nil {
		return Issued{}, err
	}
	if !c.IsAdmin() {
		for _, sc := range scopes {
			if !c.HasScope(sc) {
				return Issued{}, fmt.Errorf("%w: scope %q is not one of the caller's scopes", ErrForbidden, sc)
			}
		}
	}
	req.Scopes = scopes
	req.NotAfter = c.lifetimeBound()
	m := s.meta(c.Actor(), correlationID)

	var out Issued
	err = s.retry(ctx, "issue", func(now time.Time) error {
		owner, err := s.loadOwner(ctx, req.Owner)
		if err != nil {
			return err
		}
		tok, secret, err := domain.IssueToken(s.cfg.Policy, owner, req, m, now, s.cfg.Entropy)
		if err != nil {
			return lifetimeErr(err)
		}
		if err := s.append(ctx, "issue", tok, func() ([]domain.Envelope, error) {
			return s.cfg.Store.Append(ctx, eventstore.ExpectOwner(req.Owner, owner.Version()), tok.Changes()...)
		}); err != nil {
			return err
		}
		out = Issued{View: view(tok, owner, now), Secret: secret}
		return nil
	})
	return out, err
}

// Get returns token id as of now. Another owner's token is ErrNotFound for
// a non-admin caller.
func (s *Service) Get(ctx context.Context, c Caller, id domain.TokenID) (View, error) {
	tok, owner, err := s.loadForCaller(ctx, c, id)
	if err != nil {
		return View{}, err
	}
	v := view(tok, owner, s.cfg.Clock.Now())
	s.addUsage(ctx, &v)
	return v, nil
}

// SetExpiry sets token id's expiry to at (nil: does not expire). A non-admin
// caller may only shorten it. A revoked token is domain.ErrTokenRevoked (or
// domain.ErrOwnerRevoked).
func (s *Service) SetExpiry(ctx context.Context, c Caller, id domain.TokenID, at *time.Time, correlationID string) (View, error) {
	m := s.meta(c.Actor(), correlationID)
	var out View
	err := s.retry(ctx, "set_expiry", func(now time.Time) error {
		tok, owner, err := s.loadForCaller(ctx, c, id)
		if err != nil {
			return err
		}
		if _, ok := owner.FamilyRevocationOf(tok); ok {
			return fmt.Errorf("set expiry of token %s: %w", id, domain.ErrTokenRevoked)
		}
		if owner.Covers(tok) {
			return fmt.Errorf("set expiry of token %s: %w", id, domain.ErrOwnerRevoked)
		}
		if !c.IsAdmin() && tok.Extends(at) {
			if at == nil {
				return fmt.Errorf("%w: only an admin may remove a token's expiry", ErrForbidden)
			}
			return fmt.Errorf("%w: only an admin may extend a token's expiry", ErrForbidden)
		}
		if err := tok.SetExpiry(s.cfg.Policy, at, m, now); err != nil {
			return err
		}
		if err := s.append(ctx, "set_expiry", tok, func() ([]domain.Envelope, error) {
			return s.cfg.Store.Append(ctx, eventstore.ExpectToken(id, tok.Version()), tok.Changes()...)
		}); err != nil {
			return err
		}
		out = view(tok, owner, now)
		return nil
	})
	if err != nil {
		return View{}, err
	}
	// The event is acknowledged: the answer is built from the aggregate,
	// and the read model only adds the usage, if it can.
	s.addUsage(ctx, &out)
	return out, nil
}

// Revoke revokes token id for reason. Revoking a revoked token (by itself
// or with its rotation family) succeeds and records nothing.
func (s *Service) Revoke(ctx context.Context, c Caller, id domain.TokenID, reason, correlationID string) error {
	tok, owner, err := s.loadForCaller(ctx, c, id)
	if err != nil {
		return err
	}
	if _, ok := owner.FamilyRevocationOf(tok); ok {
		return nil
	}
	return s.revoke(ctx, "revoke", tok, reason, s.meta(c.Actor(), correlationID))
}

// revoke records tok's revocation. A revocation is valid in any state
// (terminal and idempotent), so it is appended without an expectation and
// never conflicts.
func (s *Service) revoke(ctx context.Context, op string, tok *domain.Token, reason string, m domain.Meta) error {
	if err := tok.Revoke(reason, m, s.cfg.Clock.Now()); err != nil {
		return err
	}
	if len(tok.Changes()) == 0 {
		return nil
	}
	return s.append(ctx, op, tok, func() ([]domain.Envelope, error) {
		return s.cfg.Store.Append(ctx, eventstore.ExpectNothing(), tok.Changes()...)
	})
}

// RevokeSecret revokes the token whose secret is presented (RFC 7009):
// possession is the proof. A malformed secret, an unknown token or a secret
// that does not match the token's hash is not an error (the caller learns
// nothing); only a failure to record the revocation is. It reports whether a
// token was found.
func (s *Service) RevokeSecret(ctx context.Context, secret, correlationID string) (found bool, err error) {
	id, hash, err := domain.CheckSecret(secret)
	if err != nil {
		return false, nil
	}
	tok, err := s.loadToken(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	stored := tok.SecretHash()
	if subtle.ConstantTimeCompare(stored[:], hash[:]) != 1 {
		return false, nil
	}
	owner, err := s.loadOwner(ctx, tok.Owner())
	if err != nil {
		return false, err
	}
	if _, ok := owner.FamilyRevocationOf(tok); ok {
		return true, nil
	}
	return true, s.revoke(ctx, "revoke_secret", tok, "revoked by a holder of its secret", s.meta(SecretHolderActor, correlationID))
}

// ReuseDetectionActor is the actor recorded for the revocation of a
// rotation family whose rotated-out secret was presented.
const ReuseDetectionActor = "system:reuse-detection"

// RevokeReusedFamily revokes the whole rotation family of reuse.Token,
// because that token's rotated-out secret was presented after its grace
// (at reuse.Route, from reuse.ClientAddr): one owner.family_revoked event
// on the token's owner, with reason domain.ReasonRotatedSecretReused and
// the reuse, revokes every token of the family issued before it, whatever
// the family's size. It is appended under the owner's expectation, so a
// rotation racing with it either lands before it (and is covered) or is
// decided again and refused. Validators call it off their hot path. A
// token that is not rotated out (unknown, within its grace, revoked
// already) records nothing and is no error; a family already revoked
// records nothing either, so repeated reports append once.
func (s *Service) RevokeReusedFamily(ctx context.Context, reuse domain.SecretReuse) error {
	m := s.meta(ReuseDetectionActor, "")
	return s.retry(ctx, "revoke_family", func(now time.Time) error {
		reused, err := s.loadToken(ctx, reuse.Token)
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !reused.RotatedOut(now) {
			return nil
		}
		owner, err := s.loadOwner(ctx, reused.Owner())
		if err != nil {
			return err
		}
		version := owner.Version()
		if err := owner.RevokeFamily(reused, reuse, m, now); err != nil {
			return err
		}
		if len(owner.Changes()) == 0 {
			return nil
		}
		start := time.Now()
		stored, err := s.cfg.Store.Append(ctx, eventstore.ExpectOwner(owner.ID(), version), owner.Changes()...)
		s.observeAppend("revoke_family", start, err)
		if err != nil {
			return storeErr(err)
		}
		s.observe(stored)
		return owner.MarkStored(sequences(stored)...)
	})
}

// Rotated is the answer of Rotate.
type Rotated struct {
	Issued
	// PreviousExpiresAt is when the old token expires.
	PreviousExpiresAt time.Time
}

// Rotate issues a token with the same owner, name, scopes and kind as token
// id and sets the old one to expire after grace, in one atomic append. For
// a non-admin caller the new token's policy lifetime is capped at the
// caller's own expiry: rotating never extends a caller's life (rotating its
// own token gives a successor that expires when the old token would have).
func (s *Service) Rotate(ctx context.Context, c Caller, id domain.TokenID, grace time.Duration, correlationID string) (Rotated, error) {
	m := s.meta(c.Actor(), correlationID)
	notAfter := c.lifetimeBound()
	var out Rotated
	err := s.retry(ctx, "rotate", func(now time.Time) error {
		old, owner, err := s.loadForCaller(ctx, c, id)
		if err != nil {
			return err
		}
		ownerVersion, oldVersion := owner.Version(), old.Version()
		tok, secret, err := domain.Rotate(s.cfg.Policy, owner, old, grace, notAfter, m, now, s.cfg.Entropy)
		if err != nil {
			if errors.Is(err, domain.ErrPolicyViolation) {
				if _, rotated := old.RotatedTo(); rotated {
					return fmt.Errorf("%w: %w", ErrConflict, err)
				}
			}
			return lifetimeErr(err)
		}
		start := time.Now()
		stored, err := s.cfg.Store.AppendAtomic(ctx,
			eventstore.Change{Expect: eventstore.ExpectToken(id, oldVersion), Events: old.Changes()},
			eventstore.Change{Expect: eventstore.ExpectOwner(owner.ID(), ownerVersion), Events: tok.Changes()},
		)
		s.observeAppend("rotate", start, err)
		if err != nil {
			return storeErr(err)
		}
		s.observe(stored)
		nOld := len(old.Changes())
		if err := markStored(old, stored[:nOld]); err != nil {
			return err
		}
		if err := markStored(tok, stored[nOld:]); err != nil {
			return err
		}
		exp, _ := old.ExpiresAt()
		out = Rotated{Issued: Issued{View: view(tok, owner, now), Secret: secret}, PreviousExpiresAt: exp}
		return nil
	})
	return out, err
}

// OwnerRevocation is the answer of RevokeOwner.
type OwnerRevocation struct {
	Owner         domain.OwnerID
	RevokedBefore time.Time
	// Until is zero when no ban on new tokens is in force.
	Until  time.Time
	Reason string
}

// RevokeOwner revokes every token of owner issued up to now with one event;
// until, if set, blocks new tokens until then. A non-admin caller may revoke
// only its own owner's tokens (its own token included).
func (s *Service) RevokeOwner(ctx context.Context, c Caller, owner domain.OwnerID, until *time.Time, reason, correlationID string) (OwnerRevocation, error) {
	if err := domain.ValidateOwner(owner); err != nil {
		return OwnerRevocation{}, err
	}
	if !c.mayManage(owner) {
		return OwnerRevocation{}, fmt.Errorf("%w: a token of owner %q may not revoke another owner's tokens", ErrForbidden, c.Owner)
	}
	m := s.meta(c.Actor(), correlationID)
	var out OwnerRevocation
	err := s.retry(ctx, "revoke_owner", func(now time.Time) error {
		o, err := s.loadOwner(ctx, owner)
		if err != nil {
			return err
		}
		version := o.Version()
		if err := o.RevokeTokens(until, reason, m, now); err != nil {
			return err
		}
		start := time.Now()
		stored, err := s.cfg.Store.Append(ctx, eventstore.ExpectOwner(owner, version), o.Changes()...)
		s.observeAppend("revoke_owner", start, err)
		if err != nil {
			return storeErr(err)
		}
		s.observe(stored)
		if err := o.MarkStored(sequences(stored)...); err != nil {
			return err
		}
		out = OwnerRevocation{Owner: owner, Reason: o.Reason()}
		out.RevokedBefore, _ = o.RevokedBefore()
		if u, ok := o.Until(); ok && u.After(now) {
			out.Until = u
		}
		return nil
	})
	return out, err
}

// List returns one page of tokens from the read model. A non-admin caller
// lists its own owner's tokens; naming another owner is ErrForbidden.
func (s *Service) List(ctx context.Context, c Caller, f projections.ListFilter) (projections.Page, error) {
	if f.Owner == nil && !c.IsAdmin() {
		own := c.Owner
		f.Owner = &own
	}
	if f.Owner != nil && !c.mayManage(*f.Owner) {
		return projections.Page{}, fmt.Errorf("%w: a token of owner %q may list only its own owner's tokens", ErrForbidden, c.Owner)
	}
	p, err := s.cfg.Projections.List(ctx, f)
	if err != nil {
		if errors.Is(err, domain.ErrInvalidArgument) {
			return projections.Page{}, err
		}
		return projections.Page{}, fmt.Errorf("%w: list tokens: %w", ErrUnavailable, err)
	}
	return p, nil
}

// Events returns token id's history, complete up to the stream sequence it
// names: its stored events and the owner-wide revocation that revoked it,
// in stream order (see audit.TokenHistory). Another owner's token is
// ErrNotFound for a non-admin caller.
func (s *Service) Events(ctx context.Context, c Caller, id domain.TokenID) (audit.History, error) {
	h, err := audit.TokenHistory(ctx, s.cfg.Store, id)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return audit.History{}, fmt.Errorf("token %s: %w", id, domain.ErrNotFound)
	case errors.Is(err, domain.ErrCorruptEvent), errors.Is(err, domain.ErrUnknownEventType),
		errors.Is(err, domain.ErrInvalidArgument):
		return audit.History{}, err
	case err != nil:
		return audit.History{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !c.mayManage(h.Owner) {
		return audit.History{}, fmt.Errorf("token %s: %w", id, domain.ErrNotFound)
	}
	return h, nil
}

// retry runs decide until it succeeds, fails with anything but a store
// conflict, or MaxAttempts ran out. Between attempts it pauses for a
// random part of a growing backoff, so that writers racing for one
// aggregate stop colliding (and a replica that served a load catches up)
// instead of spending every attempt within the same few milliseconds.
func (s *Service) retry(ctx context.Context, op string, decide func(now time.Time) error) error {
	var err error
	backoff := conflictBackoffMin
	for attempt := 0; attempt < s.cfg.MaxAttempts; attempt++ {
		if attempt > 0 {
			if s.cfg.Metrics != nil {
				s.cfg.Metrics.ObserveRetry(op)
			}
			if span := trace.SpanFromContext(ctx); span.IsRecording() {
				span.AddEvent("conflict retry", trace.WithAttributes(
					attribute.String("tokenledger.op", op), attribute.Int("tokenledger.attempt", attempt+1)))
			}
			if werr := sleep(ctx, mrand.N(backoff)+1); werr != nil {
				return fmt.Errorf("%w: %w", ErrUnavailable, werr)
			}
			backoff = min(2*backoff, conflictBackoffMax)
		}
		err = decide(s.cfg.Clock.Now())
		if !errors.Is(err, eventstore.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("%w: gave up after %d attempts: %w", ErrConflict, s.cfg.MaxAttempts, err)
}

// The pauses between conflict retries grow from conflictBackoffMin to
// conflictBackoffMax: DefaultMaxAttempts attempts span about half a
// second at most.
const (
	conflictBackoffMin = 2 * time.Millisecond
	conflictBackoffMax = 128 * time.Millisecond
)

// sleep pauses for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// append stores tok's pending changes with do, tells the observers, and
// marks them stored.
func (s *Service) append(ctx context.Context, op string, tok *domain.Token, do func() ([]domain.Envelope, error)) error {
	start := time.Now()
	stored, err := do()
	s.observeAppend(op, start, err)
	if err != nil {
		return storeErr(err)
	}
	s.observe(stored)
	return markStored(tok, stored)
}

func (s *Service) observeAppend(op string, start time.Time, err error) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.ObserveAppend(op, time.Since(start), err)
	}
}

func (s *Service) observe(stored []domain.Envelope) {
	if s.cfg.Observer != nil && len(stored) > 0 {
		s.cfg.Observer.Observe(stored...)
	}
}

func markStored(tok *domain.Token, stored []domain.Envelope) error {
	if err := tok.MarkStored(sequences(stored)...); err != nil {
		return fmt.Errorf("mark token %s stored: %w", tok.ID(), err)
	}
	return nil
}

func sequences(events []domain.Envelope) []uint64 {
	seqs := make([]uint64, len(events))
	for i, e := range events {
		seqs[i] = e.Sequence
	}
	return seqs
}

// lifetimeErr reports a lifetime beyond the caller's bound (the only bound
// the ledger sets) as ErrLifetimeExceedsCaller.
func lifetimeErr(err error) error {
	if errors.Is(err, domain.ErrLifetimeBound) {
		return fmt.Errorf("%w: %w", ErrLifetimeExceedsCaller, err)
	}
	return err
}

// storeErr passes conflicts through (they are retried) and marks every
// other failure of the store as ErrUnavailable.
func storeErr(err error) error {
	if errors.Is(err, eventstore.ErrConflict) || errors.Is(err, domain.ErrInvalidArgument) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func (s *Service) meta(actor, correlationID string) domain.Meta {
	return domain.Meta{Actor: actor, CorrelationID: correlationID}
}

func (s *Service) loadToken(ctx context.Context, id domain.TokenID) (*domain.Token, error) {
	events, err := s.cfg.Store.LoadToken(ctx, id)
	if err != nil {
		return nil, storeErr(err)
	}
	tok, err := domain.TokenFromHistory(events)
	if err != nil {
		return nil, s.notFoundOr(id, err)
	}
	return tok, nil
}

func (s *Service) notFoundOr(id domain.TokenID, err error) error {
	if errors.Is(err, domain.ErrNotFound) {
		return fmt.Errorf("token %s: %w", id, domain.ErrNotFound)
	}
	return fmt.Errorf("load token %s: %w", id, err)
}

func (s *Service) loadOwner(ctx context.Context, owner domain.OwnerID) (*domain.Owner, error) {
	events, err := s.cfg.Store.LoadOwner(ctx, owner)
	if err != nil {
		return nil, storeErr(err)
	}
	o, err := domain.OwnerFromHistory(owner, events)
	if err != nil {
		return nil, fmt.Errorf("load owner %q: %w", owner, err)
	}
	return o, nil
}

// loadForCaller loads token id and its owner, reporting another owner's
// token to a non-admin caller as ErrNotFound.
func (s *Service) loadForCaller(ctx context.Context, c Caller, id domain.TokenID) (*domain.Token, *domain.Owner, error) {
	tok, err := s.loadToken(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if !c.mayManage(tok.Owner()) {
		return nil, nil, fmt.Errorf("token %s: %w", id, domain.ErrNotFound)
	}
	owner, err := s.loadOwner(ctx, tok.Owner())
	if err != nil {
		return nil, nil, err
	}
	return tok, owner, nil
}

// usageTimeout bounds the read of a token's usage from the read model, so
// that an unreachable PostgreSQL delays an answer by at most this.
const usageTimeout = 2 * time.Second

// addUsage adds the uses recorded in the read model to v. It never fails:
// the read model is not needed for an answer, so when it cannot be read v
// is marked UsagePartial and takes the last use the local validator saw.
func (s *Service) addUsage(ctx context.Context, v *View) {
	ctx, cancel := context.WithTimeout(ctx, usageTimeout)
	defer cancel()
	u, err := s.cfg.Projections.GetUsage(ctx, v.Token.ID())
	switch {
	case errors.Is(err, domain.ErrNotFound):
	case err != nil:
		v.UsagePartial = true
		if s.cfg.LocalUsage == nil {
			return
		}
		if at, ok := s.cfg.LocalUsage.LastUse(v.Token.ID()); ok && at.After(v.LastUsedAt) {
			v.LastUsedAt = at
		}
	default:
		v.UseCount += u.Count
		if u.LastAt.After(v.LastUsedAt) {
			v.LastUsedAt = u.LastAt
		}
	}
}

func view(tok *domain.Token, owner *domain.Owner, now time.Time) View {
	v := View{
		Token:        tok,
		Now:          now,
		Status:       tok.Status(now, owner),
		OwnerRevoked: owner != nil && owner.Covers(tok),
		UseCount:     tok.UseCount(),
	}
	v.OwnerRevocation, _ = owner.RevocationOf(tok)
	v.FamilyRevocation, v.FamilyRevoked = owner.FamilyRevocationOf(tok)
	v.LastUsedAt, _ = tok.LastUsedAt()
	return v
}
