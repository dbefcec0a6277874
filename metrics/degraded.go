package metrics

import (
	"context"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// WatchDegraded exports, at each scrape, tokenledger_degraded{part}: 1 when
// check reports that part is degraded (a non-nil error, or no answer within
// 2 seconds), else 0. The parts are those a node serves without: an API
// node whose read model is down still validates and records changes, so
// this gauge, and not its readiness, tells that it runs degraded. check is
// called with a context that ends after 2 seconds; the checks of all parts
// run at once. Watching a part again replaces its check; a nil check stops
// watching it.
func (m *Metrics) WatchDegraded(part string, check func(context.Context) error) {
	if m == nil {
		return
	}
	m.degraded.watch(part, check)
}

// degradedCollector exports tokenledger_degraded.
type degradedCollector struct {
	desc *prometheus.Desc

	mu     sync.Mutex
	checks map[string]func(context.Context) error
}

func newDegradedCollector() *degradedCollector {
	return &degradedCollector{
		desc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "degraded"),
			"1 while a part this node serves without is failing (the read model unreachable, the projection lagging), else 0.",
			[]string{"part"}, nil),
		checks: make(map[string]func(context.Context) error),
	}
}

func (c *degradedCollector) watch(part string, check func(context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if check == nil {
		delete(c.checks, part)
		return
	}
	c.checks[part] = check
}

// Describe implements prometheus.Collector.
func (c *degradedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *degradedCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	parts := make([]string, 0, len(c.checks))
	checks := make([]func(context.Context) error, 0, len(c.checks))
	for part := range c.checks {
		parts = append(parts, part)
	}
	slices.Sort(parts)
	for _, part := range parts {
		checks = append(checks, c.checks[part])
	}
	c.mu.Unlock()

	degraded := make([]bool, len(parts))
	var wg sync.WaitGroup
	for i, check := range checks {
		wg.Go(func() { degraded[i] = failsWithin(check) })
	}
	wg.Wait()
	for i, part := range parts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, bool01(degraded[i]), part)
	}
}

// failsWithin reports whether check fails or does not answer within
// statusTimeout; a check that outlives it is left to finish on its own.
func failsWithin(check func(context.Context) error) bool {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- check(ctx) }()
	select {
	case err := <-done:
		return err != nil
	case <-ctx.Done():
		return true
	}
}
