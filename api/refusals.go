package api

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Limits of the refusal log.
const (
	// refusalLogWindow: at most one line per token (or, for a request
	// without a token id, per client address) per window; the next line
	// counts the ones left out.
	refusalLogWindow = 10 * time.Second
	// refusalLogKeys bounds the memory of the limiter: an attack with many
	// distinct ids cannot grow it beyond this; lines past it are counted
	// and left out.
	refusalLogKeys = 10000
	// maxLoggedRoute bounds the route written, which a client chooses.
	maxLoggedRoute = 256
)

// refusalLog writes one info line per refused forward-auth check, naming
// the token id (never the secret), the reason, the client's address and
// the route, so that "who still uses the revoked token?" has an answer;
// rate-limited per token so that a flood of bad requests cannot flood the
// log. Safe for concurrent use.
type refusalLog struct {
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	keys     map[string]*refusalKey
	overflow uint64 // lines left out because keys was full
}

type refusalKey struct {
	last       time.Time
	suppressed uint64
}

func newRefusalLog(log *slog.Logger, now func() time.Time) *refusalLog {
	return &refusalLog{log: log, now: now, keys: make(map[string]*refusalKey)}
}

// refused records a refusal: tokenID is "" when the request carried no
// parsable token.
func (l *refusalLog) refused(ctx context.Context, tokenID, reason, client, route string) {
	if !l.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	key := tokenID
	if key == "" {
		key = "client " + client
	}
	now := l.now()
	l.mu.Lock()
	k, ok := l.keys[key]
	if !ok {
		if len(l.keys) >= refusalLogKeys {
			for name, old := range l.keys {
				if now.Sub(old.last) >= refusalLogWindow {
					delete(l.keys, name)
				}
			}
		}
		if len(l.keys) >= refusalLogKeys {
			l.overflow++
			l.mu.Unlock()
			return
		}
		k = &refusalKey{}
		l.keys[key] = k
	} else if now.Sub(k.last) < refusalLogWindow {
		k.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed, overflow := k.suppressed, l.overflow
	k.last, k.suppressed, l.overflow = now, 0, 0
	l.mu.Unlock()

	attrs := make([]slog.Attr, 0, 7)
	if tokenID != "" {
		attrs = append(attrs, slog.String("token_id", tokenID))
	}
	attrs = append(attrs, slog.String("reason", reason), slog.String("client_addr", client), slog.String("route", route))
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed", suppressed), slog.Duration("suppressed_within", refusalLogWindow))
	}
	if overflow > 0 {
		attrs = append(attrs, slog.Uint64("dropped_other_keys", overflow))
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, "forward-auth refused", attrs...)
}

// authRoute is the route a forward-auth check is about: the original URI
// the gateway names (X-Forwarded-Uri from Traefik and Caddy, X-Original-URI
// from nginx), else the path asked, cut to maxLoggedRoute bytes.
func authRoute(r *http.Request) string {
	route := r.Header.Get("X-Forwarded-Uri")
	if route == "" {
		route = r.Header.Get("X-Original-URI")
	}
	if route == "" {
		route = r.URL.Path
	}
	if len(route) > maxLoggedRoute {
		route = route[:maxLoggedRoute]
	}
	return route
}
