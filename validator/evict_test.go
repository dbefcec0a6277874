package validator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/validator"
)

// TestEvictedTokensAreRefusedLikeUnknownOldIds checks that a revoked
// token and a token expired beyond the eviction grace leave the memory,
// whether the validator learnt them from its tail (and a sweep evicts
// them) or from the snapshot (which is read without them): they are then
// refused with exactly the answer an unknown old id gets, without a store
// lookup. A token expired within the grace is still refused as expired.
func TestEvictedTokensAreRefusedLikeUnknownOldIds(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"tail", "snapshot"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			now := domain.NormalizeTime(time.Now())
			clock := domain.NewManualClock(now)
			cfg := validator.Config{Clock: clock, EvictionGrace: time.Hour, EvictionInterval: time.Hour}
			var v *validator.Validator
			if mode == "tail" {
				v = e.start(t, cfg)
			}
			issued := now.Add(-3 * time.Hour)
			revokedSecret, revokedTok := e.issue(t, "alice", issued, nil)
			e.revoke(t, revokedTok, issued)
			// Expired two hours ago, an hour beyond the grace.
			expiredSecret, _ := e.issue(t, "alice", issued, func(r *domain.IssueRequest) { r.ExpiresIn = time.Hour })
			// Expired half an hour ago, within the grace.
			graceSecret, _ := e.issue(t, "alice", issued, func(r *domain.IssueRequest) { r.ExpiresIn = 150 * time.Minute })
			liveSecret, _ := e.issue(t, "alice", issued, nil)
			if mode == "snapshot" {
				e.project(t)
				v = e.start(t, cfg)
			} else {
				waitApplied(t, v, e.lastSeq(t))
				// Before a sweep, the reasons are precise.
				_, err := v.Validate(context.Background(), revokedSecret)
				wantErr(t, err, validator.ErrRevoked)
				_, err = v.Validate(context.Background(), expiredSecret)
				wantErr(t, err, validator.ErrExpired)
				validator.Evict(v)
				if got := v.Stats().Evicted; got != 2 {
					t.Errorf("%d tokens evicted, want 2", got)
				}
			}
			if got := v.Status().Tokens; got != 2 {
				t.Errorf("%d tokens in memory, want 2", got)
			}

			_, unknownErr := v.Validate(context.Background(), forge(t, issued))
			if !errors.Is(unknownErr, validator.ErrUnknown) {
				t.Fatalf("an unknown old id: %v", unknownErr)
			}
			for name, secret := range map[string]string{"revoked": revokedSecret, "expired beyond the grace": expiredSecret} {
				_, err := v.Validate(context.Background(), secret)
				if err == nil || err.Error() != unknownErr.Error() || !errors.Is(err, validator.ErrUnknown) {
					t.Errorf("the evicted %s token: %v, want the answer to an unknown old id: %v", name, err, unknownErr)
				}
			}
			_, err := v.Validate(context.Background(), graceSecret)
			wantErr(t, err, validator.ErrExpired)
			if _, err := v.Validate(context.Background(), liveSecret); err != nil {
				t.Errorf("a live token: %v", err)
			}
			if st := v.Stats(); st.Lookups != 0 {
				t.Errorf("%d store lookups, want none", st.Lookups)
			}
		})
	}
}

// TestRotatedOutTokenKeptWhileItsFamilyLives checks that a rotated-out
// token expired beyond the eviction grace stays in memory while its
// rotation family has a token that can validate, so that presenting its
// secret is still seen as a reuse, and leaves once the family is gone.
func TestRotatedOutTokenKeptWhileItsFamilyLives(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := domain.NormalizeTime(time.Now())
	clock := domain.NewManualClock(now)
	v := e.start(t, validator.Config{Clock: clock, EvictionGrace: time.Hour, EvictionInterval: time.Hour})
	aSecret, a := e.issue(t, "alice", now.Add(-5*time.Hour), nil)
	b, bSecret, err := domain.Rotate(policy(), nil, a, 0, nil, meta, now.Add(-4*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.storeToken(t, b)
	e.storeToken(t, a)
	waitApplied(t, v, e.lastSeq(t))

	validator.Evict(v)
	_, err = v.Validate(context.Background(), aSecret)
	wantErr(t, err, validator.ErrExpired)

	// The family's last token expires: a day and the grace later, the
	// family is gone and so is the rotated-out token.
	bExp, _ := b.ExpiresAt()
	clock.Set(bExp.Add(2 * time.Hour))
	validator.Evict(v)
	for _, secret := range []string{aSecret, bSecret.Reveal()} {
		_, err := v.Validate(context.Background(), secret)
		wantErr(t, err, validator.ErrUnknown)
	}
	if st := v.Stats(); st.Lookups != 0 || st.Evicted != 2 {
		t.Errorf("%d lookups, %d evicted; want 0 and 2", st.Lookups, st.Evicted)
	}
}
