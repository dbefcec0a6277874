package metrics

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/projections"
)

func TestMain(m *testing.M) { stacktest.Main(m) }

// families is one scrape, by metric name.
type families map[string]*dto.MetricFamily

// scrape serves GET /metrics from m's handler and parses the text format.
func scrape(t *testing.T, m *Metrics) families {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d, body %q", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// labels is a metric's label set, as name=value pairs.
type labels map[string]string

// find returns the series of family name whose labels are exactly want.
func (f families) find(name string, want labels) (*dto.Metric, bool) {
	fam, ok := f[name]
	if !ok {
		return nil, false
	}
	for _, m := range fam.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
				match = false
				break
			}
		}
		if match {
			return m, true
		}
	}
	return nil, false
}

// value returns the value of a counter or gauge series; it fails the test
// if the series is missing.
func (f families) value(t *testing.T, name string, l labels) float64 {
	t.Helper()
	m, ok := f.find(name, l)
	if !ok {
		t.Fatalf("no series %s%v in the scrape", name, l)
	}
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s%v is neither a counter nor a gauge", name, l)
	return 0
}

// wantValue fails the test unless series name{l} has value want.
func (f families) wantValue(t *testing.T, name string, l labels, want float64) {
	t.Helper()
	if got := f.value(t, name, l); got != want {
		t.Errorf("%s%v = %v, want %v", name, l, got, want)
	}
}

// histogram returns a histogram series; it fails the test if it is missing.
func (f families) histogram(t *testing.T, name string, l labels) *dto.Histogram {
	t.Helper()
	m, ok := f.find(name, l)
	if !ok || m.GetHistogram() == nil {
		t.Fatalf("no histogram %s%v in the scrape", name, l)
	}
	return m.GetHistogram()
}

// bucket returns the cumulative count of h's bucket with upper bound le.
func bucket(t *testing.T, h *dto.Histogram, le float64) uint64 {
	t.Helper()
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == le {
			return b.GetCumulativeCount()
		}
	}
	t.Fatalf("histogram has no bucket le=%v", le)
	return 0
}

// series returns the number of series of family name (0 if absent).
func (f families) series(name string) int {
	return len(f[name].GetMetric())
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestNew(t *testing.T) {
	t.Parallel()
	m := New(discardLogger())
	if m.Registry() == nil {
		t.Fatal("Registry() = nil")
	}
	f := scrape(t, m)
	for _, name := range []string{
		"go_goroutines",
		"process_start_time_seconds",
		"promhttp_metric_handler_requests_total",
	} {
		if f.series(name) == 0 {
			t.Errorf("the scrape has no %s", name)
		}
	}
	// Nothing is watched yet: the collectors export nothing, and the
	// scrape still succeeds.
	for _, name := range []string{"tokenledger_validations_total", "tokenledger_projection_up"} {
		if f.series(name) != 0 {
			t.Errorf("the scrape has %s before anything is watched", name)
		}
	}
}

func TestHandlerServesDespiteACollectorError(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	m := New(slog.New(slog.NewTextHandler(&logs, nil)))
	m.Registry().MustRegister(failingCollector{prometheus.NewDesc("test_broken", "A collector that fails.", nil, nil)})
	m.ObserveRetry(OpIssue)
	f := scrape(t, m)
	f.wantValue(t, "tokenledger_append_retries_total", labels{"op": OpIssue}, 1)
	// The handler counts a scrape's error after serving it.
	f = scrape(t, m)
	f.wantValue(t, "promhttp_metric_handler_errors_total", labels{"cause": "gathering"}, 1)
	out := logs.String()
	if !strings.Contains(out, "serving metrics") || !strings.Contains(out, "collector broke") {
		t.Errorf("the collector's error is not logged:\n%s", out)
	}
	if n := strings.Count(out, "collector broke"); n != 2 {
		t.Errorf("the error of two scrapes is logged %d times, want twice:\n%s", n, out)
	}
}

// failingCollector fails at every collection.
type failingCollector struct{ desc *prometheus.Desc }

func (c failingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c failingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(c.desc, errors.New("collector broke"))
}

func TestNilMetrics(t *testing.T) {
	t.Parallel()
	var m *Metrics
	if m.Registry() != nil {
		t.Error("nil Metrics: Registry() != nil")
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("nil Metrics: Handler answered %d, want 404", rec.Code)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	rec = httptest.NewRecorder()
	m.InstrumentHTTP(next).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusTeapot {
		t.Errorf("nil Metrics: InstrumentHTTP's handler answered %d, want the wrapped handler's 418", rec.Code)
	}
	m.ObserveValidation(ResultValid, time.Microsecond)
	m.ObserveAppend(OpIssue, time.Millisecond, eventstore.ErrConflict)
	m.ObserveRetry(OpIssue)
	m.WatchValidator(nil)
	m.WatchProjection(KindLifecycle, "lifecycle", func(context.Context) (projections.Progress, error) {
		return projections.Progress{}, errors.New("never called")
	})
	m.WatchLifecycle(nil)
	m.WatchUsage(nil)
	m.WatchDegraded("postgres", func(context.Context) error { return errors.New("never called") })
}
