package api

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// The refusal log writes at most one line per token per window and counts
// the ones it left out in the next; requests without a token id are
// limited per client address.
func TestRefusalLogIsRateLimitedPerToken(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var buf bytes.Buffer
	now := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	l := newRefusalLog(slog.New(slog.NewJSONHandler(&lockedWriter{mu: &mu, w: &buf}, nil)), func() time.Time { return now })
	ctx := context.Background()
	for range 50 {
		l.refused(ctx, "01JD8XK2M3N4P5Q6R7S8T9V0WX", "revoked", "192.0.2.7", "/orders")
		l.refused(ctx, "", "malformed", "192.0.2.8", "/orders")
	}
	l.refused(ctx, "01JD9YYYYYYYYYYYYYYYYYYYYY", "expired", "192.0.2.7", "/orders")
	now = now.Add(refusalLogWindow)
	l.refused(ctx, "01JD8XK2M3N4P5Q6R7S8T9V0WX", "revoked", "192.0.2.9", "/admin")

	type line struct {
		Msg, Reason, Route string
		TokenID            string `json:"token_id"`
		ClientAddr         string `json:"client_addr"`
		Suppressed         uint64
		SuppressedWithin   any `json:"suppressed_within"`
	}
	var lines []line
	for _, s := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("%v: %s", err, s)
		}
		lines = append(lines, l)
	}
	want := []line{
		{Msg: "forward-auth refused", Reason: "revoked", Route: "/orders", TokenID: "01JD8XK2M3N4P5Q6R7S8T9V0WX", ClientAddr: "192.0.2.7"},
		{Msg: "forward-auth refused", Reason: "malformed", Route: "/orders", ClientAddr: "192.0.2.8"},
		{Msg: "forward-auth refused", Reason: "expired", Route: "/orders", TokenID: "01JD9YYYYYYYYYYYYYYYYYYYYY", ClientAddr: "192.0.2.7"},
		{Msg: "forward-auth refused", Reason: "revoked", Route: "/admin", TokenID: "01JD8XK2M3N4P5Q6R7S8T9V0WX", ClientAddr: "192.0.2.9", Suppressed: 49},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i := range want {
		got := lines[i]
		got.SuppressedWithin = nil
		if got != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, got, want[i])
		}
	}
}

// The limiter's memory is bounded: past refusalLogKeys distinct ids within
// a window, lines are counted, not written, and not remembered.
func TestRefusalLogMemoryIsBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	l := newRefusalLog(slog.New(slog.DiscardHandler), func() time.Time { return now })
	l.log = slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	for i := range refusalLogKeys + 100 {
		l.refused(context.Background(), "id"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), "unknown", "192.0.2.1", "/")
	}
	if len(l.keys) > refusalLogKeys || l.overflow != 100 {
		t.Errorf("%d keys remembered, %d lines dropped; want at most %d and 100", len(l.keys), l.overflow, refusalLogKeys)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
