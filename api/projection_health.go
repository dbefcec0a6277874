package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/projections"
)

// ProjectionHealthBody is the JSON body of a projection process's /readyz
// (`tokenledger project`, see ProjectionHealth). Ready and Reason are the
// process's; the other top-level fields are the lifecycle projection's,
// and Usage is the usage projection's.
type ProjectionHealthBody struct {
	// Ready is true when the lifecycle projector is consuming, not halted
	// and within its lag bound, and so is the usage consumer, if asked.
	Ready bool `json:"ready"`
	// Reason says why it is not ready: the reasons of every projection
	// that is not, joined with "; "; empty when ready.
	Reason string `json:"reason,omitempty"`
	// Projection is the lifecycle projection's name.
	Projection string `json:"projection"`
	// Checkpoint is the sequence of the last event applied, StreamLast the
	// stream's last sequence.
	Checkpoint uint64 `json:"checkpoint"`
	StreamLast uint64 `json:"stream_last"`
	// LagEvents and LagSeconds are how far behind the projection is, in
	// events and in the age of the oldest event not applied yet.
	LagEvents  uint64  `json:"lag_events"`
	LagSeconds float64 `json:"lag_seconds"`
	// MaxLagEvents is the readiness bound on LagEvents.
	MaxLagEvents uint64 `json:"max_lag_events"`
	// Halted names the event the projector stopped at, if it did.
	Halted *HealthHalt `json:"halted,omitempty"`
	// LastError is the projector's last failure, cleared by the next
	// success.
	LastError string `json:"last_error,omitempty"`
	// Usage is the usage projection's part; nil when the handler was
	// given no usage consumer.
	Usage *UsageHealthBody `json:"usage,omitempty"`
}

// UsageHealthBody is the usage projection's part of ProjectionHealthBody.
type UsageHealthBody struct {
	// Ready is true when the usage consumer is consuming, not halted and
	// within its lag bound; Reason says why not.
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
	// Projection is the usage projection's name.
	Projection string `json:"projection"`
	// Checkpoint is the usage-stream sequence of the last event applied;
	// StreamFirst and StreamLast are the usage stream's extent.
	Checkpoint  uint64 `json:"checkpoint"`
	StreamFirst uint64 `json:"stream_first"`
	StreamLast  uint64 `json:"stream_last"`
	// LagEvents and LagSeconds are how far behind the projection is.
	LagEvents  uint64  `json:"lag_events"`
	LagSeconds float64 `json:"lag_seconds"`
	// MaxLagEvents is the readiness bound on LagEvents.
	MaxLagEvents uint64 `json:"max_lag_events"`
	// Halted names the event the consumer stopped at, if it did.
	Halted *HealthHalt `json:"halted,omitempty"`
	// LastError is the consumer's last failure, or the gap it waits on.
	LastError string `json:"last_error,omitempty"`
}

// HealthHalt is the event a projector halted at.
type HealthHalt struct {
	Sequence uint64    `json:"sequence"`
	Subject  string    `json:"subject"`
	Reason   string    `json:"reason"`
	Since    time.Time `json:"since"`
}

func healthHalt(h *projections.Halt) *HealthHalt {
	if h == nil {
		return nil
	}
	return &HealthHalt{Sequence: h.Sequence, Subject: h.Subject, Reason: h.Reason, Since: h.Since}
}

// LifecycleReadiness is what ProjectionHealth asks the lifecycle
// projector: its progress, and whether it is ready within a lag bound.
// *consumers.LifecycleProjector implements it.
type LifecycleReadiness interface {
	Progress(ctx context.Context) (projections.Progress, error)
	Ready(ctx context.Context, maxLag uint64) error
}

// UsageReadiness is what ProjectionHealth asks the usage consumer.
// *consumers.UsageConsumer implements it.
type UsageReadiness interface {
	Progress(ctx context.Context) (projections.UsageProgress, error)
	Ready(ctx context.Context, maxLag uint64) error
}

// ProjectionHealth is the health endpoint of a projection process
// (`tokenledger project`): /livez as the API's (200 while the process
// serves requests, asking nothing), and /readyz, 200 when p is ready
// within maxLag events and, unless usage is nil, usage within usageMaxLag
// events; 503 with the reasons otherwise. The /readyz body is a
// ProjectionHealthBody; its checks share one readiness timeout.
func ProjectionHealth(p LifecycleReadiness, maxLag uint64, usage UsageReadiness, usageMaxLag uint64) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", livez)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		body := ProjectionHealthBody{MaxLagEvents: maxLag}
		var reasons []string
		st, reason := readiness(ctx, p.Ready, p.Progress, func(s projections.Progress) bool { return s.Halted != nil }, maxLag)
		if reason != "" {
			reasons = append(reasons, reason)
		}
		if st != nil {
			body.Projection, body.Checkpoint, body.StreamLast = st.Name, st.Checkpoint, st.StreamLast
			body.LagEvents, body.LagSeconds, body.LastError = st.LagEvents, st.LagSeconds, st.LastError
			body.Halted = healthHalt(st.Halted)
		}
		if usage != nil {
			u := &UsageHealthBody{MaxLagEvents: usageMaxLag}
			ust, reason := readiness(ctx, usage.Ready, usage.Progress, func(s projections.UsageProgress) bool { return s.Halted != nil }, usageMaxLag)
			u.Ready, u.Reason = reason == "", reason
			if reason != "" {
				reasons = append(reasons, reason)
			}
			if ust != nil {
				u.Projection, u.Checkpoint, u.StreamFirst, u.StreamLast = ust.Name, ust.Checkpoint, ust.StreamFirst, ust.StreamLast
				u.LagEvents, u.LagSeconds, u.LastError = ust.LagEvents, ust.LagSeconds, ust.LastError
				u.Halted = healthHalt(ust.Halted)
			}
			body.Usage = u
		}
		body.Ready, body.Reason = len(reasons) == 0, strings.Join(reasons, "; ")
		code := http.StatusOK
		if !body.Ready {
			code = http.StatusServiceUnavailable
		}
		writeHealth(w, code, body)
	})
	return mux
}

// StandbyHealth answers /readyz for a projection process that stands by
// while another leads (active reports false): 200 with role "standby" (it
// is healthy and does what it should: wait). Everything else, and every
// answer of the leader, is next's. The X-Tokenledger-Role header says
// which the process is: "active" or "standby".
func StandbyHealth(next http.Handler, active func() bool, projection string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if active() {
			w.Header().Set("X-Tokenledger-Role", "active")
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("X-Tokenledger-Role", "standby")
		if r.URL.Path != "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		writeHealth(w, http.StatusOK, map[string]any{
			"ready":      true,
			"role":       "standby",
			"projection": projection,
			"reason":     "standing by: another project process leads the projection",
		})
	})
}

// readiness asks a projection whether it is ready within maxLag and for
// its progress. It returns the progress (nil when it could not be read)
// and why the projection is not ready ("" when it is).
func readiness[S any](ctx context.Context, ready func(context.Context, uint64) error,
	progress func(context.Context) (S, error), halted func(S) bool, maxLag uint64) (*S, string) {
	readyErr := ready(ctx, maxLag)
	st, err := progress(ctx)
	if err == nil && halted(st) && !errors.Is(readyErr, consumers.ErrHalted) {
		// The projection halted between the two calls: ask again, so that
		// the reason matches the progress shown.
		readyErr = ready(ctx, maxLag)
	}
	switch {
	case err != nil && readyErr == nil:
		return nil, err.Error()
	case err != nil:
		return nil, readyErr.Error()
	case readyErr != nil:
		return &st, readyErr.Error()
	}
	return &st, ""
}
