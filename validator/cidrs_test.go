package validator_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/validator"
)

// TestAllowedNetworks checks that a token limited to networks validates
// only from an address inside them, whether the validator loaded it from
// the snapshot or from the tail, that a refusal is ErrIPNotAllowed and is
// not counted as a use, and that a token.cidrs_set from the tail changes
// the networks at once for the token and no other.
func TestAllowedNetworks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	now := time.Now()
	limit := func(cidrs ...string) func(*domain.IssueRequest) {
		return func(r *domain.IssueRequest) { r.AllowedCIDRs = cidrs }
	}
	fromSnapshot, snapTok := e.issue(t, "alice", now, limit("10.0.0.0/8", "2001:db8::/32"))
	sibling, _ := e.issue(t, "alice", now, limit("10.0.0.0/8", "2001:db8::/32"))
	open, _ := e.issue(t, "alice", now, nil)
	e.project(t)
	v := e.start(t, validator.Config{})
	fromTail, _ := e.issue(t, "bob", now, limit("192.0.2.7"))
	ctx := context.Background()

	check := func(t *testing.T, secret, addr string, want error) {
		t.Helper()
		stacktest.Eventually(t, 10*time.Second, func() bool {
			_, err := v.ValidateFrom(ctx, secret, addr)
			return errors.Is(err, want) || (want == nil && err == nil)
		}, "ValidateFrom from "+addr+" never answered "+errText(want))
	}
	for _, tc := range []struct {
		name, secret, addr string
		want               error
	}{
		{"snapshot token, inside", fromSnapshot, "10.1.2.3", nil},
		{"snapshot token, inside, IPv6", fromSnapshot, "2001:db8::5", nil},
		{"snapshot token, IPv4-mapped inside", fromSnapshot, "::ffff:10.1.2.3", nil},
		{"snapshot token, with a port", fromSnapshot, "10.1.2.3:4431", nil},
		{"snapshot token, outside", fromSnapshot, "11.0.0.1", validator.ErrIPNotAllowed},
		{"snapshot token, no address", fromSnapshot, "", validator.ErrIPNotAllowed},
		{"snapshot token, not an address", fromSnapshot, "localhost", validator.ErrIPNotAllowed},
		{"tail token, inside", fromTail, "192.0.2.7", nil},
		{"tail token, outside", fromTail, "192.0.2.8", validator.ErrIPNotAllowed},
		{"a token without networks, anywhere", open, "11.0.0.1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) { check(t, tc.secret, tc.addr, tc.want) })
	}
	if _, err := v.Validate(ctx, fromSnapshot); !errors.Is(err, validator.ErrIPNotAllowed) {
		t.Errorf("Validate (no address) of a limited token: %v, want ErrIPNotAllowed", err)
	}
	if got := v.Stats().IPNotAllowed; got == 0 {
		t.Error("Stats.IPNotAllowed counted no refusal")
	}

	t.Run("a change of networks from the tail applies to the token alone", func(t *testing.T) {
		if err := snapTok.SetAllowedCIDRs([]string{"11.0.0.0/8"}, meta, now); err != nil {
			t.Fatal(err)
		}
		e.storeToken(t, snapTok)
		check(t, fromSnapshot, "11.0.0.1", nil)
		check(t, fromSnapshot, "10.1.2.3", validator.ErrIPNotAllowed)
		check(t, sibling, "10.1.2.3", nil)
		if err := snapTok.SetAllowedCIDRs(nil, meta, now); err != nil {
			t.Fatal(err)
		}
		e.storeToken(t, snapTok)
		check(t, fromSnapshot, "", nil)
	})
}

func errText(err error) string {
	if err == nil {
		return "valid"
	}
	return err.Error()
}

// TestValidateWithCIDRsDoesNotAllocate holds the hot path of a limited
// token to zero allocations, inside and outside its networks.
func TestValidateWithCIDRsDoesNotAllocate(t *testing.T) {
	e := newEnv(t)
	secret, _ := e.issue(t, "alice", time.Now(), func(r *domain.IssueRequest) {
		r.AllowedCIDRs = []string{"10.0.0.0/8", "2001:db8::/32"}
	})
	e.project(t)
	// No flush while counting: AllocsPerRun counts the whole process's
	// allocations, and publishing the usage allocates.
	v := e.start(t, validator.Config{FlushInterval: time.Hour})
	ctx := context.Background()
	for _, addr := range []string{"10.1.2.3", "2001:db8::1", "192.0.2.1"} {
		if n := testing.AllocsPerRun(1000, func() { _, _ = v.ValidateFrom(ctx, secret, addr) }); n != 0 {
			t.Errorf("ValidateFrom from %s: %.1f allocations per run, want 0", addr, n)
		}
	}
}
