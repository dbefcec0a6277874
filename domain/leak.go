package domain

import (
	"fmt"
	"time"
)

// ReasonLeaked is the reason of a revocation because a secret scanner
// reported the token's secret found in public.
const ReasonLeaked = "leaked"

// Limits of a LeakReport's fields, in bytes.
const (
	MaxLeakURLLen    = 2048
	MaxLeakSourceLen = 200
)

// LeakReport is a secret scanner's report of where a token's secret was
// found: the URL of the finding and its source (for GitHub: "content",
// "commit", "pull_request", ...). It never holds the secret.
type LeakReport struct {
	URL    string `json:"url,omitempty"`
	Source string `json:"source"`
}

// Validate checks the report's fields: Source 1 to MaxLeakSourceLen bytes,
// URL at most MaxLeakURLLen, both of valid UTF-8 without control
// characters. Errors wrap ErrInvalidArgument.
func (r LeakReport) Validate() error {
	if err := validateText("leak source", r.Source, 1, MaxLeakSourceLen); err != nil {
		return err
	}
	return validateText("leak url", r.URL, 0, MaxLeakURLLen)
}

// RevokeLeaked revokes the token because report found its secret
// (ReasonLeaked, with the report in the event). A token revoked already
// records nothing: revocation is terminal. Errors wrap ErrNotFound or
// ErrInvalidArgument.
func (t *Token) RevokeLeaked(report LeakReport, m Meta, now time.Time) error {
	if err := t.revokeLeaked(report, m, now); err != nil {
		return t.wrap("revoke leaked", err)
	}
	return nil
}

func (t *Token) revokeLeaked(report LeakReport, m Meta, now time.Time) error {
	if err := t.exists(); err != nil {
		return err
	}
	if err := report.Validate(); err != nil {
		return fmt.Errorf("leak report: %w", err)
	}
	if err := m.Validate(); err != nil {
		return err
	}
	if err := checkNow(now); err != nil {
		return err
	}
	if t.st.revoked {
		return nil
	}
	return t.record(TokenRevoked{Reason: ReasonLeaked, Report: &report}, m, now)
}
