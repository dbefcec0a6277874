package main

import (
	"fmt"
	"math"
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

	// Secret, Validate, Memory and Append are the Go benchmarks' results;
	// GoCommands the commands that produced them.
	Secret, Validate, Memory, Append []goBench
	GoCommands                       map[string]string

	// DRF, TL1k, Bare and TLLarge are the wrk runs of the peer, of
	// tokenledger with SeedTokens and with Tokens tokens, and of the bare
	// handler; PG1k and PGLarge what PostgreSQL executed meanwhile.
	DRF     drfResult
	TL1k    []wrkResult
	Bare    []wrkResult
	PG1k    []pgLoad
	TLLarge []wrkResult
	PGLarge []pgLoad
	// Revocation, Issue, Replay, Export and Verify are the other
	// scenarios' runs; SeedRate the rate the large scenario's tokens were
	// published at; ExportMissing why export was not measured, if it was
	// not.
	Revocation    []revocationRun
	Issue         []issueRun
	SeedRate      float64
	Replay        []replayResult
	Export        []exportRun
	Verify        []exportRun
	ExportMissing string
}

// Targets of the product brief.
const (
	targetValidatePerCore = 1_000_000
	targetValidateP99NS   = 2_000
	targetDRFRatio        = 20
	targetBareShare       = 0.80
	targetRevokeP99US     = 10_000
	targetAppendRate      = 20_000
	targetIssueP99US      = 5_000
	targetReplayRate      = 100_000
	targetExportRate      = 200_000
	targetBytesPerToken   = 150
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
	rows = append(rows, r.revocationRow())
	rows = append(rows, r.appendRows()...)
	rows = append(rows, r.issueRow(), r.replayRow())
	rows = append(rows, r.exportRows()...)
	rows = append(rows, r.memoryRow())
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
	wrkCmd := fmt.Sprintf("`wrk -t%d -c%d -d%s --latency -s bench/random_token.lua URL -- TOKENS Authorization 'Bearer '`", r.Wrk.Threads, r.Wrk.Conns, r.Wrk.Duration)
	auth := func(tokens int, runs []wrkResult) row {
		v := of(runs, rps)
		row := row{
			Figure:   fmt.Sprintf("forward-auth over HTTP, `GET /v1/auth` on `tokenledger dev`, %s live tokens, random token per request", fmtInt(float64(tokens))),
			Target:   "≥ 20× DRF TokenAuthentication in the same run; ≥ 80% of a bare Go net/http handler",
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
			row.Misses = append(row.Misses, fmt.Sprintf("%.0f%% of bare < 80%%", 100*q))
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

func (r results) revocationRow() row {
	p50s := of(r.Revocation, func(x revocationRun) float64 { return percentile(x.Samples, 50) })
	p99s := of(r.Revocation, func(x revocationRun) float64 { return percentile(x.Samples, 99) })
	maxs := of(r.Revocation, func(x revocationRun) float64 { return percentile(x.Samples, 100) })
	immediate, total := 0, 0
	for _, x := range r.Revocation {
		immediate += x.OriginImmediate
		total += x.Revocations
	}
	row := row{
		Figure: fmt.Sprintf("revocation seen by the 2 other validators, 3 `tokenledger serve` processes on loopback, %d revocations per run", r.Revocations),
		Target: "p99 ≤ 10 ms after the revoke call returns",
		Measured: fmt.Sprintf("p50 %s, **p99 %s**, max %s (each sample: from `DELETE /v1/tokens/{id}` returning on node 1 until node 2 or 3 answers 401, polled back to back); node 1 refused at once %d of %d",
			spread(p50s, fmtUS), spread(p99s, fmtUS), spread(maxs, fmtUS), immediate, total),
		Command: "`make bench` (bench/revoke.go)",
	}
	if row, skipped := unmeasured(row, len(r.Revocation) > 0); skipped {
		return row
	}
	if v := p99s.median(); v > targetRevokeP99US {
		row.Misses = append(row.Misses, fmt.Sprintf("p99 %s > 10 ms", fmtUS(v)))
	}
	if immediate < total {
		row.Misses = append(row.Misses, fmt.Sprintf("the revoking node still accepted %d of %d tokens right after the call", total-immediate, total))
	}
	return row
}

func (r results) appendRows() []row {
	var rows []row
	for _, c := range []struct{ name, figure string }{
		{"BenchmarkAppend/R1/sequential", "lifecycle append, one writer, R1 (one `token.issued` with its concurrency check)"},
		{"BenchmarkAppend/R1/concurrent-16", "lifecycle append, 16 writers, R1"},
	} {
		rate := r.goMetric(r.Append, c.name, 2, "events/s")
		p50s := r.goMetric(r.Append, c.name, 2, "p50-µs")
		p99s := r.goMetric(r.Append, c.name, 2, "p99-µs")
		row := row{
			Figure:   c.figure,
			Target:   "≥ 20,000 events/s",
			Measured: fmt.Sprintf("**%s events/s**; append p50 %s, p99 %s", spread(rate, fmtInt), spread(p50s, fmtUS), spread(p99s, fmtUS)),
			Command:  "`" + r.GoCommands["append"] + "`",
		}
		if row, skipped := unmeasured(row, len(rate) > 0); skipped {
			rows = append(rows, row)
			continue
		}
		if v := rate.median(); v < targetAppendRate {
			row.Misses = append(row.Misses, fmt.Sprintf("%s events/s < 20,000", fmtInt(v)))
		}
		rows = append(rows, row)
	}
	return rows
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

func (r results) replayRow() row {
	rate := of(r.Replay, func(x replayResult) float64 { return x.Rate })
	secs := of(r.Replay, func(x replayResult) float64 { return x.Seconds })
	events := 0.0
	if len(r.Replay) > 0 {
		events = float64(r.Replay[0].Events)
	}
	row := row{
		Figure:   fmt.Sprintf("projection rebuild from the stream (`tokenledger replay`), %s events (the live projector stopped)", fmtInt(events)),
		Target:   "≥ 100,000 events/s (1 M events in under 10 s)",
		Measured: fmt.Sprintf("**%s events/s** = %s s", spread(rate, fmtInt), spread(secs, func(v float64) string { return fmt.Sprintf("%.2f", v) })),
		Command:  "`tokenledger replay --nats-url … --postgres-url …` (its printed events/s)",
	}
	if row, skipped := unmeasured(row, len(rate) > 0); skipped {
		return row
	}
	if v := rate.median(); v < targetReplayRate {
		row.Misses = append(row.Misses, fmt.Sprintf("%s events/s < 100,000", fmtInt(v)))
	}
	return row
}

func (r results) exportRows() []row {
	mk := func(figure, command string, runs []exportRun) row {
		row := row{Figure: figure, Target: "≥ 200,000 events/s", Command: command}
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
			row.Misses = append(row.Misses, fmt.Sprintf("%s events/s < 200,000", fmtInt(v)))
		}
		return row
	}
	return []row{
		mk("export of the whole lifecycle stream, JSON lines, signed", "`tokenledger export --from … --to … --out FILE --key KEY` (its printed events/s)", r.Export),
		mk("export verification (signature, file hash, chain, counts)", "`tokenledger export verify FILE --pubkey PUB` (records / the command's wall time)", r.Verify),
	}
}

func (r results) memoryRow() row {
	bpt := r.goMetric(r.Memory, "BenchmarkMemoryPerToken", 2, "bytes/token")
	row := row{
		Figure:   "validator memory, 1,000,000 tokens (100,000 owners, 100 scope sets)",
		Target:   "≤ 150 bytes per active token (1 M tokens ≤ 150 MB)",
		Measured: fmt.Sprintf("**%s B/token**", spread(bpt, fmtFloat)),
		Command:  "`" + r.GoCommands["memory"] + "`",
	}
	if row, skipped := unmeasured(row, len(bpt) > 0); skipped {
		return row
	}
	if v := bpt.median(); v > targetBytesPerToken {
		row.Misses = append(row.Misses, fmt.Sprintf("%s B/token > 150", fmtFloat(v)))
	}
	return row
}
