package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/sdk"
)

// TestWriteStateJSON requires the state, written token by token, to be
// exactly what writeJSON writes of it.
func TestWriteStateJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 22, 10, 0, 3, 120000000, time.UTC)
	exp := at.Add(time.Hour)
	reason := "<leaked> & gone"
	tokens := []sdk.Token{
		{ID: "a", Owner: "alice", Name: "ci", Scopes: []string{"read"}, Kind: "api", Status: "active", CreatedAt: at, ExpiresAt: &exp},
		{ID: "b", Owner: "bob", Scopes: []string{}, Kind: "api", Status: "revoked", CreatedAt: at, RevokedAt: &at, RevokedReason: &reason, UseCount: 3},
	}
	for _, n := range []int{0, 1, 2} {
		st := sdk.StateAt{At: at, Sequence: 42, Items: tokens[:n]}
		var want, got bytes.Buffer
		if err := writeJSON(&want, st); err != nil {
			t.Fatal(err)
		}
		if err := writeStateJSON(&got, st); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("%d tokens:\n got %s\nwant %s", n, got.String(), want.String())
		}
	}
}
