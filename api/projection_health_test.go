package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/api"
	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/projections"
)

// stubUsage answers the health handler for the usage consumer.
type stubUsage struct {
	status   projections.UsageProgress
	readyErr error
}

func (s *stubUsage) Progress(context.Context) (projections.UsageProgress, error) {
	return s.status, nil
}

func (s *stubUsage) Ready(context.Context, uint64) error { return s.readyErr }

// stubReadiness answers the health handler with fixed values; when
// readyErrs is set, Ready answers them in turn.
type stubReadiness struct {
	status    projections.Progress
	statusErr error
	readyErr  error
	readyErrs []error
}

func (s *stubReadiness) Progress(context.Context) (projections.Progress, error) {
	return s.status, s.statusErr
}

func (s *stubReadiness) Ready(context.Context, uint64) error {
	if len(s.readyErrs) > 0 {
		err := s.readyErrs[0]
		s.readyErrs = s.readyErrs[1:]
		return err
	}
	return s.readyErr
}

func TestProjectionHealth(t *testing.T) {
	t.Parallel()
	since := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		stub     *stubReadiness
		usage    *stubUsage
		path     string
		code     int
		contains []string
	}{
		{"live whatever the projector says", &stubReadiness{readyErr: consumers.ErrNotRunning, statusErr: errors.New("down")}, nil,
			"/livez", 200, []string{`"status":"ok"`}},
		{"ready", &stubReadiness{status: projections.Progress{Name: "lifecycle", Checkpoint: 7, StreamLast: 7}}, nil,
			"/readyz", 200, []string{`"ready":true`, `"checkpoint":7`, `"stream_last":7`, `"lag_events":0`, `"max_lag_events":5`}},
		{"lagging", &stubReadiness{
			status:   projections.Progress{Name: "lifecycle", Checkpoint: 3, StreamLast: 10, LagEvents: 7, LagSeconds: 1.5},
			readyErr: fmt.Errorf("%w: 7 events behind", consumers.ErrLagging),
		}, nil, "/readyz", 503, []string{`"ready":false`, `"reason":"projection lagging: 7 events behind"`, `"lag_events":7`, `"lag_seconds":1.5`}},
		{"halted between the readiness check and the status", &stubReadiness{
			status: projections.Progress{Name: "lifecycle", Checkpoint: 3, StreamLast: 4, LagEvents: 1,
				Halted: &projections.Halt{Sequence: 4, Subject: "tl.token.X.issued_v1", Reason: "corrupt", Since: since}},
			readyErrs: []error{fmt.Errorf("%w: 1 events behind", consumers.ErrLagging), fmt.Errorf("%w at sequence 4", consumers.ErrHalted)},
		}, nil, "/readyz", 503, []string{`"reason":"projection halted at sequence 4"`, `"halted":{"sequence":4`}},
		{"halted", &stubReadiness{
			status: projections.Progress{Name: "lifecycle", Checkpoint: 3, StreamLast: 4, LagEvents: 1,
				Halted: &projections.Halt{Sequence: 4, Subject: "tl.token.X.issued_v1", Reason: "corrupt", Since: since}},
			readyErr: fmt.Errorf("%w at sequence 4", consumers.ErrHalted),
		}, nil, "/readyz", 503, []string{`"halted":{"sequence":4,"subject":"tl.token.X.issued_v1","reason":"corrupt","since":"2030-01-01T00:00:00Z"}`}},
		{"status unreadable", &stubReadiness{statusErr: errors.New("stream unreachable")}, nil,
			"/readyz", 503, []string{`"ready":false`, `"reason":"stream unreachable"`}},
		{"not running", &stubReadiness{readyErr: consumers.ErrNotRunning, status: projections.Progress{Name: "lifecycle"}}, nil,
			"/readyz", 503, []string{`"reason":"projector not running"`}},
		{"both ready", &stubReadiness{status: projections.Progress{Name: "lifecycle", Checkpoint: 7, StreamLast: 7}},
			&stubUsage{status: projections.UsageProgress{Name: "usage", Checkpoint: 9, StreamFirst: 2, StreamLast: 9}},
			"/readyz", 200, []string{`"ready":true`, `"checkpoint":7`,
				`"usage":{"ready":true,"projection":"usage","checkpoint":9,"stream_first":2,"stream_last":9,"lag_events":0,"lag_seconds":0,"max_lag_events":50}`}},
		{"usage lagging", &stubReadiness{status: projections.Progress{Name: "lifecycle", Checkpoint: 7, StreamLast: 7}},
			&stubUsage{status: projections.UsageProgress{Name: "usage", Checkpoint: 9, StreamLast: 90, LagEvents: 81},
				readyErr: fmt.Errorf("usage projection %q: %w: 81 events behind", "usage", consumers.ErrLagging)},
			"/readyz", 503, []string{`"ready":false`, `"reason":"usage projection \"usage\": projection lagging: 81 events behind"`,
				`"usage":{"ready":false,"reason":"usage projection`, `"lag_events":81`, `"checkpoint":7,"stream_last":7,"lag_events":0`}},
		{"both halted", &stubReadiness{
			status: projections.Progress{Name: "lifecycle", Checkpoint: 3, StreamLast: 4, LagEvents: 1,
				Halted: &projections.Halt{Sequence: 4, Subject: "tl.token.X.issued_v1", Reason: "corrupt", Since: since}},
			readyErr: fmt.Errorf("%w at sequence 4", consumers.ErrHalted),
		}, &stubUsage{
			status: projections.UsageProgress{Name: "usage", Checkpoint: 5, StreamLast: 6, LagEvents: 1,
				Halted: &projections.Halt{Sequence: 6, Subject: "tl.usage.X", Reason: "corrupt", Since: since}},
			readyErr: fmt.Errorf("usage projection: %w at sequence 6", consumers.ErrHalted),
		}, "/readyz", 503, []string{`"reason":"projection halted at sequence 4; usage projection: projection halted at sequence 6"`,
			`"halted":{"sequence":4`, `"halted":{"sequence":6,"subject":"tl.usage.X"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			var usage api.UsageReadiness
			if tc.usage != nil {
				usage = tc.usage
			}
			api.ProjectionHealth(tc.stub, 5, usage, 50).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if rec.Code != tc.code {
				t.Errorf("status %d, want %d; body %s", rec.Code, tc.code, rec.Body)
			}
			for _, want := range tc.contains {
				if !strings.Contains(rec.Body.String(), want) {
					t.Errorf("body %s lacks %s", rec.Body, want)
				}
			}
		})
	}
	rec := httptest.NewRecorder()
	api.ProjectionHealth(&stubReadiness{}, 0, nil, 0).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/readyz", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz: %d, want 405", rec.Code)
	}
}
