package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/sdk"
)

// TestShortIdleSessionKeepsSlidingWhileUsed is the end-to-end regression
// test for sessions whose idle timeout is not longer than the extension
// step: issued with idle_timeout 5s under the default 1 min step and used
// every second through forward-auth, a session used to answer 200 five
// times, then 401, with no extension in its history. Here each use goes the
// whole way (the validator counts it and flushes it to the usage stream,
// the usage consumer slides the session, the validator's tail applies the
// new expiry) before the clock moves on, so the session must stay valid
// for three idle timeouts of steady use, and expire one idle timeout after
// its last use.
func TestShortIdleSessionKeepsSlidingWhileUsed(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	const idle = 5 * time.Second
	d := sdk.Duration(idle)
	session := issue(t, s, s.Admin, sdk.IssueRequest{Owner: "alice", Name: "kiosk", Kind: "session", IdleTimeout: &d})
	id, err := domain.ParseTokenID(session.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 15; i++ {
		s.Clock.Advance(time.Second)
		published := s.API.Validator.Stats().UsesPublished
		if st := authStatus(t, s, session.Secret); st != http.StatusOK {
			t.Fatalf("use %d, %d s after the issue: status %d, want 200 (a session in steady use keeps sliding)", i, i, st)
		}
		waitUseApplied(t, s, published)
	}
	extensions := 0
	history, err := s.Store.LoadToken(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range history {
		if d, ok := e.Data.(domain.TokenExpirySet); ok && d.Reason == domain.ExpirySessionExtended && e.Actor == consumers.SessionSlideActor {
			extensions++
		}
	}
	if extensions < 4 {
		t.Errorf("%d session extensions in 15 s of use every second, want one every 3 s", extensions)
	}
	s.Clock.Advance(idle)
	if st := authStatus(t, s, session.Secret); st != http.StatusUnauthorized {
		t.Errorf("one idle timeout after the last use: status %d, want 401", st)
	}
}

// waitUseApplied waits until the validator has flushed a use counted after
// it had published published uses, the usage consumer has slid the
// sessions of everything in the usage stream, and the validator has
// applied every lifecycle event (the extensions among them).
func waitUseApplied(t *testing.T, s *apitest.Stack, published uint64) {
	t.Helper()
	ctx := context.Background()
	stacktest.Eventually(t, 20*time.Second, func() bool {
		return s.API.Validator.Stats().UsesPublished > published
	}, "the validator did not flush the use")
	stacktest.Eventually(t, 20*time.Second, func() bool {
		info, err := s.Store.State(ctx, eventstore.Usage)
		return err == nil && s.Usage.Stats().SlidThrough >= info.Last
	}, "the usage consumer did not slide through the usage stream")
	last := s.LastSequence(t)
	stacktest.Eventually(t, 20*time.Second, func() bool {
		return s.API.Validator.Status().AppliedSequence >= last
	}, "the validator did not apply the lifecycle stream through %d", last)
}
