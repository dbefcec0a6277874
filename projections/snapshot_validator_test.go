package projections_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/projections"
)

// TestValidatorSnapshotKeepsWhatCanValidate checks ValidatorSnapshot
// against Snapshot on a random history (owner revocations, rotation
// families, expiries): it sends exactly the rows keep does not leave out
// (expired at or before ExpiredAfter and not rotated out; revoked, by
// itself or its owner, and created at or before RevokedAfter), each with
// the values Snapshot reads, and the same checkpoint and owner
// revocations; Limit bounds the rows sent.
func TestValidatorSnapshotKeepsWhatCanValidate(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	h := projectionstest.RandomHistory(11, projectionstest.HistoryConfig{Tokens: 600, Owners: 12, Events: 6000})
	for i := 0; i < len(h.Events); i += 500 {
		if _, err := s.ApplyBatch(ctx, live, h.Events[i:min(i+500, len(h.Events))]); err != nil {
			t.Fatal(err)
		}
	}
	var all []projections.TokenRow
	want, err := s.Snapshot(ctx, live, func(r projections.TokenRow) error { all = append(all, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	// Cut at the medians, so that both sides of each rule are exercised.
	var created, expires []time.Time
	for _, r := range all {
		created = append(created, r.CreatedAt)
		if !r.ExpiresAt.IsZero() {
			expires = append(expires, r.ExpiresAt)
		}
	}
	slices.SortFunc(created, time.Time.Compare)
	slices.SortFunc(expires, time.Time.Compare)
	keep := projections.ValidatorKeep{ExpiredAfter: expires[len(expires)/2], RevokedAfter: created[len(created)/2]}

	kept := map[domain.TokenID]projections.TokenRow{}
	var counts [2]int // left out, kept
	for _, r := range all {
		expired := !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(keep.ExpiredAfter) && r.RotatedTo.IsZero()
		revoked := (!r.RevokedAt.IsZero() || r.OwnerRevoked) && !r.CreatedAt.After(keep.RevokedAfter)
		if expired || revoked {
			counts[0]++
			continue
		}
		counts[1]++
		kept[r.ID] = r
	}
	if counts[0] == 0 || counts[1] == 0 {
		t.Fatalf("%d rows left out, %d kept: the history does not exercise the filter", counts[0], counts[1])
	}

	got := map[domain.TokenID]bool{}
	var beganWith projections.SnapshotInfo
	info, err := s.ValidatorSnapshot(ctx, live, keep, func(i *projections.SnapshotInfo) { beganWith = *i }, func(v *projections.ValidatorRow) error {
		r, ok := kept[v.ID]
		if !ok {
			t.Errorf("token %s sent, but keep leaves it out", v.ID)
			return nil
		}
		got[v.ID] = true
		var expires int64
		if !r.ExpiresAt.IsZero() {
			expires = r.ExpiresAt.UnixMicro()
		}
		if string(v.Owner) != string(r.Owner) || string(v.Scopes) != strings.Join(r.Scopes, " ") ||
			v.Session != (r.Kind == domain.KindSession) || v.SecretHash != r.SecretHash ||
			v.CreatedAt != r.CreatedAt.UnixMicro() || v.HasExpiry != !r.ExpiresAt.IsZero() || v.ExpiresAt != expires ||
			v.Revoked != !r.RevokedAt.IsZero() || v.OwnerRevoked != r.OwnerRevoked || v.Rotated != !r.RotatedTo.IsZero() ||
			v.Family != r.Family || v.IssuedSeq != r.IssuedSeq {
			t.Errorf("token %s: sent %+v, Snapshot reads %+v", v.ID, *v, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(kept) {
		t.Errorf("%d rows sent, want %d", len(got), len(kept))
	}
	if info.Sequence != want.Sequence || beganWith.Sequence != want.Sequence || len(beganWith.Owners) != len(want.Owners) {
		t.Errorf("checkpoint %d (begin saw %d, %d owners), want %d and %d owners", info.Sequence, beganWith.Sequence, len(beganWith.Owners), want.Sequence, len(want.Owners))
	}

	keep.Limit = 10
	n := 0
	if _, err := s.ValidatorSnapshot(ctx, live, keep, func(*projections.SnapshotInfo) {}, func(*projections.ValidatorRow) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != keep.Limit {
		t.Errorf("%d rows sent with a limit of %d", n, keep.Limit)
	}
}
