package main

import (
	"fmt"
	"strings"
)

// The rows of the projection pipeline, the workers and the cluster.

func fmtSeconds(v float64) string { return fmt.Sprintf("%.2f s", v) }

// clusterUnmeasured is unmeasured for a cluster scenario, saying why the
// cluster was not measured when that is known.
func (r results) clusterUnmeasured(row row, have bool) (row, bool) {
	if !have && r.ClusterMissing != "" {
		row.Measured, row.Ratio, row.Misses = "not measured: "+r.ClusterMissing, "", nil
		return row, true
	}
	return unmeasured(row, have)
}

func (r results) usageLagRow() row {
	row := row{
		Figure: fmt.Sprintf("usage projection lag 5 s after a forward-auth load over %s tokens stops", fmtInt(float64(r.Tokens))),
		Target: "no lag: the usage checkpoint at the usage stream's end",
		Command: "the usage stream's last sequence and the usage checkpoint (`projection_checkpoints`), 5 s after each measured wrk run of the " +
			fmtInt(float64(r.Tokens)) + "-token forward-auth row ends",
	}
	if row, skipped := unmeasured(row, len(r.PGLarge) > 0); skipped {
		return row
	}
	later := of(r.PGLarge, func(l pgLoad) float64 { return float64(l.UsageBehindLater) })
	sooner := of(r.PGLarge, func(l pgLoad) float64 { return float64(l.UsageBehind) })
	row.Measured = fmt.Sprintf("**%s usage messages behind** after 5 s (%s after 2.5 s)", spread(later, fmtInt), spread(sooner, fmtInt))
	if v := later.max(); v > 0 {
		row.Misses = append(row.Misses, fmt.Sprintf("%s messages behind after 5 s in the worst run", fmtInt(v)))
	}
	return row
}

func (r results) liveProjectionRow() row {
	row := row{
		Figure: fmt.Sprintf("live lifecycle projection: the running projector (`tokenledger dev`) following %s `token.issued` events published into the stream", fmtInt(float64(r.Tokens))),
		Target: "sustains ≥ 20,000 events/s",
		Command: "`make bench` (bench/projection.go): the lifecycle checkpoint sampled every 100 ms from the start of the publish " +
			"until it reaches the stream's end",
	}
	if row, skipped := unmeasured(row, len(r.LiveProjection) > 0); skipped {
		return row
	}
	lp := r.LiveProjection[0]
	row.Measured = fmt.Sprintf("**%s events/s** (%s events in %.2f s)", fmtInt(lp.Rate), fmtInt(float64(lp.Events)), lp.Seconds)
	if lp.PeakRate > 0 {
		row.Measured += fmt.Sprintf(", best second %s events/s", fmtInt(lp.PeakRate))
	}
	row.Measured += fmt.Sprintf("; %s events behind when the publish ended, caught up %.2f s later", fmtInt(float64(lp.BehindAtEnd)), lp.CatchUp)
	row.Ratio = fmt.Sprintf("published at %s events/s in the same run (%.0f%% of it projected in step)", fmtInt(lp.PublishRate), 100*lp.Rate/lp.PublishRate)
	if lp.Rate < targetLiveProjection {
		row.Misses = append(row.Misses, fmt.Sprintf("%s events/s < 20,000", fmtInt(lp.Rate)))
	}
	return row
}

func (r results) lagRow() row {
	row := row{
		Figure: fmt.Sprintf("projection lag at %s mutations/s through the API (issues, and a revoke of an earlier token for every four; open loop, %s per run, at most %d in flight)",
			fmtInt(float64(r.LagRate)), r.LagFor, lagInFlight),
		Target: "p99 ≤ 250 ms at 5,000 mutations/s",
		Command: "`make bench` (bench/projection.go): each mutation's 201/204 until PostgreSQL's `tokens` holds the row " +
			"(or its revocation), polled every 5 ms",
	}
	if row, skipped := unmeasured(row, len(r.Lag) > 0); skipped {
		return row
	}
	p50s := of(r.Lag, func(x lagRun) float64 { return percentile(x.Lags, 50) })
	p99s := of(r.Lag, func(x lagRun) float64 { return percentile(x.Lags, 99) })
	maxs := of(r.Lag, func(x lagRun) float64 { return percentile(x.Lags, 100) })
	rate := of(r.Lag, func(x lagRun) float64 { return x.Rate })
	errs, unseen := 0, 0
	for _, x := range r.Lag {
		errs += x.Errors
		unseen += x.Unseen
	}
	row.Measured = fmt.Sprintf("lag p50 %s, **p99 %s**, max %s; **%s mutations/s reached** of %s asked; %d errors",
		spread(p50s, fmtUS), spread(p99s, fmtUS), spread(maxs, fmtUS), spread(rate, fmtInt), fmtInt(float64(r.LagRate)), errs)
	if unseen > 0 {
		row.Measured += fmt.Sprintf("; %d mutations not in the read model a minute later", unseen)
	}
	capped := 0
	for _, x := range r.Lag {
		capped += x.Capped
	}
	if capped > 0 {
		row.Measured += fmt.Sprintf("; %d mutations waited for one of the %d connections", capped, lagInFlight)
	}
	if v := p99s.median(); v > targetLagP99US {
		row.Misses = append(row.Misses, fmt.Sprintf("p99 %s > 250 ms", fmtUS(v)))
	}
	if v := rate.median(); v < 0.95*float64(r.LagRate) {
		row.Misses = append(row.Misses, fmt.Sprintf("the API answered %s mutations/s, not %s", fmtInt(v), fmtInt(float64(r.LagRate))))
	}
	if errs > 0 {
		row.Misses = append(row.Misses, fmt.Sprintf("%d mutations failed", errs))
	}
	if unseen > 0 {
		row.Misses = append(row.Misses, fmt.Sprintf("%d mutations never projected", unseen))
	}
	return row
}

func (r results) restartRow() row {
	row := row{
		Figure:  fmt.Sprintf("worker restart: `tokenledger project` SIGKILLed under %s and started again, on the 3-node cluster", r.clusterLoad()),
		Target:  "progress within 1 s of the restart",
		Command: "`make bench` (bench/cluster.go): from the new process's start until the lifecycle checkpoint moves (polled every 5 ms)",
	}
	if row, skipped := r.clusterUnmeasured(row, len(r.Restarts) > 0); skipped {
		return row
	}
	v := of(r.Restarts, func(x workerRestart) float64 { return x.Progress })
	row.Measured = fmt.Sprintf("**%s** to first progress, over %d restart(s)", spread(v, fmtSeconds), len(v))
	if m := v.max(); m > targetRestartSeconds {
		row.Misses = append(row.Misses, fmt.Sprintf("worst %s > 1 s", fmtSeconds(m)))
	}
	return row
}

func (r results) takeoverRow() row {
	row := row{
		Figure:  fmt.Sprintf("projector takeover: the active of two `tokenledger project` processes SIGKILLed under %s, on the 3-node cluster", r.clusterLoad()),
		Target:  "the standby takes over within 2 s",
		Command: "`make bench` (bench/cluster.go): from the kill until the lifecycle checkpoint moves (polled every 5 ms)",
	}
	if row, skipped := r.clusterUnmeasured(row, len(r.Takeovers) > 0); skipped {
		return row
	}
	v := of(r.Takeovers, func(x workerRestart) float64 { return x.Progress })
	row.Measured = fmt.Sprintf("**%s** from the kill to the standby's first progress, over %d takeover(s)", spread(v, fmtSeconds), len(v))
	if m := v.max(); m > targetTakeoverSeconds {
		row.Misses = append(row.Misses, fmt.Sprintf("worst %s > 2 s", fmtSeconds(m)))
	}
	return row
}

func (r results) electionRow() row {
	row := row{
		Figure:  "stream-leader loss: SIGKILL of the lifecycle stream's leader (3-node R3 cluster) under a steady issue load through 2 serve nodes, restarted later",
		Target:  "0 client errors; max request latency ≤ the election time + 1 s",
		Command: "`make bench` (bench/cluster.go; " + r.Cluster + ")",
	}
	if row, skipped := r.clusterUnmeasured(row, len(r.Election) > 0); skipped {
		return row
	}
	e := r.Election[0]
	row.Measured = fmt.Sprintf("new leader after **%.2f s**; **max request latency %s**, p99 %s; **%d of %d requests over 1 s**; **%d client errors**; %s issues/s started",
		e.Election, fmtUS(e.MaxLatency), fmtUS(e.P99), e.Slow, e.Requests, e.Errors, fmtInt(e.Rate))
	if e.Errors > 0 {
		row.Measured += " (first: " + strings.Join(e.FirstErrors, "; ") + ")"
		row.Misses = append(row.Misses, fmt.Sprintf("%d client errors", e.Errors))
	}
	if e.Election == 0 {
		row.Misses = append(row.Misses, "no new leader seen within the run")
	} else if e.MaxLatency/1e6 > e.Election+targetElectionMargin {
		row.Misses = append(row.Misses, fmt.Sprintf("max %s > election %.2f s + 1 s", fmtUS(e.MaxLatency), e.Election))
	}
	return row
}

// clusterLoad describes the load the worker rows ran under.
func (r results) clusterLoad() string {
	if len(r.Election) > 0 {
		return fmt.Sprintf("%s issues/s", fmtInt(r.Election[0].Rate))
	}
	return "a steady issue load"
}

func (r results) stateAtRow() row {
	row := row{
		Figure:  fmt.Sprintf("state of every token at an instant (`state --at`: `GET /v1/state?at=`), over the %s-token stream", fmtInt(float64(r.Tokens))),
		Target:  "≤ 3 s over 1,000,000 events",
		Command: "`GET /v1/state?at=NOW` on `tokenledger dev`, the answer written to a file (request to last byte)",
	}
	if row, skipped := unmeasured(row, len(r.StateAt) > 0); skipped {
		return row
	}
	secs := of(r.StateAt, func(x stateRun) float64 { return x.Seconds })
	x := r.StateAt[0]
	row.Measured = fmt.Sprintf("**%s** for %s tokens at stream sequence %s (%.0f MB of JSON)", spread(secs, fmtSeconds), fmtInt(float64(x.Tokens)),
		fmtInt(float64(x.Events)), float64(x.Bytes)/1e6)
	row.Ratio = fmt.Sprintf("%s events/s", fmtInt(float64(x.Events)/secs.median()))
	if v := secs.median(); v > targetStateAtSeconds {
		row.Misses = append(row.Misses, fmt.Sprintf("%s > 3 s", fmtSeconds(v)))
	}
	return row
}
