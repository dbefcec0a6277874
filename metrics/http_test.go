package metrics

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
)

// apiMux is a ServeMux with routes shaped like the API's.
func apiMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/tokens/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"`+r.PathValue("id")+`"}`)
	})
	mux.HandleFunc("POST /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /v1/hinted", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusNoContent)
		// A superfluous call: the client has 204 already.
		w.WriteHeader(http.StatusInternalServerError)
	})
	mux.HandleFunc("GET /v1/stream", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		// Through the recording writer's Unwrap, the controller reaches
		// the server's flusher; without it Flush fails.
		if err := http.NewResponseController(w).Flush(); err != nil {
			panic("flush through the recording writer: " + err.Error())
		}
	})
	return mux
}

// withContext stands for a middleware that hands the next handler a new
// *http.Request (as a request-id middleware does).
func withContext(next http.Handler) http.Handler {
	type key struct{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key{}, "x")))
	})
}

// serve sends one request to a real server running h and returns the
// status code.
func serve(t *testing.T, h http.Handler, method, path string) int {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	// The server's complaints (a superfluous WriteHeader) are expected.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func TestInstrumentHTTP(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		chain        func(m *Metrics, mux http.Handler) http.Handler
		method, path string
		route        string
		wantMethod   string
		code         string
	}{
		{
			name:   "a path matching a pattern with a wildcard is counted under the pattern",
			method: http.MethodGet, path: "/v1/tokens/01JABCDEF", route: "GET /v1/tokens/{id}", code: "200",
		},
		{
			name:   "the status code the handler wrote is the code",
			method: http.MethodPost, path: "/v1/tokens", route: "POST /v1/tokens", code: "201",
		},
		{
			name:   "a handler that writes nothing is counted as 200",
			method: http.MethodGet, path: "/livez", route: "GET /livez", code: "200",
		},
		{
			name:   "the final status counts, not an informational one before it nor a superfluous one after it",
			method: http.MethodGet, path: "/v1/hinted", route: "GET /v1/hinted", code: "204",
		},
		{
			name:   "an unknown path is unmatched, whatever the path",
			method: http.MethodGet, path: "/no/such/path/12345", route: RouteUnmatched, code: "404",
		},
		{
			name:   "a known path with a wrong method is unmatched",
			method: http.MethodDelete, path: "/livez", route: RouteUnmatched, code: "405",
		},
		{
			name:   "a non-standard method is counted as other",
			method: "BREW", path: "/livez", route: RouteUnmatched, wantMethod: "other", code: "405",
		},
		{
			name:   "the mux's path-cleaning redirect is counted under the pattern it leads to",
			method: http.MethodGet, path: "/v1/../livez", route: "GET /livez", code: "307",
		},
		{
			name:   "a handler flushing through http.ResponseController is served and counted",
			method: http.MethodGet, path: "/v1/stream", route: "GET /v1/stream", code: "202",
		},
		{
			name: "RecordRoute passes the pattern across a middleware that replaces the request",
			chain: func(m *Metrics, mux http.Handler) http.Handler {
				return m.InstrumentHTTP(withContext(RecordRoute(mux)))
			},
			method: http.MethodGet, path: "/v1/tokens/X", route: "GET /v1/tokens/{id}", code: "200",
		},
		{
			name: "without RecordRoute a replaced request leaves the route unmatched",
			chain: func(m *Metrics, mux http.Handler) http.Handler {
				return m.InstrumentHTTP(withContext(mux))
			},
			method: http.MethodGet, path: "/v1/tokens/X", route: RouteUnmatched, code: "200",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := New(discardLogger())
			chain := tc.chain
			if chain == nil {
				chain = func(m *Metrics, mux http.Handler) http.Handler { return m.InstrumentHTTP(mux) }
			}
			code := serve(t, chain(m, apiMux()), tc.method, tc.path)
			if got := codeLabels[code]; got != tc.code {
				t.Fatalf("%s %s answered %s, want %s", tc.method, tc.path, got, tc.code)
			}
			method := tc.wantMethod
			if method == "" {
				method = tc.method
			}
			f := scrape(t, m)
			f.wantValue(t, "tokenledger_http_requests_total", labels{"route": tc.route, "method": method, "code": tc.code}, 1)
			if n := f.series("tokenledger_http_requests_total"); n != 1 {
				t.Errorf("tokenledger_http_requests_total has %d series, want 1", n)
			}
			if n := f.histogram(t, "tokenledger_http_request_duration_seconds", labels{"route": tc.route}).GetSampleCount(); n != 1 {
				t.Errorf("tokenledger_http_request_duration_seconds{route=%q} counts %d requests, want 1", tc.route, n)
			}
		})
	}
}

func TestInstrumentHTTPCountsEveryRequest(t *testing.T) {
	t.Parallel()
	m := New(discardLogger())
	h := m.InstrumentHTTP(apiMux())
	for _, path := range []string{"/v1/tokens/A", "/v1/tokens/B", "/v1/tokens/C", "/x", "/y"} {
		serve(t, h, http.MethodGet, path)
	}
	f := scrape(t, m)
	f.wantValue(t, "tokenledger_http_requests_total", labels{"route": "GET /v1/tokens/{id}", "method": "GET", "code": "200"}, 3)
	f.wantValue(t, "tokenledger_http_requests_total", labels{"route": RouteUnmatched, "method": "GET", "code": "404"}, 2)
}

func TestRecordRouteOutsideInstrumentHTTP(t *testing.T) {
	t.Parallel()
	if code := serve(t, RecordRoute(apiMux()), http.MethodPost, "/v1/tokens"); code != http.StatusCreated {
		t.Fatalf("RecordRoute without InstrumentHTTP: status %d, want the mux's 201", code)
	}
}

func TestInstrumentHTTPConnectRedirect(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/files/{name}/", func(w http.ResponseWriter, r *http.Request) {})
	m := New(discardLogger())
	h := m.InstrumentHTTP(mux)
	// For CONNECT the mux's trailing-slash redirect reports the request's
	// own path as the pattern; it must not become a label value.
	for _, path := range []string{"/files/a", "/files/b", "/files/c"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodConnect, path, nil))
		if rec.Code != http.StatusTemporaryRedirect {
			t.Fatalf("CONNECT %s: status %d, want the mux's 307", path, rec.Code)
		}
	}
	f := scrape(t, m)
	f.wantValue(t, "tokenledger_http_requests_total", labels{"route": RouteUnmatched, "method": http.MethodConnect, "code": "307"}, 3)
	if n := f.series("tokenledger_http_requests_total"); n != 1 {
		t.Errorf("tokenledger_http_requests_total has %d series, want 1", n)
	}
}
