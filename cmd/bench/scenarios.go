package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The Go benchmarks run, with the GOMAXPROCS values they run at.
var (
	specSecret   = goBenchSpec{pkg: "./domain", pattern: "^(BenchmarkCheckSecret|BenchmarkParseSecret)$", cpus: []int{1}}
	specValidate = goBenchSpec{pkg: "./validator", pattern: "^BenchmarkValidate$/^system-clock$", cpus: []int{1, 2}}
	specMemory   = goBenchSpec{pkg: "./validator", pattern: "^(BenchmarkMemory.*|BenchmarkChurn.*)$", cpus: []int{2}, benchtime: "1x"}
	specAppend   = goBenchSpec{pkg: "./eventstore", pattern: "^BenchmarkAppend$/^R1$", cpus: []int{2}}
)

func (b *bench) goBenchmarks(ctx context.Context) error {
	for _, step := range []struct {
		spec goBenchSpec
		into *[]goBench
	}{
		{specSecret, &b.res.Secret},
		{specValidate, &b.res.Validate},
		{specMemory, &b.res.Memory},
		{specAppend, &b.res.Append},
		{specUIList, &b.res.UIList},
	} {
		logf("go benchmarks: %s", step.spec.command(b.cfg.goCount, b.cfg.goBenchtime))
		res, err := b.runGoBench(ctx, step.spec)
		if err != nil {
			return err
		}
		*step.into = res
	}
	b.res.GoCommands = map[string]string{}
	for k, s := range map[string]goBenchSpec{"secret": specSecret, "validate": specValidate, "memory": specMemory, "append": specAppend, "ui_list": specUIList} {
		b.res.GoCommands[k] = s.command(b.cfg.goCount, b.cfg.goBenchtime)
	}
	return nil
}

// stackScenarios runs everything that needs the local stack.
func (b *bench) stackScenarios(ctx context.Context) error {
	data := filepath.Join(b.work, "data")
	logf("starting tokenledger dev on %s", data)
	d, err := b.startDev(ctx, data, nil)
	defer func() { b.stopDev(d) }()
	if err != nil {
		return fmt.Errorf("tokenledger dev: %w", err)
	}
	if err := b.describeStack(ctx, d); err != nil {
		return err
	}
	if err := d.enableStatements(ctx); err != nil {
		return err
	}

	bare, bareURL, err := b.startBare(ctx)
	if err != nil {
		return fmt.Errorf("bare net/http server: %w", err)
	}
	defer b.procs.stop(bare, syscall.SIGTERM, 10*time.Second)

	// Forward-auth with 1,000 tokens, and the bare handler, interleaved.
	logf("issuing %d tokens through the API", b.cfg.seedTokens)
	toks, err := issueTokens(ctx, d.APIURL, d.Admin, "bench", b.cfg.seedTokens)
	if err != nil {
		return err
	}
	small := filepath.Join(b.work, "tokens-1k.txt")
	if err := writeTokenFile(small, toks); err != nil {
		return err
	}
	if err := d.waitProjected(ctx, 2*time.Minute); err != nil {
		return err
	}
	for i := range b.cfg.runs {
		w, l, err := b.authLoad(ctx, d, fmt.Sprintf("wrk-tokenledger-1k-run%d", i+1), small, b.cfg.seedTokens)
		if err != nil {
			return fmt.Errorf("forward-auth, %d tokens: %w", b.cfg.seedTokens, err)
		}
		b.res.TL1k, b.res.PG1k = append(b.res.TL1k, w), append(b.res.PG1k, l)
		logf("forward-auth, %d tokens, run %d: %s req/s, p99 %s; postgres: %d writes outside usage, %d usage upserts, %d usage rows",
			b.cfg.seedTokens, i+1, fmtInt(w.RPS), fmtUS(w.P99), l.OtherWrites, l.UsageUpserts, l.UsageRows)
		if err := b.wrkWarmup(ctx, fmt.Sprintf("wrk-bare-run%d", i+1), bareURL, small); err != nil {
			return err
		}
		w, err = b.wrkMeasure(ctx, fmt.Sprintf("wrk-bare-run%d", i+1), bareURL, small)
		if err != nil {
			return fmt.Errorf("bare net/http: %w", err)
		}
		b.res.Bare = append(b.res.Bare, w)
		logf("bare net/http, run %d: %s req/s, p99 %s", i+1, fmtInt(w.RPS), fmtUS(w.P99))
	}
	b.procs.stop(bare, syscall.SIGTERM, 10*time.Second)

	// Revocation across three serve nodes.
	logf("revocation propagation: 3 serve nodes, %d run(s) of %d revocations", b.cfg.runs, b.cfg.revocations)
	if b.res.Revocation, err = b.measureRevocation(ctx, d, b.cfg.runs, b.cfg.revocations); err != nil {
		return fmt.Errorf("revocation propagation: %w", err)
	}
	if err := d.waitProjected(ctx, 2*time.Minute); err != nil {
		return err
	}

	// Issue latency at 1,000 issues/s, open loop.
	for i := range b.cfg.runs {
		r, err := measureIssue(ctx, d.APIURL, d.Admin, b.cfg.issueRate, b.cfg.issueFor, strconv.Itoa(i))
		if err != nil {
			return fmt.Errorf("issue latency: %w", err)
		}
		if r.Errors > 0 {
			return fmt.Errorf("issue latency: %d of %d issues failed (see above)", r.Errors, r.Errors+len(r.Latencies))
		}
		b.res.Issue = append(b.res.Issue, r)
		logf("issue at %d/s, run %d: %s issues/s started, p50 %s, p99 %s, max %s", b.cfg.issueRate, i+1, fmtInt(r.Rate),
			fmtUS(percentile(r.Latencies, 50)), fmtUS(percentile(r.Latencies, 99)), fmtUS(r.Latencies[len(r.Latencies)-1]))
		if err := d.waitProjected(ctx, 5*time.Minute); err != nil {
			return err
		}
	}

	// Projection lag at lagRate mutations/s through the API.
	for i := range b.cfg.runs {
		logf("projection lag: issues and revokes at %d/s for %s, run %d", b.cfg.lagRate, b.cfg.lagFor, i+1)
		r, err := measureLag(ctx, d, b.cfg.lagRate, b.cfg.lagFor, strconv.Itoa(i))
		if err != nil {
			return fmt.Errorf("projection lag: %w", err)
		}
		b.res.Lag = append(b.res.Lag, r)
		logf("projection lag, run %d: %s mutations/s answered (%d issues, %d revokes, %d errors, %d waited for a connection); lag p50 %s, p99 %s, max %s; %d not seen",
			i+1, fmtInt(r.Rate), r.Issues, r.Revokes, r.Errors, r.Capped, fmtUS(percentile(r.Lags, 50)), fmtUS(percentile(r.Lags, 99)),
			fmtUS(percentile(r.Lags, 100)), r.Unseen)
		if err := d.waitProjected(ctx, 5*time.Minute); err != nil {
			return err
		}
	}

	// A million tokens: seed (while the live projector follows), rebuild,
	// export, restart, state --at, forward-auth.
	large := filepath.Join(b.work, "tokens-large.txt")
	logf("publishing %s token.issued events into the lifecycle stream while the projector follows", fmtInt(float64(b.cfg.tokens)))
	lp, err := b.seedWhileProjecting(ctx, d, large)
	if err != nil {
		return err
	}
	b.res.SeedRate, b.res.LiveProjection = lp.PublishRate, []liveProjection{lp}
	logf("published at %s events/s; the projector applied %s events at %s events/s (peak %s/s), %s behind when the publish ended, caught up %.2f s later",
		fmtInt(lp.PublishRate), fmtInt(float64(lp.Events)), fmtInt(lp.Rate), fmtInt(lp.PeakRate), fmtInt(float64(lp.BehindAtEnd)), lp.CatchUp)
	// The seed leaves the stream's pages dirty; measure the rebuilds, not
	// the kernel's write-back.
	syscall.Sync()
	for i := range b.cfg.runs {
		r, err := b.rebuild(ctx, d, i+1)
		if err != nil {
			return fmt.Errorf("rebuild: %w", err)
		}
		b.res.Rebuild = append(b.res.Rebuild, r)
		logf("rebuild run %d: %s events in %.2f s: %s events/s", i+1, fmtInt(float64(r.Events)), r.Seconds, fmtInt(r.Rate))
	}
	logf("restarting tokenledger dev: the validator loads the snapshot of %s tokens", fmtInt(float64(b.cfg.tokens)))
	b.stopDev(d)
	prev := d
	d, err = b.startDev(ctx, data, prev)
	if err != nil {
		return fmt.Errorf("tokenledger dev (restart): %w", err)
	}
	if err := d.waitProjected(ctx, 2*time.Minute); err != nil {
		return err
	}
	if err := b.exportAndVerify(ctx, d); err != nil {
		return err
	}
	for i := range b.cfg.runs {
		r, err := b.stateAt(ctx, d, i+1)
		if err != nil {
			return fmt.Errorf("state --at: %w", err)
		}
		b.res.StateAt = append(b.res.StateAt, r)
		logf("state --at, run %d: %s tokens at stream sequence %s in %.2f s", i+1, fmtInt(float64(r.Tokens)), fmtInt(float64(r.Events)), r.Seconds)
	}
	for i := range b.cfg.runs {
		w, l, err := b.authLoad(ctx, d, fmt.Sprintf("wrk-tokenledger-large-run%d", i+1), large, b.cfg.tokens)
		if err != nil {
			return fmt.Errorf("forward-auth, %d tokens: %w", b.cfg.tokens, err)
		}
		b.res.TLLarge, b.res.PGLarge = append(b.res.TLLarge, w), append(b.res.PGLarge, l)
		logf("forward-auth, %s tokens, run %d: %s req/s, p99 %s; postgres: %d writes outside usage, %d usage upserts, %d usage rows",
			fmtInt(float64(b.cfg.tokens)), i+1, fmtInt(w.RPS), fmtUS(w.P99), l.OtherWrites, l.UsageUpserts, l.UsageRows)
	}

	// Webhooks last: registering the first endpoint starts the
	// dispatcher's fan-out of every lifecycle event, which would share
	// the cores with the scenarios above.
	for i := range b.cfg.runs {
		r, err := measureWebhooks(ctx, d, b.cfg.webhookRate, b.cfg.webhookFor, strconv.Itoa(i))
		if err != nil {
			return fmt.Errorf("webhooks: %w", err)
		}
		b.res.Webhooks = append(b.res.Webhooks, r)
		logf("webhooks, run %d: %s revokes/s started, %s deliveries/s; revoke→receiver p50 %s, p99 %s; %d errors, %d undelivered",
			i+1, fmtInt(r.Rate), fmtInt(r.Throughput), fmtUS(percentile(r.Latencies, 50)), fmtUS(percentile(r.Latencies, 99)), r.Errors, r.Undelivered)
	}
	return nil
}

// describeStack notes the versions of the stack's servers.
func (b *bench) describeStack(ctx context.Context, d *devStack) error {
	b.machine.NATS = d.nc.ConnectedServerVersion()
	var v string
	if err := d.pool.QueryRow(ctx, `SHOW server_version`).Scan(&v); err != nil {
		return fmt.Errorf("postgres version: %w", err)
	}
	b.machine.Postgres, _, _ = strings.Cut(v, " ")
	return nil
}

// startBare starts this program's bare-server subcommand.
func (b *bench) startBare(ctx context.Context) (*proc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	p, err := b.procs.start("bare-server", b.work, nil, true, self, "bare-server")
	if err != nil {
		return nil, "", err
	}
	line, err := b.procs.waitLine(ctx, p, 30*time.Second, serveListening.MatchString)
	if err != nil {
		return p, "", err
	}
	return p, serveListening.FindStringSubmatch(line)[1] + "/v1/auth", nil
}

// settle is how long after a load the usage it caused takes to reach
// PostgreSQL: the validator's flush interval, the usage consumer's
// longest wait, and a margin.
const settle = 2500 * time.Millisecond

// authLoad runs wrk on the stack's /v1/auth with tokenFile (once the
// usage of earlier loads is applied, and after a warm-up) and counts
// PostgreSQL's statements over the measured run and the usage it flushed
// after.
func (b *bench) authLoad(ctx context.Context, d *devStack, name, tokenFile string, tokens int) (wrkResult, pgLoad, error) {
	url := d.APIURL + "/v1/auth"
	if err := d.waitUsageApplied(ctx, 2*time.Minute); err != nil {
		return wrkResult{}, pgLoad{}, err
	}
	if err := b.wrkWarmup(ctx, name, url, tokenFile); err != nil {
		return wrkResult{}, pgLoad{}, err
	}
	if err := sleep(ctx, settle); err != nil {
		return wrkResult{}, pgLoad{}, err
	}
	before, err := d.snapshot(ctx)
	if err != nil {
		return wrkResult{}, pgLoad{}, err
	}
	w, err := b.wrkMeasure(ctx, name, url, tokenFile)
	if err != nil {
		return w, pgLoad{}, err
	}
	if w.Non2xx > 0 || w.SocketErrors > 0 {
		return w, pgLoad{}, fmt.Errorf("%d answers were not 200 and %d socket errors: every token should be valid", w.Non2xx, w.SocketErrors)
	}
	stopped := time.Now()
	if err := sleep(ctx, settle); err != nil {
		return w, pgLoad{}, err
	}
	after, err := d.snapshot(ctx)
	if err != nil {
		return w, pgLoad{}, err
	}
	dur, _ := time.ParseDuration(b.cfg.wrk.Duration)
	l := loadBetween(before, after, dur.Seconds(), w.Requests)
	// The usage projection's lag once the load has been over for
	// usageLagAfter.
	if err := sleep(ctx, time.Until(stopped.Add(usageLagAfter))); err != nil {
		return w, l, err
	}
	later, err := d.snapshot(ctx)
	if err != nil {
		return w, l, err
	}
	l.UsageBehindLater = int64(later.usageLast - min(later.usageApplied, later.usageLast))
	return w, l, nil
}

// usageLagAfter is when, after a forward-auth load, the usage
// projection's lag is reported: the target is none left by then.
const usageLagAfter = 5 * time.Second

// rebuildResult is one `tokenledger rebuild`.
type rebuildResult struct {
	Events  int64
	Seconds float64
	Rate    float64
}

var rebuildLine = regexp.MustCompile(`rebuilt from ([\d,]+) events in ([\d.]+) s: ([\d,]+) events/s`)

func (b *bench) rebuild(ctx context.Context, d *devStack, run int) (rebuildResult, error) {
	out, err := b.procs.runCmd(ctx, fmt.Sprintf("rebuild-run%d", run), b.cfg.repo, nil, b.cfg.tokenledger, "rebuild",
		"--nats-url", d.NATSURL, "--postgres-url", d.PostgresURL, "--progress", "off")
	if err != nil {
		return rebuildResult{}, err
	}
	return parseRebuild(out)
}

func parseRebuild(out string) (rebuildResult, error) {
	m := rebuildLine.FindStringSubmatch(out)
	if m == nil {
		return rebuildResult{}, fmt.Errorf("no summary line in rebuild's output:\n%s", out)
	}
	var r rebuildResult
	r.Events, _ = strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
	r.Seconds, _ = strconv.ParseFloat(m[2], 64)
	r.Rate, _ = strconv.ParseFloat(strings.ReplaceAll(m[3], ",", ""), 64)
	return r, nil
}

// wrkWarmup and wrkMeasure run wrk with the run's parameters.
func (b *bench) wrkWarmup(ctx context.Context, name, url, tokenFile string) error {
	_, err := b.procs.runCmd(ctx, name+"-warmup", "", nil, b.wrkArgs(b.cfg.wrk.Warmup, false, url, tokenFile)...)
	return err
}

func (b *bench) wrkMeasure(ctx context.Context, name, url, tokenFile string) (wrkResult, error) {
	out, err := b.procs.runCmd(ctx, name, "", nil, b.wrkArgs(b.cfg.wrk.Duration, true, url, tokenFile)...)
	if err != nil {
		return wrkResult{}, err
	}
	r, err := parseWrk(out)
	if err != nil {
		return r, fmt.Errorf("%s: %w", name, err)
	}
	return r, nil
}

func (b *bench) wrkArgs(d string, latency bool, url, tokenFile string) []string {
	p := b.cfg.wrk
	a := []string{"wrk", "-t" + strconv.Itoa(p.Threads), "-c" + strconv.Itoa(p.Conns), "-d" + d}
	if latency {
		a = append(a, "--latency")
	}
	return append(a, "-s", b.lua, url, "--", tokenFile, "Authorization", "Bearer ")
}
