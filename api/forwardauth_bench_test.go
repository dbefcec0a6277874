package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/internal/testkit/apitest"
	"github.com/tokenledger/tokenledger/ledger"
)

// benchWriter is a ResponseWriter that keeps nothing but its header map,
// cleared and reused between requests, so the benchmark counts what the
// handler itself costs.
type benchWriter struct {
	h      http.Header
	status int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *benchWriter) WriteHeader(code int)        { w.status = code }

// BenchmarkForwardAuthHandler runs the API's whole handler (metrics,
// request id, access log, routing, forward-auth) in process for GET
// /v1/auth with a valid token, without a network or a server loop: the
// cost tracing would add to every gateway check, were it on the path.
func BenchmarkForwardAuthHandler(b *testing.B) {
	s := apitest.Start(b, apitest.Options{})
	admin := ledger.Caller{TokenID: s.AdminID, Owner: "admin", Scopes: []string{ledger.ScopeAdmin}}
	out, err := s.API.Ledger.Issue(context.Background(), admin, domain.IssueRequest{
		Owner: "bench", Name: "bench", Scopes: []string{"read"}, ExpiresIn: time.Hour,
	}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	secret := out.Secret.Reveal()
	h := s.API.Server.Handler()
	r, err := http.NewRequest(http.MethodGet, "http://tokenledger/v1/auth?scope=read", nil)
	if err != nil {
		b.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+secret)
	r.Header.Set("X-Request-Id", "bench-request")
	w := &benchWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		w.status = 0
		h.ServeHTTP(w, r)
		if w.status != 0 && w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}
