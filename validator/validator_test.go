package validator_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/validator"
)

// TestValidateReasons checks every answer of Validate, with the tokens
// known from the snapshot and, separately, learnt from the tail.
func TestValidateReasons(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"snapshot", "tail"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			now := domain.NormalizeTime(time.Now())
			clock := domain.NewManualClock(now)
			var v *validator.Validator
			if mode == "tail" {
				v = e.start(t, validator.Config{Clock: clock})
			}

			okSecret, okTok := e.issue(t, "alice", now, nil)
			neverSecret, _ := e.issue(t, "alice", now, func(r *domain.IssueRequest) { r.NeverExpires = true; r.Scopes = nil })
			sessionSecret, _ := e.issue(t, "alice", now, func(r *domain.IssueRequest) { r.Kind = domain.KindSession })
			// Issued two hours ago with a one-hour lifetime.
			expiredSecret, _ := e.issue(t, "alice", now.Add(-2*time.Hour), func(r *domain.IssueRequest) { r.ExpiresIn = time.Hour })
			revokedSecret, revokedTok := e.issue(t, "alice", now, nil)
			e.revoke(t, revokedTok, now)

			// bob: a token issued before his owner-wide revocation is
			// revoked with it, one issued after it is not; one revoked by
			// itself too reports its own revocation first.
			bobBefore, _ := e.issue(t, "bob", now, nil)
			bobBoth, bobBothTok := e.issue(t, "bob", now, nil)
			e.revoke(t, bobBothTok, now)
			e.revokeOwner(t, "bob", nil, now)
			bobAfter, _ := e.issue(t, "bob", now, nil)

			// carol: banned until an hour from now; a token created before
			// that instant is revoked even if its issue reached the stream
			// after the revocation (an issue racing with the ban).
			until := now.Add(time.Hour)
			carolBefore, _ := e.issue(t, "carol", now, nil)
			e.revokeOwner(t, "carol", &until, now)
			carolRacing, _ := e.issue(t, "carol", now.Add(time.Millisecond), nil)

			if mode == "snapshot" {
				e.project(t)
				v = e.start(t, validator.Config{Clock: clock})
			} else {
				waitApplied(t, v, e.lastSeq(t))
			}

			otherSecret, err := domain.GenerateSecret(okTok.ID(), nil)
			if err != nil {
				t.Fatal(err)
			}
			okExpiry, _ := okTok.ExpiresAt()
			for _, c := range []struct {
				name   string
				secret string
				want   error
				check  func(t *testing.T, p validator.Principal)
			}{
				{name: "an active token is valid", secret: okSecret, check: func(t *testing.T, p validator.Principal) {
					want := validator.Principal{TokenID: okTok.ID(), Owner: "alice", Scopes: []string{"read", "write"}, Kind: domain.KindAPI, ExpiresAt: okExpiry}
					if p.TokenID != want.TokenID || p.Owner != want.Owner || !slices.Equal(p.Scopes, want.Scopes) || p.Kind != want.Kind || !p.ExpiresAt.Equal(want.ExpiresAt) {
						t.Errorf("principal %+v, want %+v", p, want)
					}
					if !p.HasScope("write") || p.HasScope("admin") {
						t.Errorf("HasScope wrong for %v", p.Scopes)
					}
				}},
				{name: "a token that never expires is valid, without expiry", secret: neverSecret, check: func(t *testing.T, p validator.Principal) {
					if !p.ExpiresAt.IsZero() || len(p.Scopes) != 0 {
						t.Errorf("expires at %v, scopes %v; want zero time and no scope", p.ExpiresAt, p.Scopes)
					}
				}},
				{name: "a session is valid as a session", secret: sessionSecret, check: func(t *testing.T, p validator.Principal) {
					if p.Kind != domain.KindSession {
						t.Errorf("kind %q, want session", p.Kind)
					}
				}},
				{name: "garbage is malformed", secret: "Bearer nothing", want: validator.ErrMalformed},
				{name: "a one-character typo is malformed", secret: typo(okSecret), want: validator.ErrMalformed},
				{name: "an old id of no token is unknown", secret: forge(t, now.Add(-time.Hour)), want: validator.ErrUnknown},
				{name: "another secret of a known token id is unknown", secret: otherSecret.Reveal(), want: validator.ErrUnknown},
				{name: "an expired token is expired", secret: expiredSecret, want: validator.ErrExpired},
				{name: "a revoked token is revoked", secret: revokedSecret, want: validator.ErrRevoked},
				{name: "a token issued before its owner's revocation is owner-revoked", secret: bobBefore, want: validator.ErrOwnerRevoked},
				{name: "a token revoked by itself and with its owner is revoked", secret: bobBoth, want: validator.ErrRevoked},
				{name: "a token issued after its owner's revocation is valid", secret: bobAfter},
				{name: "a token created before the owner's until is owner-revoked", secret: carolBefore, want: validator.ErrOwnerRevoked},
				{name: "a token issued after the ban but created before its until is owner-revoked", secret: carolRacing, want: validator.ErrOwnerRevoked},
			} {
				t.Run(c.name, func(t *testing.T) {
					p, err := v.Validate(context.Background(), c.secret)
					wantErr(t, err, c.want)
					if c.check != nil {
						c.check(t, p)
					}
				})
			}
			st := v.Stats()
			if st.Lookups != 0 {
				t.Errorf("%d store lookups, want none: every unknown id was old or known", st.Lookups)
			}
			if st.Malformed != 2 || st.Unknown != 2 || st.Expired != 1 || st.Revoked != 2 || st.OwnerRevoked != 3 {
				t.Errorf("stats %+v", st)
			}
			if got := v.Status().Tokens; got != 10 {
				t.Errorf("%d tokens in memory, want 10", got)
			}
		})
	}
}

// TestErrorsMatchDomainSentinels checks that the validator's reasons and
// the domain's sentinels match each other.
func TestErrorsMatchDomainSentinels(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		err, want error
	}{
		{"malformed", validator.ErrMalformed, domain.ErrMalformedSecret},
		{"unknown", validator.ErrUnknown, domain.ErrNotFound},
		{"expired", validator.ErrExpired, domain.ErrTokenExpired},
		{"revoked", validator.ErrRevoked, domain.ErrTokenRevoked},
		{"owner revoked", validator.ErrOwnerRevoked, domain.ErrOwnerRevoked},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !errors.Is(c.err, c.want) {
				t.Errorf("%v does not match %v", c.err, c.want)
			}
		})
	}
	if errors.Is(validator.ErrUnknown, validator.ErrRevoked) || errors.Is(validator.ErrStale, validator.ErrUnknown) {
		t.Error("distinct reasons match each other")
	}
}

// TestExpiryFollowsTheClock checks the expiry rule at the microsecond
// (expired from the instant of the expiry on, as the domain decides) and
// that a new expiry from the tail moves it.
func TestExpiryFollowsTheClock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := domain.NormalizeTime(time.Now())
	clock := domain.NewManualClock(now)
	v := e.start(t, validator.Config{Clock: clock})
	secret, tok := e.issue(t, "alice", now, func(r *domain.IssueRequest) { r.ExpiresIn = time.Hour })
	waitApplied(t, v, e.lastSeq(t))
	exp, _ := tok.ExpiresAt()

	check := func(at time.Time, want error) {
		t.Helper()
		clock.Set(at)
		_, err := v.Validate(context.Background(), secret)
		wantErr(t, err, want)
		if err == nil && tok.Check(at, nil) != nil || err != nil && !errors.Is(err, tok.Check(at, nil)) {
			t.Fatalf("at %s the validator says %v, the domain %v", at, err, tok.Check(at, nil))
		}
	}
	check(exp.Add(-time.Microsecond), nil)
	check(exp, validator.ErrExpired)
	check(exp.Add(time.Nanosecond), validator.ErrExpired)

	later := exp.Add(time.Hour)
	e.setExpiry(t, tok, later, now)
	waitApplied(t, v, e.lastSeq(t))
	check(exp, nil)
	check(later.Add(-time.Nanosecond), nil)
	check(later, validator.ErrExpired)
}

// TestRevocationSeenByEveryValidator revokes through the store and checks
// that two validators, each on a connection of its own, reject the token.
func TestRevocationSeenByEveryValidator(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v1 := e.start(t, validator.Config{})
	v2 := e.start(t, validator.Config{})
	now := time.Now()
	secret, tok := e.issue(t, "alice", now, nil)
	ownerSecret, _ := e.issue(t, "bob", now, nil)
	for _, v := range []*validator.Validator{v1, v2} {
		stacktest.Eventually(t, 10*time.Second, func() bool {
			_, err := v.Validate(context.Background(), secret)
			return err == nil
		}, "token valid")
	}
	e.revoke(t, tok, time.Now())
	e.revokeOwner(t, "bob", nil, time.Now())
	for i, v := range []*validator.Validator{v1, v2} {
		stacktest.Eventually(t, 10*time.Second, func() bool {
			_, err := v.Validate(context.Background(), secret)
			return errors.Is(err, validator.ErrRevoked)
		}, "validator %d rejects the revoked token", i+1)
		stacktest.Eventually(t, 10*time.Second, func() bool {
			_, err := v.Validate(context.Background(), ownerSecret)
			return errors.Is(err, validator.ErrOwnerRevoked)
		}, "validator %d rejects the owner-revoked token", i+1)
	}
}

// TestObserveAppliesRevocationsAtOnce checks that the validator of the
// node that stored a revocation rejects the token before its tail
// delivers the event.
func TestObserveAppliesRevocationsAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.start(t, validator.Config{})
	now := time.Now()
	secret, tok := e.issue(t, "alice", now, nil)
	ownerSecret, _ := e.issue(t, "bob", now, nil)
	waitApplied(t, v, e.lastSeq(t))
	release := validator.PauseTail(v)
	defer release()

	v.Observe(e.revoke(t, tok, now)...)
	_, err := v.Validate(context.Background(), secret)
	wantErr(t, err, validator.ErrRevoked)
	v.Observe(e.revokeOwner(t, "bob", nil, now)...)
	_, err = v.Validate(context.Background(), ownerSecret)
	wantErr(t, err, validator.ErrOwnerRevoked)

	release()
	last := e.lastSeq(t)
	waitApplied(t, v, last)
	if _, err := v.Validate(context.Background(), secret); !errors.Is(err, validator.ErrRevoked) {
		t.Errorf("after the tail: %v, want revoked", err)
	}
	if _, err := v.Validate(context.Background(), ownerSecret); !errors.Is(err, validator.ErrOwnerRevoked) {
		t.Errorf("after the tail: %v, want owner revoked", err)
	}
}

// TestYoungTokenValidatesBeforeTheTailDeliversIt stores a token while the
// validator's tail is held back: the token validates at once, through a
// store lookup, and the tail's later delivery of the same events changes
// nothing while later events still apply.
func TestYoungTokenValidatesBeforeTheTailDeliversIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.start(t, validator.Config{})
	release := validator.PauseTail(v)
	defer release()

	now := time.Now()
	secret, tok := e.issue(t, "alice", now, nil)
	shorter := domain.NormalizeTime(now.Add(time.Hour))
	e.setExpiry(t, tok, shorter, now)

	p, err := v.Validate(context.Background(), secret)
	wantErr(t, err, nil)
	if !p.ExpiresAt.Equal(shorter) {
		t.Errorf("expires at %s, want %s from the token's whole history", p.ExpiresAt, shorter)
	}
	if st := v.Stats(); st.Lookups != 1 {
		t.Errorf("%d store lookups, want 1", st.Lookups)
	}

	// An expiry set after the lookup must still be applied by the tail;
	// the events the lookup applied must not be applied again (the older
	// expiry_set would move the expiry back).
	longer := domain.NormalizeTime(now.Add(2 * time.Hour))
	e.setExpiry(t, tok, longer, now)
	release()
	waitApplied(t, v, e.lastSeq(t))
	p, err = v.Validate(context.Background(), secret)
	wantErr(t, err, nil)
	if !p.ExpiresAt.Equal(longer) {
		t.Errorf("expires at %s, want %s", p.ExpiresAt, longer)
	}
	if st := v.Status(); st.Tokens != 1 {
		t.Errorf("%d tokens in memory, want 1", st.Tokens)
	}
	e.revoke(t, tok, now)
	stacktest.Eventually(t, 10*time.Second, func() bool {
		_, err := v.Validate(context.Background(), secret)
		return errors.Is(err, validator.ErrRevoked)
	}, "revocation applied after the looked-up events")
	if st := v.Stats(); st.Lookups != 1 {
		t.Errorf("%d store lookups, want 1", st.Lookups)
	}
}

// TestLookupsOfOneIDAreCoalesced sends one young unknown id from 100
// goroutines at once: the store is asked once.
func TestLookupsOfOneIDAreCoalesced(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.start(t, validator.Config{})
	secret := forge(t, time.Now())
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			<-start
			_, err := v.Validate(context.Background(), secret)
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		wantErr(t, err, validator.ErrUnknown)
	}
	st := v.Stats()
	if st.Lookups != 1 {
		t.Errorf("%d store lookups for one id, want 1", st.Lookups)
	}
	if st.LookupsCoalesced+st.NegativeHits != 99 {
		t.Errorf("%d coalesced and %d negative hits, want 99 together", st.LookupsCoalesced, st.NegativeHits)
	}
}

// TestLookupRateLimit sends many distinct young unknown ids: the store is
// asked at most as often as the token bucket allows.
func TestLookupRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now()
	clock := domain.NewManualClock(now)
	v := e.start(t, validator.Config{Clock: clock, LookupRate: 10, LookupBurst: 5})
	validateForged := func(n int) {
		t.Helper()
		for range n {
			_, err := v.Validate(context.Background(), forge(t, clock.Now()))
			wantErr(t, err, validator.ErrUnknown)
		}
	}
	validateForged(200)
	if st := v.Stats(); st.Lookups != 5 || st.LookupsLimited != 195 {
		t.Errorf("burst: %d lookups, %d limited; want 5 and 195", st.Lookups, st.LookupsLimited)
	}
	clock.Advance(time.Second)
	validateForged(50)
	if st := v.Stats(); st.Lookups != 10 || st.LookupsLimited != 240 {
		t.Errorf("after a second at 10/s (burst 5): %d lookups, %d limited; want 10 and 240", st.Lookups, st.LookupsLimited)
	}
}

// TestUsageSumsToValidations validates concurrently while flushes run, then
// closes: the usage stream holds exactly the number of validations of
// every token.
func TestUsageSumsToValidations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.newValidator(t, validator.Config{FlushInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	counts := []int{1, 17, 3000}
	secrets := make([]string, len(counts))
	ids := make([]domain.TokenID, len(counts))
	for i := range counts {
		var tok *domain.Token
		secrets[i], tok = e.issue(t, "alice", time.Now(), nil)
		ids[i] = tok.ID()
	}
	waitApplied(t, v, e.lastSeq(t))
	const workers = 4
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i, n := range counts {
				for k := w; k < n; k += workers {
					if _, err := v.ValidateFrom(context.Background(), secrets[i], "192.0.2.1"); err != nil {
						t.Errorf("validate: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := v.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	sums := e.readUsage(t)
	total := 0
	for i, n := range counts {
		total += n
		if sums.counts[ids[i]] != uint64(n) {
			t.Errorf("token %d: usage stream counts %d uses, want %d", i, sums.counts[ids[i]], n)
		}
		for _, addr := range sums.addrs[ids[i]] {
			if addr != "192.0.2.1" {
				t.Errorf("token %d: a usage event has client address %q", i, addr)
			}
		}
	}
	if st := v.Stats(); st.UsesPublished != uint64(total) || st.Valid != uint64(total) || st.UsageEventsDropped != 0 {
		t.Errorf("stats %+v, want %d uses published and valid, none dropped", st, total)
	}
}

// TestAbruptStopLosesOnlyTheLastInterval stops a validator as a crash
// would: the uses flushed before are all stored, only the uses since the
// last flush are lost.
func TestAbruptStopLosesOnlyTheLastInterval(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.start(t, validator.Config{FlushInterval: time.Hour})
	secret, tok := e.issue(t, "alice", time.Now(), nil)
	waitApplied(t, v, e.lastSeq(t))
	validate := func(n int) {
		t.Helper()
		for range n {
			if _, err := v.Validate(context.Background(), secret); err != nil {
				t.Fatal(err)
			}
		}
	}
	validate(100)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := validator.FlushNow(ctx, v); err != nil {
		t.Fatal(err)
	}
	validate(37)
	validator.Abort(v)
	if got := e.readUsage(t).counts[tok.ID()]; got != 100 {
		t.Errorf("usage stream counts %d uses, want the 100 flushed before the stop", got)
	}
	if _, err := v.Validate(context.Background(), secret); !errors.Is(err, validator.ErrClosed) {
		t.Errorf("after the stop: %v, want closed", err)
	}
}

// TestSnapshotAndTailApplyEachEventOnce projects part of a history,
// appends the rest while a projector keeps running, starts a validator in
// the middle of it, and checks that the validator applied exactly the
// events after its snapshot and decides every token as the domain does.
func TestSnapshotAndTailApplyEachEventOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now()
	clock := domain.NewManualClock(now)
	h := newHistory(t, e, now)
	h.run(t, 40)
	e.project(t)

	// A projector keeps applying small batches while the validator
	// loads its snapshot, so the snapshot is taken at a sequence nobody
	// chose.
	stop := make(chan struct{})
	projected := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				projected <- nil
				return
			default:
			}
			if err := e.projectAll(context.Background()); err != nil {
				projected <- err
				return
			}
		}
	}()
	h.run(t, 40)
	v := e.start(t, validator.Config{Clock: clock})
	h.run(t, 40)
	close(stop)
	if err := <-projected; err != nil {
		t.Fatalf("project: %v", err)
	}

	last := e.lastSeq(t)
	waitApplied(t, v, last)
	st, stats := v.Status(), v.Stats()
	if stats.EventsApplied != last-st.SnapshotSequence {
		t.Errorf("applied %d events after the snapshot at %d, want %d (last sequence %d)",
			stats.EventsApplied, st.SnapshotSequence, last-st.SnapshotSequence, last)
	}
	t.Logf("snapshot at %d of %d events", st.SnapshotSequence, last)

	fold := domain.NewState()
	for _, ev := range e.readAll(t, 1) {
		fold.Apply(ev)
	}
	if st.Tokens != fold.Len() {
		t.Errorf("%d tokens in memory, want %d", st.Tokens, fold.Len())
	}
	for _, at := range []time.Time{now, now.Add(90 * time.Minute)} {
		clock.Set(at)
		for id, secret := range h.secrets {
			_, err := v.Validate(context.Background(), secret)
			want := fold.Check(id, at)
			if (err == nil) != (want == nil) || (want != nil && !errors.Is(err, want)) {
				t.Errorf("token %s at %s: validator says %v, the domain %v", id, at, err, want)
			}
		}
	}
}

// TestLifecycle checks what Validate, Start and Close do before, during
// and after a validator's life.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secret, _ := e.issue(t, "alice", time.Now(), nil)
	v := e.newValidator(t, validator.Config{})
	if _, err := v.Validate(context.Background(), secret); !errors.Is(err, validator.ErrNotStarted) {
		t.Errorf("before Start: %v, want not started", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v.Start(ctx); err == nil {
		t.Error("a second Start succeeded")
	}
	if st := v.Status(); !st.Running || st.Tokens != 1 || st.AppliedSequence != 1 || st.Stale {
		t.Errorf("status %+v", st)
	}
	if _, err := v.Validate(context.Background(), secret); err != nil {
		t.Errorf("running: %v", err)
	}
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := v.Validate(context.Background(), secret); !errors.Is(err, validator.ErrClosed) {
		t.Errorf("after Close: %v, want closed", err)
	}
	if st := v.Status(); st.Running {
		t.Errorf("status %+v after Close", st)
	}

	closedFirst := e.newValidator(t, validator.Config{})
	if err := closedFirst.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := closedFirst.Start(ctx); err == nil {
		t.Error("Start after Close succeeded")
	}
}

// TestConfigValidate checks that New refuses an invalid configuration and
// names every problem.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		cfg   validator.Config
		wants []string
	}{
		{"stores are required", validator.Config{}, []string{"event store", "projections store"}},
		{"negative values are refused", validator.Config{MaxStaleness: -1, FlushInterval: -1, LookupRate: -1, FlushQueue: -1},
			[]string{"max staleness", "flush interval", "lookup rate", "flush queue"}},
		{"the usage actor must be valid text", validator.Config{UsageActor: "a\nb"}, []string{"usage actor"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := validator.New(c.cfg)
			if err == nil {
				t.Fatal("New accepted the configuration")
			}
			for _, want := range c.wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// TestValidateDoesNotAllocate checks that answering from memory allocates
// nothing, whatever the answer. It is not parallel: AllocsPerRun counts
// the allocations of the whole process.
func TestValidateDoesNotAllocate(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	okSecret, _ := e.issue(t, "alice", now, nil)
	revokedSecret, revokedTok := e.issue(t, "alice", now, nil)
	e.revoke(t, revokedTok, now)
	rotatedSecret := e.rotatedOut(t, now)
	v := e.start(t, validator.Config{FlushInterval: time.Hour})
	old := forge(t, now.Add(-time.Hour))
	for _, c := range []struct {
		name   string
		secret string
		want   error
	}{
		{"known token", okSecret, nil},
		{"revoked token", revokedSecret, validator.ErrRevoked},
		// No reuse handler is set, so every presentation is queued again.
		{"rotated-out secret", rotatedSecret, validator.ErrExpired},
		{"unknown old id", old, validator.ErrUnknown},
		{"typo", typo(okSecret), validator.ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			allocs := testing.AllocsPerRun(1000, func() {
				_, err = v.ValidateAt(context.Background(), c.secret, "192.0.2.1", "/v1/auth")
			})
			wantErr(t, err, c.want)
			if allocs != 0 {
				t.Errorf("%v allocations per validation, want 0", allocs)
			}
		})
	}
}

// TestRotatedOutSecretIsReportedOnce checks that presenting a rotated-out
// secret after its grace hands it to the reuse handler, with the client
// address and route, once however often it is presented; a secret within
// its grace is not reported.
func TestRotatedOutSecretIsReportedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now()
	rotated := e.rotatedOut(t, now)
	withinSecret, within := e.issue(t, "alice", now, nil)
	if _, _, err := domain.Rotate(policy(), nil, within, time.Hour, nil, meta, now, nil); err != nil {
		t.Fatal(err)
	}
	e.storeToken(t, within)
	var mu sync.Mutex
	var got []domain.SecretReuse
	v := e.start(t, validator.Config{FlushInterval: time.Hour})
	v.SetReuseHandler(func(_ context.Context, r domain.SecretReuse) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r)
		return nil
	})
	if _, err := v.ValidateAt(context.Background(), withinSecret, "192.0.2.1", "/v1/auth"); err != nil {
		t.Fatalf("a secret within its grace: %v", err)
	}
	for range 1000 {
		if _, err := v.ValidateAt(context.Background(), rotated, "192.0.2.1", "/v1/auth"); !errors.Is(err, validator.ErrExpired) {
			t.Fatalf("rotated-out secret: %v, want ErrExpired", err)
		}
	}
	stacktest.Eventually(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > 0 }, "the reuse is reported")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := v.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].ClientAddr != "192.0.2.1" || got[0].Route != "/v1/auth" {
		t.Fatalf("reports %+v, want one from 192.0.2.1 at /v1/auth", got)
	}
}

// TestCoarseClockFollowsTheWallClock checks that a CoarseClock moves with
// the wall clock, at most about one resolution behind, and stops moving
// once stopped.
func TestCoarseClockFollowsTheWallClock(t *testing.T) {
	t.Parallel()
	c := validator.NewCoarseClock(time.Millisecond)
	defer c.Stop()
	start := time.Now()
	stacktest.Eventually(t, 5*time.Second, func() bool { return !c.Now().Before(start) },
		"the coarse clock reaches the wall clock")
	if got := c.Now(); got.After(time.Now()) || got.Location() != time.UTC {
		t.Errorf("coarse now %s is ahead of the wall clock or not UTC", got)
	}
	c.Stop()
	stopped := c.Now()
	stacktest.Eventually(t, 5*time.Second, func() bool { return time.Since(stopped) > 5*time.Millisecond })
	if !c.Now().Equal(stopped) {
		t.Error("the coarse clock moved after Stop")
	}
}

// LastUse answers the latest use this validator counted, from memory: none
// before the token is used, the use's instant after, and none for a token
// it does not hold.
func TestLastUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := domain.NormalizeTime(time.Now())
	clock := domain.NewManualClock(now)
	v := e.start(t, validator.Config{Clock: clock})
	secret, tok := e.issue(t, "alice", now, nil)
	waitApplied(t, v, e.lastSeq(t))
	if at, ok := v.LastUse(tok.ID()); ok {
		t.Errorf("LastUse before any use = %v, want none", at)
	}
	for _, d := range []time.Duration{time.Second, 3 * time.Second} {
		used := now.Add(d)
		clock.Set(used)
		if _, err := v.Validate(context.Background(), secret); err != nil {
			t.Fatal(err)
		}
		if at, ok := v.LastUse(tok.ID()); !ok || !at.Equal(used) {
			t.Errorf("LastUse after a use at %v = %v, %v", used, at, ok)
		}
	}
	_, other := e.issue(t, "alice", now, nil)
	if _, ok := v.LastUse(other.ID()); ok {
		t.Error("LastUse of a token never used says it was")
	}
}

// TestFamilyRevocationRevokesEveryMember checks that the one
// owner.family_revoked event revokes every token of the rotation family
// issued before it, whether the validator gets it from its tail or from
// the snapshot it starts from, and nothing else: not another family of
// the owner.
func TestFamilyRevocationRevokesEveryMember(t *testing.T) {
	t.Parallel()
	for _, fromSnapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("from the snapshot %v", fromSnapshot), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			now := time.Now()
			aSecret, a := e.issue(t, "alice", now.Add(-3*time.Hour), nil)
			b, bSecret, err := domain.Rotate(policy(), nil, a, 0, nil, meta, now.Add(-2*time.Hour), nil)
			if err != nil {
				t.Fatal(err)
			}
			e.storeToken(t, b)
			e.storeToken(t, a)
			c, cSecret, err := domain.Rotate(policy(), nil, b, 2*time.Hour, nil, meta, now.Add(-time.Hour), nil)
			if err != nil {
				t.Fatal(err)
			}
			e.storeToken(t, c)
			e.storeToken(t, b)
			otherSecret, other := e.issue(t, "alice", now.Add(-3*time.Hour), nil)
			next, nextSecret, err := domain.Rotate(policy(), nil, other, 2*time.Hour, nil, meta, now.Add(-time.Hour), nil)
			if err != nil {
				t.Fatal(err)
			}
			e.storeToken(t, next)
			e.storeToken(t, other)

			revokeFamily := func() {
				history, err := e.store.LoadOwner(context.Background(), "alice")
				if err != nil {
					t.Fatal(err)
				}
				o, err := domain.OwnerFromHistory("alice", history)
				if err != nil {
					t.Fatal(err)
				}
				reuse := domain.SecretReuse{Token: a.ID(), ClientAddr: "192.0.2.1", Route: "GET /v1/auth"}
				if err := o.RevokeFamily(a, reuse, meta, now); err != nil {
					t.Fatal(err)
				}
				e.appendEvents(t, eventstore.ExpectOwner("alice", o.Version()), o.Changes()...)
			}
			var v *validator.Validator
			if fromSnapshot {
				revokeFamily()
				e.project(t)
				v = e.start(t, validator.Config{FlushInterval: time.Hour})
			} else {
				v = e.start(t, validator.Config{FlushInterval: time.Hour})
				if _, err := v.Validate(context.Background(), cSecret.Reveal()); err != nil {
					t.Fatalf("the family's live token before the revocation: %v", err)
				}
				revokeFamily()
				waitApplied(t, v, e.lastSeq(t))
			}
			// Revoked tokens of old ids are left out of the snapshot: they
			// are refused like any unknown old id.
			want := validator.ErrRevoked
			if fromSnapshot {
				want = validator.ErrUnknown
			}
			for name, secret := range map[string]string{"rotated out": aSecret, "within its grace": bSecret.Reveal(), "live": cSecret.Reveal()} {
				if _, err := v.Validate(context.Background(), secret); !errors.Is(err, want) {
					t.Errorf("the family's %s token: %v, want %v", name, err, want)
				}
			}
			if st := v.Stats(); st.Lookups != 0 {
				t.Errorf("%d store lookups, want none", st.Lookups)
			}
			for name, secret := range map[string]string{"within its grace": otherSecret, "live": nextSecret.Reveal()} {
				if _, err := v.Validate(context.Background(), secret); err != nil {
					t.Errorf("another family's %s token: %v", name, err)
				}
			}
		})
	}
}

// TestOneUsageMessagePerFlush: a flush writes the use of every token used
// in the interval as one message, whatever the number of tokens.
func TestOneUsageMessagePerFlush(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := e.start(t, validator.Config{FlushInterval: time.Hour})
	const tokens = 200
	secrets := make([]string, tokens)
	for i := range secrets {
		secrets[i], _ = e.issue(t, "alice", time.Now(), nil)
	}
	waitApplied(t, v, e.lastSeq(t))
	for i, s := range secrets {
		for range i%3 + 1 {
			if _, err := v.ValidateFrom(context.Background(), s, "192.0.2.9"); err != nil {
				t.Fatalf("validate: %v", err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	info, err := e.store.State(ctx, eventstore.Usage)
	if err != nil {
		t.Fatal(err)
	}
	sums := e.readUsage(t)
	if info.Msgs != 1 || len(sums.counts) != tokens {
		t.Fatalf("usage stream holds %d messages for %d tokens, want 1 message for %d", info.Msgs, len(sums.counts), tokens)
	}
}
