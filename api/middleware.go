package api

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/sdk"
)

// RequestIDHeader carries the request id, on every response; a well-formed
// one sent by the client (or a proxy) is kept, otherwise a ULID is made.
const RequestIDHeader = "X-Request-Id"

// maxRequestIDLen bounds a request id taken from a client: UUIDs, ULIDs
// and trace ids fit, a secret (84 bytes) does not.
const maxRequestIDLen = 64

type requestIDKey struct{}

// requestID returns the request id in ctx, "" if none.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// withRequest gives every request an id (in its context, its response and
// its log line), logs it once it is answered, and turns a panic into a 500.
func (s *Server) withRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = ulid.Make().String()
		}
		w.Header().Set(RequestIDHeader, id)
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "panic serving request", slog.String("request_id", id),
					slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
				if sw.status == 0 {
					writeJSONError(sw, http.StatusInternalServerError, sdk.CodeInternal, "internal error")
				}
			}
			s.logRequest(r, sw.status, time.Since(start), id)
		}()
		next.ServeHTTP(sw, r)
	})
}

// logRequest writes the access log line: never the query string, headers
// or body, which may hold a secret. Forward-auth, health and metrics
// requests, which come by the thousand, log at Debug unless they failed.
func (s *Server) logRequest(r *http.Request, status int, d time.Duration, id string) {
	level := slog.LevelInfo
	switch r.Pattern {
	case "/v1/auth", "/v1/auth/{path...}", "/livez", "/readyz", "/metrics":
		level = slog.LevelDebug
	}
	if status >= 500 {
		level = slog.LevelWarn
	}
	ctx := r.Context()
	if !s.log.Enabled(ctx, level) {
		return
	}
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	path := r.URL.Path
	if strings.Contains(path, domain.SecretPrefix) {
		path = "[redacted: the path holds a secret]"
	}
	s.log.LogAttrs(ctx, level, "request",
		slog.String("request_id", id),
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", path),
		slog.Int("status", status),
		slog.Duration("duration", d),
		slog.String("remote", r.RemoteAddr),
	)
}

// validRequestID reports whether a client's request id may be kept: it is
// logged and recorded as the correlation id of the events the request
// causes, so it must be short, plain, and nothing like a secret.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen || strings.Contains(strings.ToLower(id), strings.ToLower(domain.SecretPrefix)) {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}
