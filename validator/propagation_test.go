package validator_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/validator"
)

// TestRevocationPropagationDelay revokes 1000 tokens one after the other
// and measures, for two validators on connections of their own, the delay
// from the return of the append to the first Validate that rejects the
// token. It logs the percentiles; the only assertion is that every
// revocation arrives.
func TestRevocationPropagationDelay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	vs := []*validator.Validator{e.start(t, validator.Config{}), e.start(t, validator.Config{})}
	const n = 1000
	now := time.Now()
	secrets := make([]string, n)
	tokens := make([]*domain.Token, n)
	for i := range n {
		secrets[i], tokens[i] = e.issue(t, "alice", now, nil)
	}
	for _, v := range vs {
		waitApplied(t, v, e.lastSeq(t))
	}

	delays := make([][]time.Duration, len(vs))
	for i, tok := range tokens {
		if err := tok.Revoke("test", meta, now); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Append(context.Background(), eventstore.ExpectToken(tok.ID(), tok.Version()), tok.Changes()...); err != nil {
			t.Fatal(err)
		}
		stored := time.Now()
		seen := make([]bool, len(vs))
		for left := len(vs); left > 0; {
			for k, v := range vs {
				if seen[k] {
					continue
				}
				if _, err := v.Validate(context.Background(), secrets[i]); errors.Is(err, validator.ErrRevoked) {
					delays[k] = append(delays[k], time.Since(stored))
					seen[k] = true
					left--
				}
			}
			if time.Since(stored) > 10*time.Second {
				t.Fatalf("revocation %d not seen by every validator within 10s", i)
			}
			runtime.Gosched()
		}
	}
	for k, d := range delays {
		slices.Sort(d)
		t.Logf("validator %d: %d revocations, delay p50 %s, p99 %s, max %s",
			k+1, len(d), d[len(d)/2], d[len(d)*99/100], d[len(d)-1])
	}
}
