package metrics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenledger/tokenledger/projections"
)

// Kinds of projection, the values of the kind label.
const (
	KindLifecycle = "lifecycle"
	KindUsage     = "usage"
)

// statusTimeout bounds one projection's status call at a scrape.
const statusTimeout = 2 * time.Second

// errStatusBusy: the previous status call of a projection has not returned
// yet, so the scrape does not start another.
var errStatusBusy = errors.New("previous status call still running")

// LifecycleProjection is what WatchLifecycle reads.
// *consumers.LifecycleProjector implements it.
type LifecycleProjection interface {
	Name() string
	Progress(ctx context.Context) (projections.Progress, error)
}

// UsageProjection is what WatchUsage reads. *consumers.UsageConsumer
// implements it.
type UsageProjection interface {
	Name() string
	Progress(ctx context.Context) (projections.UsageProgress, error)
	Stats() projections.UsageStats
}

// WatchProjection exports, at each scrape, the status of the projection
// named name of kind (KindLifecycle, KindUsage): its lag in events and
// seconds, its checkpoint and whether it is halted, labelled
// {projection=name, kind=kind}. status is called with a context that ends
// after 2 seconds; while a call has not returned, later scrapes do not
// start another. A failed or unfinished call does not fail the scrape: it
// sets tokenledger_projection_up to 0, counts in
// tokenledger_projection_status_errors_total, leaves the other gauges out
// and is logged when the projection goes from up to down.
//
// Any number of projections may be watched. Watching a kind and name again
// replaces the earlier watch (its error count carries over); a nil status
// stops watching it.
func (m *Metrics) WatchProjection(kind, name string, status func(context.Context) (projections.Progress, error)) {
	if m == nil {
		return
	}
	if status == nil {
		m.projections.watch(kind, name, nil, nil)
		return
	}
	m.projections.watch(kind, name, func(ctx context.Context) (projectionStatus, error) {
		st, err := status(ctx)
		return projectionStatus{
			checkpoint: st.Checkpoint,
			lagEvents:  st.LagEvents,
			lagSeconds: st.LagSeconds,
			halted:     st.Halted != nil,
		}, err
	}, nil)
}

// WatchLifecycle is WatchProjection of p's status, of kind KindLifecycle
// and named p.Name().
func (m *Metrics) WatchLifecycle(p LifecycleProjection) {
	if m == nil || p == nil {
		return
	}
	m.WatchProjection(KindLifecycle, p.Name(), p.Progress)
}

// WatchUsage is WatchProjection of c's status, of kind KindUsage and named
// c.Name(), plus the consumer's counters (projections.UsageStats, read from
// memory, exported even when the status call fails), labelled
// {projection=c.Name()}: events, batches and rows applied, events
// redelivered, deferred and aged out, and session extensions appended,
// decided again after a conflict, and failed.
func (m *Metrics) WatchUsage(c UsageProjection) {
	if m == nil || c == nil {
		return
	}
	m.projections.watch(KindUsage, c.Name(), func(ctx context.Context) (projectionStatus, error) {
		st, err := c.Progress(ctx)
		return projectionStatus{
			checkpoint: st.Checkpoint,
			lagEvents:  st.LagEvents,
			lagSeconds: st.LagSeconds,
			halted:     st.Halted != nil,
		}, err
	}, c.Stats)
}

// projectionStatus is the part of a projection's status that is exported.
type projectionStatus struct {
	checkpoint, lagEvents uint64
	lagSeconds            float64
	halted                bool
}

// projectionKey identifies a watched projection.
type projectionKey struct{ kind, name string }

// projectionWatch is one watched projection.
type projectionWatch struct {
	key    projectionKey
	status func(context.Context) (projectionStatus, error)
	stats  func() projections.UsageStats // nil except for a usage projection

	busy   atomic.Bool
	down   atomic.Bool
	errors *atomic.Uint64 // shared with the watch this one replaced
}

// projectionReading is what one scrape learnt of a projection.
type projectionReading struct {
	st  projectionStatus
	err error
}

// projectionCollector exports the watched projections, reading their status
// at scrape time.
type projectionCollector struct {
	log     *slog.Logger
	timeout time.Duration

	mu      sync.Mutex
	watches map[projectionKey]*projectionWatch

	up, statusErrors, lagEvents, lagSeconds, checkpoint, halted *prometheus.Desc

	usageEvents, usageBatches, usageRows, usageRedelivered, usageDeferred, usageAgedOut *prometheus.Desc
	extensions, extensionConflicts, extensionErrors                                     *prometheus.Desc
}

func newProjectionCollector(log *slog.Logger) *projectionCollector {
	labels := []string{"projection", "kind"}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	u := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, []string{"projection"}, nil)
	}
	return &projectionCollector{
		log:                log,
		timeout:            statusTimeout,
		watches:            make(map[projectionKey]*projectionWatch),
		up:                 d("projection_up", "1 if the projection's status was read at this scrape, 0 if reading it failed or timed out."),
		statusErrors:       d("projection_status_errors_total", "Scrapes at which the projection's status could not be read."),
		lagEvents:          d("projection_lag_events", "Events of the projection's stream not applied yet."),
		lagSeconds:         d("projection_lag_seconds", "Age of the oldest event not applied yet, by the stream's storage time; 0 when caught up."),
		checkpoint:         d("projection_checkpoint", "Stream sequence of the last event the projection applied."),
		halted:             d("projection_halted", "1 while the projection is stopped at an event it cannot apply, else 0."),
		usageEvents:        u("usage_projection_events_total", "Usage events the usage projection applied."),
		usageBatches:       u("usage_projection_batches_total", "Transactions that applied usage events."),
		usageRows:          u("usage_projection_rows_total", "Usage rows written."),
		usageRedelivered:   u("usage_projection_redelivered_total", "Usage events delivered again after they were applied, and skipped."),
		usageDeferred:      u("usage_projection_deferred_total", "Usage events handed back because an earlier one was missing."),
		usageAgedOut:       u("usage_projection_aged_out_total", "Usage events the usage stream dropped before they were projected."),
		extensions:         u("session_extensions_total", "Session extensions appended after use."),
		extensionConflicts: u("session_extension_conflicts_total", "Session extensions decided again because the token changed meanwhile."),
		extensionErrors:    u("session_extension_errors_total", "Sessions not slid because of a failure."),
	}
}

// watch starts, replaces or (with a nil status) ends the watch of a
// projection.
func (c *projectionCollector) watch(kind, name string, status func(context.Context) (projectionStatus, error), stats func() projections.UsageStats) {
	key := projectionKey{kind: kind, name: name}
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.watches[key]
	if status == nil {
		delete(c.watches, key)
		return
	}
	w := &projectionWatch{key: key, status: status, stats: stats, errors: new(atomic.Uint64)}
	if prev != nil {
		w.errors = prev.errors
	}
	c.watches[key] = w
}

// Describe implements prometheus.Collector.
func (c *projectionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.up, c.statusErrors, c.lagEvents, c.lagSeconds, c.checkpoint, c.halted,
		c.usageEvents, c.usageBatches, c.usageRows, c.usageRedelivered, c.usageDeferred, c.usageAgedOut,
		c.extensions, c.extensionConflicts, c.extensionErrors,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It reads every watched
// projection's status at once, so a scrape takes at most one status
// timeout whatever their number.
func (c *projectionCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	watches := make([]*projectionWatch, 0, len(c.watches))
	for _, w := range c.watches {
		watches = append(watches, w)
	}
	c.mu.Unlock()
	slices.SortFunc(watches, func(a, b *projectionWatch) int {
		return cmp.Or(cmp.Compare(a.key.kind, b.key.kind), cmp.Compare(a.key.name, b.key.name))
	})

	readings := make([]projectionReading, len(watches))
	var wg sync.WaitGroup
	for i, w := range watches {
		wg.Go(func() { readings[i] = c.read(w) })
	}
	wg.Wait()

	for i, w := range watches {
		c.export(ch, w, readings[i])
	}
}

// read calls w's status, bounded by the collector's timeout; a call that
// outlives it is left to finish on its own, and until it does later reads
// fail with errStatusBusy rather than pile up.
func (c *projectionCollector) read(w *projectionWatch) projectionReading {
	if !w.busy.CompareAndSwap(false, true) {
		return projectionReading{err: errStatusBusy}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	done := make(chan projectionReading, 1)
	go func() {
		defer w.busy.Store(false)
		st, err := w.status(ctx)
		done <- projectionReading{st: st, err: err}
	}()
	select {
	case r := <-done:
		return r
	case <-ctx.Done():
		return projectionReading{err: fmt.Errorf("no status within %s: %w", c.timeout, ctx.Err())}
	}
}

// export sends w's metrics for reading r, and logs a change of w's health.
func (c *projectionCollector) export(ch chan<- prometheus.Metric, w *projectionWatch, r projectionReading) {
	name, kind := w.key.name, w.key.kind
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name, kind)
	}
	if r.err != nil {
		w.errors.Add(1)
		if !w.down.Swap(true) {
			c.log.Warn("projection status unavailable for metrics", "projection", name, "kind", kind, "error", r.err)
		}
		gauge(c.up, 0)
	} else {
		if w.down.Swap(false) {
			c.log.Info("projection status available for metrics again", "projection", name, "kind", kind)
		}
		gauge(c.up, 1)
		gauge(c.lagEvents, float64(r.st.lagEvents))
		gauge(c.lagSeconds, r.st.lagSeconds)
		gauge(c.checkpoint, float64(r.st.checkpoint))
		gauge(c.halted, bool01(r.st.halted))
	}
	ch <- prometheus.MustNewConstMetric(c.statusErrors, prometheus.CounterValue, float64(w.errors.Load()), name, kind)

	if w.stats == nil {
		return
	}
	s := w.stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), name)
	}
	counter(c.usageEvents, s.Events)
	counter(c.usageBatches, s.Batches)
	counter(c.usageRows, s.Rows)
	counter(c.usageRedelivered, s.Redelivered)
	counter(c.usageDeferred, s.Deferred)
	counter(c.usageAgedOut, s.AgedOut)
	counter(c.extensions, s.Extensions)
	counter(c.extensionConflicts, s.ExtensionConflicts)
	counter(c.extensionErrors, s.ExtensionErrors)
}
