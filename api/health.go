package api

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/tokenledger/tokenledger/sdk"
	"github.com/tokenledger/tokenledger/version"
)

// readyTimeout bounds each readiness check, so that a probe gets an answer
// while a dependency hangs: of the API server (Server) and of the
// projection workers (ProjectionHealth) alike.
const readyTimeout = 2 * time.Second

// livez answers GET /livez, for the API server and the projection workers
// alike: the process serves requests, and which build it runs.
func livez(w http.ResponseWriter, _ *http.Request) {
	writeHealth(w, http.StatusOK, map[string]string{"status": "ok", "version": version.Get().Version})
}

// writeHealth answers a health probe with v: JSON, never cached.
func writeHealth(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, v)
}

// Readiness verdicts, the status of the /readyz body.
const (
	readyStatus    = "ready"
	degradedStatus = "degraded"
	notReadyStatus = "not ready"
)

// readyz answers GET /readyz: 200 while every Ready check passes, else 503.
// A failing Degraded check is named in the body ("degraded") and makes the
// status "degraded", but the answer stays 200: the node still validates
// and records changes, and a load balancer that dropped every node whose
// read model is down would drop them all at once. Every check runs at the
// same time, each bounded by readyTimeout, so a probe gets its answer
// within that.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	type verdict struct {
		name     string
		degraded bool
		err      error
	}
	verdicts := make([]verdict, 0, len(s.ready)+len(s.degraded))
	for name := range s.ready {
		verdicts = append(verdicts, verdict{name: name})
	}
	for name := range s.degraded {
		verdicts = append(verdicts, verdict{name: name, degraded: true})
	}
	var wg sync.WaitGroup
	for i := range verdicts {
		check := s.ready[verdicts[i].name]
		if verdicts[i].degraded {
			check = s.degraded[verdicts[i].name]
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
			defer cancel()
			verdicts[i].err = check(ctx)
		})
	}
	wg.Wait()
	sort.Slice(verdicts, func(i, j int) bool { return verdicts[i].name < verdicts[j].name })

	body := struct {
		Status   string            `json:"status"`
		Checks   map[string]string `json:"checks"`
		Degraded []string          `json:"degraded,omitempty"`
	}{Status: readyStatus, Checks: make(map[string]string, len(verdicts))}
	ready := true
	for _, v := range verdicts {
		switch {
		case v.err == nil:
			body.Checks[v.name] = "ok"
		case v.degraded:
			body.Checks[v.name] = v.err.Error()
			body.Degraded = append(body.Degraded, v.name)
		default:
			body.Checks[v.name] = v.err.Error()
			ready = false
		}
	}
	status := http.StatusOK
	switch {
	case !ready:
		body.Status, status = notReadyStatus, http.StatusServiceUnavailable
	case len(body.Degraded) > 0:
		body.Status = degradedStatus
	}
	writeHealth(w, status, body)
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
