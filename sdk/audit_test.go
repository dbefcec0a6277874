package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A state larger than MaxResponseBytes is read whole by StateAt and one
// token at a time by StateAtEach; only a single oversized token fails.
func TestStateAtOfALargeLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	const n = 20_000
	want := StateAt{At: at, Sequence: 123456, Items: make([]Token, n)}
	for i := range want.Items {
		want.Items[i] = Token{ID: fmt.Sprintf("tok-%06d", i), Owner: "alice", Name: strings.Repeat("n", 200), Scopes: []string{"read"},
			Kind: "api", Status: "active", CreatedAt: created, UseCount: uint64(i)}
	}
	body, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) <= MaxResponseBytes {
		t.Fatalf("the answer is %d bytes, not over the limit", len(body))
	}
	rec := newRecorder(t, reply{200, nil, string(body)})
	c := newTestClient(t, rec.srv.URL)

	got, err := c.StateAt(ctx, at, "")
	if err != nil {
		t.Fatal(err)
	}
	if !got.At.Equal(want.At) || got.Sequence != want.Sequence || len(got.Items) != n ||
		got.Items[n-1].ID != want.Items[n-1].ID || got.Items[n-1].UseCount != n-1 {
		t.Fatalf("state of %d tokens at %s, sequence %d; want %d at %s, %d", len(got.Items), got.At, got.Sequence, n, want.At, want.Sequence)
	}

	stop := errors.New("enough")
	seen := 0
	_, err = c.StateAtEach(ctx, at, "", func(tok Token) error {
		if tok.ID != want.Items[seen].ID {
			return fmt.Errorf("token %d is %s, want %s", seen, tok.ID, want.Items[seen].ID)
		}
		seen++
		if seen == 100 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || seen != 100 {
		t.Fatalf("StateAtEach after %d tokens: %v, want the callback's error after 100", seen, err)
	}

	huge := `{"at":"2026-11-22T10:00:00Z","sequence":1,"items":[{"id":"x","name":"` + strings.Repeat("x", MaxResponseBytes) + `"}]}`
	rec = newRecorder(t, reply{200, nil, huge})
	if _, err := newTestClient(t, rec.srv.URL).StateAt(ctx, at, ""); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("a token over %d bytes: %v", MaxResponseBytes, err)
	}
}
