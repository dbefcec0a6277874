// Package projectionstest helps tests check a projection against the
// reference fold of the same events by domain.State: column-by-column row
// comparison, a comparison of a whole store, and a generator of random but
// valid token histories.
package projectionstest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/projections"
)

// DiffToken compares the stored columns of two token rows (not the
// computed Status fields) and describes the first that differs, as
// `column expires_at: want …, got …`; "" means equal. Times are compared
// as instants, nil and empty scope lists are equal.
func DiffToken(want, got projections.TokenRow) string {
	cols := []struct {
		name string
		eq   bool
		w, g any
	}{
		{"id", want.ID == got.ID, want.ID, got.ID},
		{"owner", want.Owner == got.Owner, want.Owner, got.Owner},
		{"name", want.Name == got.Name, want.Name, got.Name},
		{"scopes", slices.Equal(want.Scopes, got.Scopes), want.Scopes, got.Scopes},
		{"kind", want.Kind == got.Kind, want.Kind, got.Kind},
		{"secret_hash", want.SecretHash == got.SecretHash, want.SecretHash, got.SecretHash},
		{"created_at", want.CreatedAt.Equal(got.CreatedAt), fmtTime(want.CreatedAt), fmtTime(got.CreatedAt)},
		{"expires_at", want.ExpiresAt.Equal(got.ExpiresAt), fmtTime(want.ExpiresAt), fmtTime(got.ExpiresAt)},
		{"idle_timeout_seconds", want.IdleTimeout == got.IdleTimeout, want.IdleTimeout, got.IdleTimeout},
		{"absolute_expires_at", want.AbsoluteExpiresAt.Equal(got.AbsoluteExpiresAt), fmtTime(want.AbsoluteExpiresAt), fmtTime(got.AbsoluteExpiresAt)},
		{"rotated_from", want.RotatedFrom == got.RotatedFrom, fmtID(want.RotatedFrom), fmtID(got.RotatedFrom)},
		{"rotated_to", want.RotatedTo == got.RotatedTo, fmtID(want.RotatedTo), fmtID(got.RotatedTo)},
		{"family", want.Family == got.Family, fmtID(want.Family), fmtID(got.Family)},
		{"revoked_at", want.RevokedAt.Equal(got.RevokedAt), fmtTime(want.RevokedAt), fmtTime(got.RevokedAt)},
		{"revoked_reason", want.RevokedReason == got.RevokedReason, want.RevokedReason, got.RevokedReason},
		{"revoked_by", want.RevokedBy == got.RevokedBy, want.RevokedBy, got.RevokedBy},
		{"last_used_at", want.LastUsedAt.Equal(got.LastUsedAt), fmtTime(want.LastUsedAt), fmtTime(got.LastUsedAt)},
		{"use_count", want.UseCount == got.UseCount, want.UseCount, got.UseCount},
		{"issued_seq", want.IssuedSeq == got.IssuedSeq, want.IssuedSeq, got.IssuedSeq},
		{"last_seq", want.LastSeq == got.LastSeq, want.LastSeq, got.LastSeq},
		{"allowed_cidrs", slices.Equal(want.AllowedCIDRs, got.AllowedCIDRs), want.AllowedCIDRs, got.AllowedCIDRs},
	}
	for _, c := range cols {
		if !c.eq {
			return fmt.Sprintf("column %s: want %v, got %v", c.name, c.w, c.g)
		}
	}
	return ""
}

// DiffOwner is DiffToken for owner revocation rows.
func DiffOwner(want, got projections.OwnerRevocationRow) string {
	cols := []struct {
		name string
		eq   bool
		w, g any
	}{
		{"owner", want.Owner == got.Owner, want.Owner, got.Owner},
		{"revoked_before", want.RevokedBefore.Equal(got.RevokedBefore), fmtTime(want.RevokedBefore), fmtTime(got.RevokedBefore)},
		{"revoked_before_seq", want.RevokedBeforeSeq == got.RevokedBeforeSeq, want.RevokedBeforeSeq, got.RevokedBeforeSeq},
		{"until", want.Until.Equal(got.Until), fmtTime(want.Until), fmtTime(got.Until)},
		{"reason", want.Reason == got.Reason, want.Reason, got.Reason},
		{"last_seq", want.LastSeq == got.LastSeq, want.LastSeq, got.LastSeq},
		{"revocations", slices.EqualFunc(want.Revocations, got.Revocations, sameRevocation), want.Revocations, got.Revocations},
	}
	for _, c := range cols {
		if !c.eq {
			return fmt.Sprintf("column %s: want %v, got %v", c.name, c.w, c.g)
		}
	}
	return ""
}

func sameRevocation(a, b projections.RevocationEntry) bool {
	return a.Sequence == b.Sequence && a.At.Equal(b.At) && a.Until.Equal(b.Until) && a.Reason == b.Reason
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "NULL"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func fmtID(id domain.TokenID) string {
	if id.IsZero() {
		return "NULL"
	}
	return id.String()
}

// Contents is everything a projection holds, as read by Snapshot.
type Contents struct {
	Sequence uint64
	Tokens   map[domain.TokenID]projections.TokenRow
	Owners   map[domain.OwnerID]projections.OwnerRevocationRow
}

// Read reads the whole projection name with Store.Snapshot.
func Read(ctx context.Context, s *projections.ReadModel, name string) (Contents, error) {
	c := Contents{Tokens: make(map[domain.TokenID]projections.TokenRow)}
	info, err := s.Snapshot(ctx, name, func(r projections.TokenRow) error {
		if _, dup := c.Tokens[r.ID]; dup {
			return fmt.Errorf("token %s read twice", r.ID)
		}
		c.Tokens[r.ID] = r
		return nil
	})
	if err != nil {
		return Contents{}, err
	}
	c.Sequence = info.Sequence
	c.Owners = make(map[domain.OwnerID]projections.OwnerRevocationRow, len(info.Owners))
	for _, o := range info.Owners {
		c.Owners[o.Owner] = o
	}
	return c, nil
}

// CompareState lists how c differs from the fold s: missing, extra and
// differing token and owner rows (first differing column each) and, when
// now is not zero, every token whose status at now differs from
// s.Status(id, now). Statuses in c must have been resolved at now. No
// differences gives nil.
func CompareState(s *domain.State, c Contents, now time.Time) []string {
	var diffs []string
	seen := make(map[domain.TokenID]bool, len(c.Tokens))
	for t := range s.Tokens() {
		want := projections.TokenRowFromDomain(t)
		got, ok := c.Tokens[want.ID]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("token %s: missing", want.ID))
			continue
		}
		seen[want.ID] = true
		if d := DiffToken(want, got); d != "" {
			diffs = append(diffs, fmt.Sprintf("token %s: %s", want.ID, d))
		}
		if now.IsZero() {
			continue
		}
		owner, _ := s.Owner(t.Owner())
		if ws := t.Status(now, owner); ws != got.Status {
			diffs = append(diffs, fmt.Sprintf("token %s: status at %s: want %s, got %s", want.ID, fmtTime(now), ws, got.Status))
		}
		if we, ge := t.Check(now, owner), got.StatusError(); we != ge {
			diffs = append(diffs, fmt.Sprintf("token %s: status error at %s: want %v, got %v", want.ID, fmtTime(now), we, ge))
		}
		if rev, _ := owner.RevocationOf(t); !rev.At.Equal(got.OwnerRevokedAt) || rev.Reason != got.OwnerRevokedReason {
			diffs = append(diffs, fmt.Sprintf("token %s: owner revocation: want %s %q, got %s %q",
				want.ID, fmtTime(rev.At), rev.Reason, fmtTime(got.OwnerRevokedAt), got.OwnerRevokedReason))
		}
	}
	for id := range c.Tokens {
		if !seen[id] {
			diffs = append(diffs, fmt.Sprintf("token %s: not in the fold", id))
		}
	}
	wantOwners := 0
	for o := range s.Owners() {
		want, ok := projections.OwnerRowFromDomain(o)
		if !ok {
			continue
		}
		wantOwners++
		got, ok := c.Owners[want.Owner]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("owner %q: missing", want.Owner))
			continue
		}
		if d := DiffOwner(want, got); d != "" {
			diffs = append(diffs, fmt.Sprintf("owner %q: %s", want.Owner, d))
		}
	}
	if wantOwners != len(c.Owners) {
		diffs = append(diffs, fmt.Sprintf("%d owner revocations, the fold has %d", len(c.Owners), wantOwners))
	}
	slices.Sort(diffs)
	return diffs
}

// RequireMatchesState fails tb unless projection name in store holds
// exactly the fold s, with statuses as s gives them at the store's clock
// reading now (zero skips statuses), and its checkpoint is seq.
func RequireMatchesState(tb testing.TB, store *projections.ReadModel, name string, s *domain.State, seq uint64, now time.Time) {
	tb.Helper()
	c, err := Read(context.Background(), store, name)
	if err != nil {
		tb.Fatalf("read projection %q: %v", name, err)
	}
	if c.Sequence != seq {
		tb.Errorf("checkpoint of %q: want %d, got %d", name, seq, c.Sequence)
	}
	if diffs := CompareState(s, c, now); len(diffs) > 0 {
		const show = 20
		more := ""
		if len(diffs) > show {
			more = fmt.Sprintf("\n… and %d more", len(diffs)-show)
			diffs = diffs[:show]
		}
		tb.Fatalf("projection %q differs from the fold (%d tokens):\n%s%s", name, s.Len(), strings.Join(diffs, "\n"), more)
	}
}

// Fold returns the fold of events by domain.State.
func Fold(events []domain.Envelope) *domain.State {
	s := domain.NewState()
	for _, e := range events {
		s.Apply(e)
	}
	return s
}
