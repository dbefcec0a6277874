package api

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/tokenledger/tokenledger/sdk"
)

// readyTimeout bounds each readiness check.
const readyTimeout = 2 * time.Second

// livez answers GET /livez: the process serves requests.
func (s *Server) livez(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers GET /readyz: 200 when every check passes, else 503, with
// each check's verdict.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	names := make([]string, 0, len(s.ready))
	for name := range s.ready {
		names = append(names, name)
	}
	sort.Strings(names)
	checks := make(map[string]string, len(names))
	ready := true
	for _, name := range names {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		err := s.ready[name](ctx)
		cancel()
		if err != nil {
			ready = false
			checks[name] = err.Error()
			continue
		}
		checks[name] = "ok"
	}
	body := struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}{Status: "ready", Checks: checks}
	status := http.StatusOK
	if !ready {
		body.Status, status = "not ready", http.StatusServiceUnavailable
	}
	writeJSON(w, status, body)
	return nil
}

// serveOpenAPI answers GET /v1/openapi.json.
func (s *Server) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	if len(s.openAPI) == 0 {
		writeJSONError(w, http.StatusNotFound, sdk.CodeNotFound, "no OpenAPI document is configured")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(s.openAPI)
}

// serveMetrics answers GET /metrics.
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if s.metrics == nil {
		writeJSONError(w, http.StatusNotFound, sdk.CodeNotFound, "metrics are not enabled")
		return
	}
	s.metricsHandler.ServeHTTP(w, r)
}
