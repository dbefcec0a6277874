package projections_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/projections"
)

// TestListFiltersAndPagination walks every filter page by page over a
// random history of 1,050 tokens and checks that the pages together hold
// exactly the tokens the fold selects, each once, in id order, with the
// fold's status.
func TestListFiltersAndPagination(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := projectionstest.RandomHistory(3, projectionstest.HistoryConfig{Tokens: 1050, Owners: 10, Events: 4000})
	s, _ := newStore(t)
	for i := 0; i < len(h.Events); i += 500 {
		apply(t, s, h.Events[i:min(i+500, len(h.Events))]...)
	}
	state := projectionstest.Fold(h.Events)
	now := h.End
	status := func(tk *domain.Token) domain.TokenStatus {
		o, _ := state.Owner(tk.Owner())
		return tk.Status(now, o)
	}
	// The owner filter uses the owner with the most active tokens, so that
	// combined filters select some.
	active := make(map[domain.OwnerID]int)
	var owner domain.OwnerID
	for tk := range state.Tokens() {
		if status(tk) == domain.StatusActive {
			active[tk.Owner()]++
			if active[tk.Owner()] > active[owner] {
				owner = tk.Owner()
			}
		}
	}
	cases := []struct {
		name   string
		filter projections.ListFilter
		want   func(*domain.Token) bool
	}{
		{"no filter", projections.ListFilter{}, func(*domain.Token) bool { return true }},
		{"owner", projections.ListFilter{Owner: &owner}, func(tk *domain.Token) bool { return tk.Owner() == owner }},
		{"active", projections.ListFilter{Status: domain.StatusActive}, func(tk *domain.Token) bool { return status(tk) == domain.StatusActive }},
		{"expired", projections.ListFilter{Status: domain.StatusExpired}, func(tk *domain.Token) bool { return status(tk) == domain.StatusExpired }},
		{"revoked", projections.ListFilter{Status: domain.StatusRevoked}, func(tk *domain.Token) bool { return status(tk) == domain.StatusRevoked }},
		{"owner and revoked", projections.ListFilter{Owner: &owner, Status: domain.StatusRevoked}, func(tk *domain.Token) bool {
			return tk.Owner() == owner && status(tk) == domain.StatusRevoked
		}},
		{"unused for a day, never used included", projections.ListFilter{UnusedFor: 24 * time.Hour}, func(tk *domain.Token) bool {
			at, used := tk.LastUsedAt()
			return !used || at.Before(now.Add(-24*time.Hour))
		}},
		{"expiring within ten days", projections.ListFilter{ExpiringWithin: 10 * 24 * time.Hour}, func(tk *domain.Token) bool {
			at, expires := tk.ExpiresAt()
			return status(tk) == domain.StatusActive && expires && !at.After(now.Add(10*24*time.Hour))
		}},
		{"active, of an owner, unused for an hour", projections.ListFilter{Owner: &owner, Status: domain.StatusActive, UnusedFor: time.Hour}, func(tk *domain.Token) bool {
			at, used := tk.LastUsedAt()
			return tk.Owner() == owner && status(tk) == domain.StatusActive && (!used || at.Before(now.Add(-time.Hour)))
		}},
	}
	for _, tc := range cases {
		for _, limit := range []int{0, 7, 1000} {
			t.Run(fmt.Sprintf("%s, limit %d", tc.name, limit), func(t *testing.T) {
				t.Parallel()
				var want []domain.TokenID
				for tk := range state.Tokens() {
					if tc.want(tk) {
						want = append(want, tk.ID())
					}
				}
				if len(want) == 0 {
					t.Fatal("the history has no token for this filter: the case checks nothing")
				}
				f := tc.filter
				f.Limit, f.Now = limit, now
				pageSize := limit
				if limit == 0 {
					pageSize = projections.DefaultListLimit
				}
				var got []domain.TokenID
				for pages := 0; ; pages++ {
					page, err := s.List(ctx, f)
					if err != nil {
						t.Fatalf("list page %d: %v", pages, err)
					}
					if len(page.Items) > pageSize || (page.NextCursor != "" && len(page.Items) != pageSize) {
						t.Fatalf("page %d has %d items (limit %d, next cursor %q)", pages, len(page.Items), limit, page.NextCursor)
					}
					for _, r := range page.Items {
						tk, ok := state.Token(r.ID)
						if !ok {
							t.Fatalf("listed token %s is not in the fold", r.ID)
						}
						if ws := status(tk); r.Status != ws {
							t.Errorf("token %s listed as %s, the fold says %s", r.ID, r.Status, ws)
						}
						if d := projectionstest.DiffToken(projections.TokenRowFromDomain(tk), r); d != "" {
							t.Errorf("token %s: %s", r.ID, d)
						}
						got = append(got, r.ID)
					}
					if page.NextCursor == "" {
						break
					}
					f.Cursor = page.NextCursor
				}
				if !slices.Equal(got, want) {
					t.Errorf("listed %d tokens, want %d (in id order, each once)", len(got), len(want))
				}
			})
		}
	}

	t.Run("limit above the maximum is lowered to it", func(t *testing.T) {
		t.Parallel()
		page, err := s.List(ctx, projections.ListFilter{Limit: 5000, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != projections.MaxListLimit || page.NextCursor == "" {
			t.Errorf("got %d items, next cursor %q; want %d and more", len(page.Items), page.NextCursor, projections.MaxListLimit)
		}
	})
}

// TestListRefusesInvalidInput checks that malformed filters are reported
// as invalid arguments, not as database errors.
func TestListRefusesInvalidInput(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	cases := []struct {
		name   string
		filter projections.ListFilter
	}{
		{"cursor not base64", projections.ListFilter{Cursor: "!!not base64!!"}},
		{"cursor of the wrong length", projections.ListFilter{Cursor: base64.RawURLEncoding.EncodeToString([]byte("short"))}},
		{"unknown status", projections.ListFilter{Status: "dormant"}},
		{"negative limit", projections.ListFilter{Limit: -1}},
		{"negative unused for", projections.ListFilter{UnusedFor: -time.Hour}},
		{"negative expiring within", projections.ListFilter{ExpiringWithin: -time.Hour}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := s.List(context.Background(), tc.filter); !errors.Is(err, domain.ErrInvalidArgument) {
				t.Errorf("list: %v, want %v", err, domain.ErrInvalidArgument)
			}
		})
	}
}

// TestListOfAnEmptyProjection checks the end of a listing with no rows.
func TestListOfAnEmptyProjection(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	page, err := s.List(context.Background(), projections.ListFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 0 || page.NextCursor != "" {
		t.Errorf("empty projection listed %d items, next cursor %q", len(page.Items), page.NextCursor)
	}
}
