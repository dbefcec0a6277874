package domain

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultPolicy(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatalf("DefaultPolicy is invalid: %v", err)
	}
	want := Policy{
		DefaultLifetime:    30 * 24 * time.Hour,
		MaxLifetime:        365 * 24 * time.Hour,
		AllowNeverExpires:  false,
		SessionIdleTimeout: 30 * time.Minute,
		SessionMaxLifetime: 24 * time.Hour,
		SessionExtendStep:  time.Minute,
	}
	if p != want {
		t.Fatalf("DefaultPolicy() = %+v, want %+v", p, want)
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Policy)
		// problems lists a fragment of every problem the error must report.
		problems []string
	}{
		{"default is valid", func(*Policy) {}, nil},
		{"never expires allowed is valid", func(p *Policy) { p.AllowNeverExpires = true }, nil},
		{"zero default lifetime", func(p *Policy) { p.DefaultLifetime = 0 }, []string{"default lifetime must be positive"}},
		{"negative max lifetime", func(p *Policy) { p.MaxLifetime = -time.Hour },
			[]string{"max lifetime must be positive", "default lifetime 720h0m0s exceeds max lifetime"}},
		{"default beyond max", func(p *Policy) { p.DefaultLifetime = p.MaxLifetime + time.Second }, []string{"exceeds max lifetime"}},
		{"idle beyond session max", func(p *Policy) { p.SessionIdleTimeout = 25 * time.Hour }, []string{"session idle timeout 25h0m0s exceeds"}},
		{"step not shorter than idle is valid: sessions slide by half their idle timeout", func(p *Policy) { p.SessionExtendStep = 2 * p.SessionIdleTimeout }, nil},
		{"zero step", func(p *Policy) { p.SessionExtendStep = 0 }, []string{"session extend step must be positive"}},
		{"fractional idle", func(p *Policy) { p.SessionIdleTimeout = 90*time.Second + time.Millisecond }, []string{"not a whole number of seconds"}},
		{"lifetime beyond a century", func(p *Policy) { p.MaxLifetime = 200 * 365 * 24 * time.Hour }, []string{"limited to"}},
		{"everything zero", func(p *Policy) { *p = Policy{} }, []string{
			"default lifetime must be positive", "max lifetime must be positive", "session idle timeout must be positive",
			"session max lifetime must be positive", "session extend step must be positive",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := DefaultPolicy()
			tc.change(&p)
			err := p.Validate()
			if len(tc.problems) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			wantErr(t, err, ErrInvalidArgument)
			for _, frag := range tc.problems {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("Validate() = %q, missing %q", err, frag)
				}
			}
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) || len(joined.Unwrap()) != len(tc.problems) {
				t.Errorf("Validate() reported %q, want exactly %d problems", err, len(tc.problems))
			}
		})
	}
}

// TestCommandsRefuseAnInvalidPolicy: no command can be run with a policy
// that Validate rejects, so a misconfiguration cannot issue immortal or
// over-long tokens.
func TestCommandsRefuseAnInvalidPolicy(t *testing.T) {
	t.Parallel()
	bad := DefaultPolicy()
	bad.MaxLifetime = 0
	tok, _ := issue(t, DefaultPolicy(), nil, IssueRequest{}, t0)
	if _, _, err := IssueToken(bad, nil, IssueRequest{Owner: "alice"}, testMeta, t0, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("IssueToken: %v", err)
	}
	if err := tok.SetExpiry(bad, ptr(t0.Add(time.Hour)), testMeta, t0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("SetExpiry: %v", err)
	}
	if _, _, err := Rotate(bad, nil, tok, 0, nil, testMeta, t0, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Rotate: %v", err)
	}
	if len(tok.Changes()) != 1 {
		t.Errorf("refused commands recorded events: %d changes", len(tok.Changes()))
	}
}
