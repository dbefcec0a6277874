package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// results is everything a run measured; results.json in the work
// directory holds it, and markdown renders the table.
type results struct {
	// Quick marks a BENCH_QUICK run; Machine is where it ran.
	Quick   bool
	Machine machine
	// Runs, Wrk, Tokens, SeedTokens, IssueRate, IssueFor and Revocations
	// are the run's parameters.
	Runs        int
	Wrk         wrkParams
	Tokens      int
	SeedTokens  int
	IssueRate   int
	IssueFor    string
	Revocations int
	LagRate     int
	LagFor      string
	WebhookRate int
	WebhookFor  string
	Cluster     string // the cluster scenarios' parameters

	// Secret, Validate, Memory and Append are the Go benchmarks' results;
	// GoCommands the commands that produced them.
	Secret, Validate, Memory, Append []goBench
	// UIList is the web UI's list page benchmark.
	UIList     []goBench
	GoCommands map[string]string

	// DRF, TL1k, Bare and TLLarge are the wrk runs of the peer, of
	// tokenledger with SeedTokens and with Tokens tokens, and of the bare
	// handler; PG1k and PGLarge what PostgreSQL executed meanwhile.
	DRF     drfResult
	TL1k    []wrkResult
	Bare    []wrkResult
	PG1k    []pgLoad
	TLLarge []wrkResult
	PGLarge []pgLoad
	// Revocation, Issue, Rebuild, Export and Verify are the other
	// scenarios' runs; SeedRate the rate the large scenario's tokens were
	// published at; ExportMissing why export was not measured, if it was
	// not.
	Revocation    []revocationRun
	Issue         []issueRun
	SeedRate      float64
	Rebuild       []rebuildResult
	Export        []exportRun
	Verify        []exportRun
	ExportMissing string
	// Lag, LiveProjection and StateAt are the projection-lag scenario's
	// runs, the live projector's throughput during the large seed, and
	// the runs of state --at over the large stream.
	Lag            []lagRun
	LiveProjection []liveProjection
	StateAt        []stateRun
	// Webhooks are the webhook scenario's runs.
	Webhooks []webhookRun
	// ClusterRevocation, Restarts, Takeovers and Election are the cluster
	// scenarios' runs; ClusterMissing why they were not measured, if they
	// were not.
	ClusterRevocation []revocationRun
	Restarts          []workerRestart
	Takeovers         []workerRestart
	Election          []electionRun
	ClusterMissing    string
}

// Targets of the product brief.
const (
	targetValidatePerCore = 1_000_000
	targetValidateP99NS   = 2_000
	targetDRFRatio        = 20
	targetBareShare       = 0.90
	targetRevokeP99US     = 5_000
	targetAppendShare     = 0.80 // of a raw synchronous publish
	targetIssueP99US      = 5_000
	targetRebuildRate     = 300_000
	targetExportRate      = 300_000
	targetStateAtSeconds  = 3
	targetBytesPerToken   = 64
	targetLiveProjection  = 20_000
	targetLagP99US        = 250_000
	targetRestartSeconds  = 1
	targetTakeoverSeconds = 2
	targetElectionMargin  = 1 // s over the election
)

func rps(r wrkResult) float64  { return r.RPS }
func p50(r wrkResult) float64  { return r.P50 }
func p99(r wrkResult) float64  { return r.P99 }
func p999(r wrkResult) float64 { return r.P999 }

// markdown renders the machine, the parameters and the table.
func (r results) markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "**Measured:** %s UTC by `make bench`", m.Date.Format("2006-01-02 15:04"))
	if r.Quick {
		b.WriteString(" (BENCH_QUICK: one short run each, figures indicative only)")
	}
	fmt.Fprintf(&b, ".\n\n**Machine:** %s. Other processes used %.2f cores on average during the run (%.2f at most over ten seconds): the figures shared the %d cores with them.\n\n", m, m.OthersAvg, m.OthersPeak, m.CPUs)
	fmt.Fprintf(&b, "**HTTP load:** `wrk -t%d -c%d -d%s --latency` after a %s warm-up, on loopback, the same for tokenledger, the bare handler and the DRF peer; wrk and the server share the %d cores (nothing is pinned). ",
		r.Wrk.Threads, r.Wrk.Conns, r.Wrk.Duration, r.Wrk.Warmup, m.CPUs)
	fmt.Fprintf(&b, "Each figure is the median of %d run(s), the range (min–max) in brackets.\n\n", r.Runs)
	b.WriteString(table(r.rows()))
	return b.String()
}

// notMeasured is the measured cell of a figure a run left out.
const notMeasured = "not measured in this run"

// unmeasured returns r without figures when the run has none for it.
func unmeasured(r row, have bool) (row, bool) {
	if have {
		return r, false
	}
	r.Measured, r.Ratio, r.Misses = notMeasured, "", nil
	return r, true
}

func (r results) rows() []row {
	var rows []row
	rows = append(rows, r.validationRows()...)
	rows = append(rows, r.httpRows()...)
	rows = append(rows, r.pgRow(fmt.Sprintf("database writes during forward-auth load, %s tokens", fmtInt(float64(r.SeedTokens))), r.PG1k))
	rows = append(rows, r.pgRow(fmt.Sprintf("database writes during forward-auth load, %s tokens", fmtInt(float64(r.Tokens))), r.PGLarge))
	rows = append(rows, r.usageLagRow())
	rows = append(rows, r.revocationRow(fmt.Sprintf("revocation seen by the 2 other validators, 3 `tokenledger serve` processes on `tokenledger dev` (one nats-server), %d revocations per run", r.Revocations), r.Revocation))
	rows = append(rows, r.revocationRow(fmt.Sprintf("revocation seen by the 2 other validators, 3 `tokenledger serve` processes on the 3-node R3 cluster (`tokenledger cluster`), %d revocations per run", r.Revocations), r.ClusterRevocation))
	rows = append(rows, r.appendRows()...)
	rows = append(rows, r.issueRow())
	rows = append(rows, r.liveProjectionRow(), r.lagRow())
	rows = append(rows, r.restartRow(), r.takeoverRow(), r.electionRow())
	rows = append(rows, r.rebuildRow())
	rows = append(rows, r.exportRows()...)
	rows = append(rows, r.stateAtRow())
	rows = append(rows, r.webhookRow())
	rows = append(rows, r.memoryRows()...)
	rows = append(rows, r.uiListRow())
	return rows
}

func (r results) goMetric(res []goBench, name string, procs int, unit string) series {
	return metricSeries(res, name, procs, unit)
}

func (r results) validationRows() []row {
	const serial, parallel = "BenchmarkValidate/system-clock/serial", "BenchmarkValidate/system-clock/parallel"
	rate := r.goMetric(r.Validate, serial, 1, "validations/s")
	p99s := r.goMetric(r.Validate, serial, 1, "p99-ns")
	allocs := r.goMetric(r.Validate, serial, 1, "allocs/op")
	nsop := r.goMetric(r.Validate, serial, 1, "ns/op")
	one := row{
		Figure:   "in-process validation, 1 core (`Validate`, known token, system clock, usage counted)",
		Target:   "≥ 1,000,000/s per core, p99 ≤ 2 µs, 0 allocations",
		Measured: fmt.Sprintf("**%s**, %s per validation; p99 %s; %s allocs/op", spread(rate, fmtRate), spread(nsop, fmtNS), spread(p99s, fmtNS), spread(allocs, fmtInt)),
		Command:  "`" + r.GoCommands["validate"] + "` (serial, GOMAXPROCS 1)",
	}
	if v := rate.median(); v < targetValidatePerCore {
		one.Misses = append(one.Misses, fmt.Sprintf("%s < 1,000,000/s", fmtRate(v)))
	}
	if v := p99s.median(); v > targetValidateP99NS {
		one.Misses = append(one.Misses, fmt.Sprintf("p99 %s > 2 µs", fmtNS(v)))
	}
	if v := allocs.max(); v > 0 {
		one.Misses = append(one.Misses, fmt.Sprintf("%s allocs/op", fmtInt(v)))
	}
	one, _ = unmeasured(one, len(rate) > 0)

	prate := r.goMetric(r.Validate, parallel, 2, "validations/s")
	pallocs := r.goMetric(r.Validate, parallel, 2, "allocs/op")
	two := row{
		Figure:   "in-process validation, 2 cores (`Validate` from 2 goroutines)",
		Target:   "≥ 1,000,000/s per core, 0 allocations",
		Measured: fmt.Sprintf("**%s** = %s per core; %s allocs/op", spread(prate, fmtRate), fmtRate(prate.median()/2), spread(pallocs, fmtInt)),
		Command:  "same (parallel, GOMAXPROCS 2)",
	}
	if v := prate.median() / 2; v < targetValidatePerCore {
		two.Misses = append(two.Misses, fmt.Sprintf("%s per core < 1,000,000/s", fmtRate(v)))
	}
	if v := pallocs.max(); v > 0 {
		two.Misses = append(two.Misses, fmt.Sprintf("%s allocs/op", fmtInt(v)))
	}
	two, _ = unmeasured(two, len(prate) > 0)

	check := r.goMetric(r.Secret, "BenchmarkCheckSecret", 1, "ns/op")
	checkAllocs := r.goMetric(r.Secret, "BenchmarkCheckSecret", 1, "allocs/op")
	parse := r.goMetric(r.Secret, "BenchmarkParseSecret", 1, "ns/op")
	parseAllocs := r.goMetric(r.Secret, "BenchmarkParseSecret", 1, "allocs/op")
	secret := row{
		Figure: "secret check: format + CRC-32 + SHA-256 (`CheckSecret`); format + CRC-32 alone (`ParseSecret`)",
		Target: "— (part of validation)",
		Measured: fmt.Sprintf("%s per check, %s allocs; %s per parse, %s allocs", spread(check, fmtNS), spread(checkAllocs, fmtInt),
			spread(parse, fmtNS), spread(parseAllocs, fmtInt)),
		Command: "`" + r.GoCommands["secret"] + "`",
	}
	secret, _ = unmeasured(secret, len(check) > 0)
	return []row{one, two, secret}
}

func latencies(runs []wrkResult) string {
	s := fmt.Sprintf("p50 %s, p99 %s", spread(of(runs, p50), fmtUS), spread(of(runs, p99), fmtUS))
	if len(runs) > 0 && runs[0].HasP999 {
		s += ", p99.9 " + spread(of(runs, p999), fmtUS)
	}
	return s
}

// ratios renders tokenledger's rate against the peer's and the ceiling's.
func ratios(v, drf, bare float64) string {
	var parts []string
	if !math.IsNaN(drf) {
		parts = append(parts, fmt.Sprintf("%.1f× DRF", v/drf))
	}
	if !math.IsNaN(bare) {
		parts = append(parts, fmt.Sprintf("%.0f%% of bare", 100*v/bare))
	}
	return strings.Join(parts, "; ")
}

func (r results) httpRows() []row {
	drf := of(r.DRF.Runs, rps).median()
	bare := of(r.Bare, rps).median()
	wrkCmd := fmt.Sprintf("`wrk -t%d -c%d -d%s --latency -s cmd/bench/random_token.lua URL -- TOKENS Authorization 'Bearer '`", r.Wrk.Threads, r.Wrk.Conns, r.Wrk.Duration)
	auth := func(tokens int, runs []wrkResult) row {
		v := of(runs, rps)
		row := row{
			Figure:   fmt.Sprintf("forward-auth over HTTP, `GET /v1/auth` on `tokenledger dev`, %s live tokens, random token per request", fmtInt(float64(tokens))),
			Target:   "≥ 20× DRF TokenAuthentication in the same run; ≥ 90% of a bare Go net/http handler",
			Measured: fmt.Sprintf("**%s req/s**; %s", spread(v, fmtInt), latencies(runs)),
			Ratio:    ratios(v.median(), drf, bare),
			Command:  wrkCmd,
		}
		if row, skipped := unmeasured(row, len(runs) > 0); skipped {
			return row
		}
		if q := v.median() / drf; q < targetDRFRatio {
			row.Misses = append(row.Misses, fmt.Sprintf("%.1f× DRF < 20×", q))
		}
		if q := v.median() / bare; q < targetBareShare {
			row.Misses = append(row.Misses, fmt.Sprintf("%.0f%% of bare < 90%%", 100*q))
		}
		return row
	}
	bareRow, _ := unmeasured(row{
		Figure:   "bare Go net/http handler: 200 with the same headers, no validation (the HTTP ceiling)",
		Target:   "— (ceiling)",
		Measured: fmt.Sprintf("**%s req/s**; %s", spread(of(r.Bare, rps), fmtInt), latencies(r.Bare)),
		Command:  wrkCmd + " on `bench bare-server`",
	}, len(r.Bare) > 0)
	drfRow, _ := unmeasured(row{
		Figure:   "DRF TokenAuthentication on PostgreSQL (peer, case a: one SELECT per request), 1,000 tokens",
		Target:   "— (peer)",
		Measured: fmt.Sprintf("**%s req/s**; %s", spread(of(r.DRF.Runs, rps), fmtInt), latencies(r.DRF.Runs)),
		Command:  fmt.Sprintf("`CASES=a RUNS=%d DURATION=%s WARMUP=%s THREADS=%d CONNS=%d ../shared/peers/drf/run.sh`", r.Runs, r.Wrk.Duration, r.Wrk.Warmup, r.Wrk.Threads, r.Wrk.Conns),
	}, len(r.DRF.Runs) > 0)
	return []row{auth(r.SeedTokens, r.TL1k), auth(r.Tokens, r.TLLarge), bareRow, drfRow}
}

func (r results) pgRow(figure string, loads []pgLoad) row {
	row := row{
		Figure:  figure,
		Target:  "0 statements on the hot path; usage writes ≤ 1 statement per worker flush, rows ≤ distinct tokens used",
		Command: "pg_stat_statements of the read model's database and the usage stream's length, before and after each measured wrk run (+2.5 s for the last flush)",
	}
	if row, skipped := unmeasured(row, len(loads) > 0); skipped {
		return row
	}
	other := of(loads, func(l pgLoad) float64 { return float64(l.OtherWrites) })
	stmts := of(loads, func(l pgLoad) float64 { return l.rate(l.Statements) })
	upserts := of(loads, func(l pgLoad) float64 { return float64(l.UsageUpserts) })
	batches := of(loads, func(l pgLoad) float64 { return float64(l.Batches) })
	// A load of d seconds is flushed by the validator in d + 1 flushes,
	// the first and the last partial.
	rows := of(loads, func(l pgLoad) float64 { return float64(l.UsageRows) / (l.Seconds + 1) })
	uses := of(loads, func(l pgLoad) float64 { return float64(l.UsageEvents) / (l.Seconds + 1) })
	behind := of(loads, func(l pgLoad) float64 { return float64(l.UsageBehind) })
	perUse := of(loads, func(l pgLoad) float64 { return float64(l.UsageRows) / float64(l.UsageApplied) })
	reqs := of(loads, func(l pgLoad) float64 { return float64(l.Requests) })
	row.Measured = fmt.Sprintf("**%s** write statements outside the usage batches in %s requests; %s statements/s in all (reads and transaction control included); usage: **%s upserts in %s batches**; per 1 s validator flush, **%s rows** written for **%s distinct tokens used** (the flush's token.used events)",
		spread(other, fmtInt), spread(reqs, fmtInt), spread(stmts, fmtInt), spread(upserts, fmtInt), spread(batches, fmtInt),
		spread(rows, fmtInt), spread(uses, fmtInt))
	if behind.max() > 0 {
		row.Measured += fmt.Sprintf("; the usage consumer was %s events behind 2.5 s after the load", spread(behind, fmtInt))
	}
	row.Ratio = fmt.Sprintf("%.2f rows per token use applied", perUse.median())
	if other.max() > 0 {
		row.Misses = append(row.Misses, fmt.Sprintf("%s writes on the hot path", fmtInt(other.max())))
	}
	for _, l := range loads {
		if l.UsageUpserts > l.Batches {
			row.Misses = append(row.Misses, fmt.Sprintf("%d usage statements for %d batches", l.UsageUpserts, l.Batches))
			break
		}
	}
	for _, l := range loads {
		if l.UsageRows > l.UsageApplied {
			row.Misses = append(row.Misses, fmt.Sprintf("%d rows for %d token uses applied", l.UsageRows, l.UsageApplied))
			break
		}
	}
	return row
}

func (r results) revocationRow(figure string, runs []revocationRun) row {
	p50s := of(runs, func(x revocationRun) float64 { return percentile(x.Samples, 50) })
	p99s := of(runs, func(x revocationRun) float64 { return percentile(x.Samples, 99) })
	maxs := of(runs, func(x revocationRun) float64 { return percentile(x.Samples, 100) })
	immediate, total := 0, 0
	for _, x := range runs {
		immediate += x.OriginImmediate
		total += x.Revocations
	}
	row := row{
		Figure: figure,
		Target: "p99 ≤ 5 ms after the revoke call returns",
		Measured: fmt.Sprintf("p50 %s, **p99 %s**, max %s (each sample: from `DELETE /v1/tokens/{id}` returning on node 1 until node 2 or 3 answers 401, polled back to back); node 1 refused at once %d of %d",
			spread(p50s, fmtUS), spread(p99s, fmtUS), spread(maxs, fmtUS), immediate, total),
		Command: "`make bench` (bench/revoke.go)",
	}
	if row, skipped := unmeasured(row, len(runs) > 0); skipped {
		return row
	}
	if v := p99s.median(); v > targetRevokeP99US {
		row.Misses = append(row.Misses, fmt.Sprintf("p99 %s > 5 ms", fmtUS(v)))
	}
	if immediate < total {
		row.Misses = append(row.Misses, fmt.Sprintf("the revoking node still accepted %d of %d tokens right after the call", total-immediate, total))
	}
	return row
}

func (r results) appendRows() []row {
	raw := r.goMetric(r.Append, "BenchmarkAppend/R1/raw-publish", 2, "events/s")
	rawP50 := r.goMetric(r.Append, "BenchmarkAppend/R1/raw-publish", 2, "p50-µs")
	rawP99 := r.goMetric(r.Append, "BenchmarkAppend/R1/raw-publish", 2, "p99-µs")
	cmd := "`" + r.GoCommands["append"] + "`"
	var rows []row
	for _, c := range []struct {
		name, figure string
		compare      bool
	}{
		{"BenchmarkAppend/R1/sequential", "lifecycle append, one writer, R1 (one `token.issued` with its concurrency check and event id)", true},
		{"BenchmarkAppend/R1/concurrent-16", "lifecycle append, 16 writers, R1", false},
	} {
		rate := r.goMetric(r.Append, c.name, 2, "events/s")
		p50s := r.goMetric(r.Append, c.name, 2, "p50-µs")
		p99s := r.goMetric(r.Append, c.name, 2, "p99-µs")
		row := row{
			Figure:   c.figure,
			Target:   "— (throughput)",
			Measured: fmt.Sprintf("**%s events/s**; append p50 %s, p99 %s", spread(rate, fmtInt), spread(p50s, fmtUS), spread(p99s, fmtUS)),
			Command:  cmd,
		}
		if c.compare {
			row.Target = "≥ 80% of a raw JetStream synchronous publish in the same run"
		}
		if row, skipped := unmeasured(row, len(rate) > 0); skipped {
			rows = append(rows, row)
			continue
		}
		if c.compare {
			if len(raw) == 0 {
				row.Ratio = "no raw publish measured"
			} else {
				q := rate.median() / raw.median()
				row.Ratio = fmt.Sprintf("%.0f%% of the raw publish", 100*q)
				if q < targetAppendShare {
					row.Misses = append(row.Misses, fmt.Sprintf("%.0f%% of the raw publish < 80%%", 100*q))
				}
			}
		}
		rows = append(rows, row)
	}
	rawRow, _ := unmeasured(row{
		Figure:   "raw JetStream synchronous publish, one writer, R1: the same encoded event, no expectation, no event id (the append's floor)",
		Target:   "— (comparison)",
		Measured: fmt.Sprintf("**%s events/s**; publish p50 %s, p99 %s", spread(raw, fmtInt), spread(rawP50, fmtUS), spread(rawP99, fmtUS)),
		Command:  cmd + " (raw-publish)",
	}, len(raw) > 0)
	return append(rows, rawRow)
}

func (r results) issueRow() row {
	p50s := of(r.Issue, func(x issueRun) float64 { return percentile(x.Latencies, 50) })
	p99s := of(r.Issue, func(x issueRun) float64 { return percentile(x.Latencies, 99) })
	maxs := of(r.Issue, func(x issueRun) float64 { return percentile(x.Latencies, 100) })
	rate := of(r.Issue, func(x issueRun) float64 { return x.Rate })
	row := row{
		Figure: fmt.Sprintf("issue call latency at %s issues/s, open loop (`POST /v1/tokens` on `tokenledger dev`, %s per run, latency from each request's scheduled instant)", fmtInt(float64(r.IssueRate)), r.IssueFor),
		Target: "p99 ≤ 5 ms at 1,000 issues/s",
		Measured: fmt.Sprintf("p50 %s, **p99 %s**, max %s; %s issues/s started",
			spread(p50s, fmtUS), spread(p99s, fmtUS), spread(maxs, fmtUS), spread(rate, fmtInt)),
		Command: "`make bench` (bench/issue.go)",
	}
	if row, skipped := unmeasured(row, len(r.Issue) > 0); skipped {
		return row
	}
	if v := p99s.median(); v > targetIssueP99US {
		row.Misses = append(row.Misses, fmt.Sprintf("p99 %s > 5 ms", fmtUS(v)))
	}
	return row
}

func (r results) rebuildRow() row {
	rate := of(r.Rebuild, func(x rebuildResult) float64 { return x.Rate })
	secs := of(r.Rebuild, func(x rebuildResult) float64 { return x.Seconds })
	events := 0.0
	if len(r.Rebuild) > 0 {
		events = float64(r.Rebuild[0].Events)
	}
	row := row{
		Figure:   fmt.Sprintf("projection rebuild from the stream (`tokenledger rebuild`), %s events (the live projector running, caught up)", fmtInt(events)),
		Target:   "≥ 300,000 events/s (1 M events in under 3.4 s)",
		Measured: fmt.Sprintf("**%s events/s** = %s s", spread(rate, fmtInt), spread(secs, func(v float64) string { return fmt.Sprintf("%.2f", v) })),
		Command:  "`tokenledger rebuild --nats-url … --postgres-url …` (its printed events/s)",
	}
	if row, skipped := unmeasured(row, len(rate) > 0); skipped {
		return row
	}
	if v := rate.median(); v < targetRebuildRate {
		row.Misses = append(row.Misses, fmt.Sprintf("%s events/s < 300,000", fmtInt(v)))
	}
	return row
}

func (r results) exportRows() []row {
	mk := func(figure, command string, runs []exportRun) row {
		row := row{Figure: figure, Target: "≥ 300,000 events/s", Command: command}
		if r.ExportMissing != "" {
			row.Measured = "not yet measured: " + r.ExportMissing
			return row
		}
		if row, skipped := unmeasured(row, len(runs) > 0); skipped {
			return row
		}
		rate := of(runs, func(x exportRun) float64 { return x.Rate })
		records := 0.0
		if len(runs) > 0 {
			records = float64(runs[0].Records)
		}
		row.Measured = fmt.Sprintf("**%s events/s** over %s events", spread(rate, fmtInt), fmtInt(records))
		if v := rate.median(); v < targetExportRate {
			row.Misses = append(row.Misses, fmt.Sprintf("%s events/s < 300,000", fmtInt(v)))
		}
		return row
	}
	return []row{
		mk("export of the whole lifecycle stream, JSON lines, signed", "`tokenledger export --from … --to … --out FILE --key KEY` (its printed events/s)", r.Export),
		mk("export verification (signature, file hash, chain, counts)", "`tokenledger export verify FILE --pubkey PUB` (records / the command's wall time)", r.Verify),
	}
}

// memoryRows reports every sub-benchmark of the validator's memory
// benchmarks that prints bytes/token (1 M tokens, and 10 M where the
// benchmark has that case), a row for a size it lacks, and the churn
// benchmark's figures if there is one.
func (r results) memoryRows() []row {
	var names []string
	for _, b := range r.Memory {
		if _, ok := b.Metrics["bytes/token"]; ok && !slices.Contains(names, b.Name) {
			names = append(names, b.Name)
		}
	}
	var rows []row
	has10M := false
	for _, name := range names {
		bpt := r.goMetric(r.Memory, name, 2, "bytes/token")
		figure := "validator memory, `" + name + "`"
		if name == "BenchmarkMemoryPerToken" {
			figure = "validator memory, 1,000,000 tokens (100,000 owners, 100 scope sets)"
		}
		if strings.Contains(name, "10M") || strings.Contains(name, "10000000") || strings.Contains(name, "10_000_000") {
			has10M = true
		}
		row := row{
			Figure:   figure,
			Target:   "≤ 64 bytes per live token (live heap)",
			Measured: fmt.Sprintf("**%s B/token**", spread(bpt, fmtFloat)),
			Command:  "`" + r.GoCommands["memory"] + "`",
		}
		if v := bpt.median(); v > targetBytesPerToken {
			row.Misses = append(row.Misses, fmt.Sprintf("%s B/token > 64", fmtFloat(v)))
		}
		rows = append(rows, row)
	}
	if len(names) == 0 {
		rows = append(rows, row{Figure: "validator memory, 1,000,000 tokens", Target: "≤ 64 bytes per live token (live heap)",
			Measured: notMeasured, Command: "`" + r.GoCommands["memory"] + "`"})
	}
	// A size or a benchmark the run's build lacks says so; a run that ran
	// no memory benchmark at all says only that.
	lacking := func(why string) string {
		if len(r.Memory) == 0 {
			return notMeasured
		}
		return "not measured: " + why
	}
	if !has10M {
		rows = append(rows, row{Figure: "validator memory, 10,000,000 tokens", Target: "≤ 64 bytes per live token (live heap)",
			Measured: lacking("the memory benchmark has no 10 M case in this build"), Command: "`" + r.GoCommands["memory"] + "`"})
	}
	var churn []string
	for _, b := range r.Memory {
		if strings.Contains(strings.ToLower(b.Name), "churn") && !slices.Contains(churn, b.Name) {
			churn = append(churn, b.Name)
		}
	}
	if len(churn) == 0 {
		rows = append(rows, row{Figure: "validator heap under churn (a simulated year of issue/expire/revoke)", Target: "heap proportional to the live set, not to the history",
			Measured: lacking("no churn benchmark in this build"), Command: "—"})
	}
	for _, name := range churn {
		var metrics []string
		for _, b := range r.Memory {
			if b.Name != name {
				continue
			}
			units := make([]string, 0, len(b.Metrics))
			for u := range b.Metrics {
				if u != "ns/op" && u != "B/op" && u != "allocs/op" {
					units = append(units, u)
				}
			}
			slices.Sort(units)
			for _, u := range units {
				metrics = append(metrics, fmt.Sprintf("%s %s", fmtFloat(b.Metrics[u]), u))
			}
			break
		}
		rows = append(rows, row{Figure: "validator heap under churn, `" + name + "`", Target: "heap proportional to the live set, not to the history",
			Measured: strings.Join(metrics, "; "), Command: "`" + r.GoCommands["memory"] + "`"})
	}
	return rows
}
