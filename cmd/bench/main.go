// Command bench measures every target figure of the product brief on the
// local stack and writes them into the table of BENCHMARKS.md. `make bench`
// builds and runs it.
//
// It runs, in order, on this machine and in one sitting:
//
//   - the Go benchmarks of the hot path (secret check, Validate, the
//     validator's memory per token) and of the lifecycle append, parsed
//     from `go test -bench`;
//   - the DRF peer (../shared/peers/drf/run.sh, case a) under wrk;
//   - `tokenledger dev` on a fresh data directory, and against it: wrk on
//     GET /v1/auth with 1,000 tokens and, in turn, on a bare Go net/http
//     handler (with PostgreSQL's statements counted meanwhile); revocation
//     propagation across three `tokenledger serve` nodes; issue latency at
//     1,000 issues/s, open loop; the lifecycle
//     projection lag at 5,000 mutations/s (issues and revokes) through the
//     API, open loop, read back from PostgreSQL;
//   - a million token.issued events published straight into the lifecycle
//     stream while the live projector follows them (its throughput), and
//     `tokenledger rebuild` over them; then a restart of the stack,
//     `tokenledger export` and `export verify` over the stream, `state
//     --at` over it, and wrk on /v1/auth with those million tokens (and
//     the usage projection's lag 5 s after each load);
//   - make cluster's topology (package cluster: 3 nats-servers, R3
//     streams, PostgreSQL, serve and project processes): revocation
//     across 3 serve nodes, `project` SIGKILLed and restarted under load,
//     a standby's takeover, and SIGKILL of the stream leader under 200
//     issues/s (the election window).
//
// Every process it starts runs in a process group of its own and is
// stopped at the end, on failure, and on SIGINT or SIGTERM. Every failure
// exits non-zero with a message saying what failed.
//
// With --quick 1 (BENCH_QUICK=1 make bench) every scenario runs briefly
// (one run, 2 s of wrk and of the lag load, 10,000 tokens instead of a
// million, one projector restart and takeover, a shorter election run) and the table
// goes to a temporary file instead of BENCHMARKS.md; nothing is asserted
// about the figures. Usage:
//
//	bench [--quick 1] [--tokenledger bin/tokenledger] [--peer ../shared/peers/drf] [--nats-server bin/nats-server]
//	      [--benchmarks BENCHMARKS.md] [--out FILE] [--keep-data]
//	bench bare-server [--addr 127.0.0.1:0]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// config is what a run measures and where it writes.
type config struct {
	quick       bool
	repo        string // the repository root: go test runs here
	tokenledger string // the tokenledger binary
	peer        string // the DRF peer's directory
	benchmarks  string // BENCHMARKS.md, rewritten unless quick
	out         string // where a quick run writes the document instead
	natsServer  string // the nats-server binary the cluster scenarios run
	goTool      string
	keepData    bool
	skip        map[string]bool // scenarios left out (development only)

	runs        int
	wrk         wrkParams
	tokens      int // the large scenario's tokens
	seedTokens  int // tokens issued through the API for the small one
	revocations int // per run
	issueRate   int
	issueFor    time.Duration
	lagRate     int           // mutations per second asked of the lag scenario
	lagFor      time.Duration // per run
	webhookRate int           // revocations per second of the webhook scenario
	webhookFor  time.Duration // per run
	cluster     clusterParams
	goCount     int
	goBenchtime string
}

func defaultConfig(quick bool) config {
	c := config{
		quick:       quick,
		runs:        3,
		wrk:         wrkParams{Threads: 2, Conns: 32, Duration: "10s", Warmup: "3s"},
		tokens:      1_000_000,
		seedTokens:  1_000,
		revocations: 200,
		issueRate:   1_000,
		issueFor:    10 * time.Second,
		lagRate:     5_000,
		lagFor:      10 * time.Second,
		webhookRate: 1_000,
		webhookFor:  10 * time.Second,
		cluster: clusterParams{loadRate: 200, restarts: 5, takeovers: 3,
			electionLead: 5 * time.Second, electionAfter: 20 * time.Second},
		goCount:     3,
		goBenchtime: "1s",
	}
	if quick {
		c.runs = 1
		c.wrk.Duration, c.wrk.Warmup = "2s", "1s"
		c.tokens = 10_000
		c.revocations = 20
		c.issueFor = 2 * time.Second
		c.lagFor = 2 * time.Second
		c.webhookFor = 2 * time.Second
		c.cluster.restarts, c.cluster.takeovers = 1, 1
		c.cluster.electionLead, c.cluster.electionAfter = 2*time.Second, 10*time.Second
		c.goCount = 1
		c.goBenchtime = "100ms"
	}
	return c
}

// quickValue reads BENCH_QUICK's value: empty, 0, false and no mean a
// full run.
func quickValue(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "0", "false", "no", "off":
		return false
	}
	return true
}

func parseConfig(args []string) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.String("quick", os.Getenv("BENCH_QUICK"), "run every scenario briefly and leave BENCHMARKS.md alone (1, true: yes; empty, 0, false: no)")
	repo := fs.String("repo", ".", "the repository's root")
	bin := fs.String("tokenledger", "bin/tokenledger", "the tokenledger binary")
	peer := fs.String("peer", "../shared/peers/drf", "the DRF peer's directory (holding run.sh)")
	natsServer := fs.String("nats-server", "bin/nats-server", "the nats-server binary of the cluster scenarios (make nats-server)")
	benchmarks := fs.String("benchmarks", "BENCHMARKS.md", "the document whose table a full run rewrites")
	out := fs.String("out", "", "where a quick run writes the document (default: a file in the temporary directory)")
	goTool := fs.String("go", "go", "the go command")
	keep := fs.Bool("keep-data", false, "keep the stack's data directory at the end")
	runs := fs.Int("runs", 0, "runs per scenario (default 3, quick 1)")
	duration := fs.String("duration", "", "wrk duration per run (default 10s, quick 2s)")
	tokens := fs.Int("tokens", 0, "tokens of the large scenario (default 1,000,000, quick 10,000)")
	issueFor := fs.Duration("issue-for", 0, "length of each open-loop issue run (default 10s, quick 2s)")
	skip := fs.String("skip", "", "scenarios to leave out, comma-separated: go, drf, dev, cluster (for working on the program; the table then lacks them)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c := defaultConfig(quickValue(*quick))
	c.goTool, c.keepData = *goTool, *keep
	c.skip = map[string]bool{}
	for name := range strings.SplitSeq(*skip, ",") {
		switch name = strings.TrimSpace(name); name {
		case "":
		case "go", "drf", "dev", "cluster":
			c.skip[name] = true
		default:
			return c, fmt.Errorf("--skip %q: want go, drf, dev or cluster", name)
		}
	}
	if *runs > 0 {
		c.runs = *runs
	}
	if *duration != "" {
		if _, err := time.ParseDuration(*duration); err != nil {
			return c, fmt.Errorf("--duration: %w", err)
		}
		c.wrk.Duration = *duration
	}
	if *tokens > 0 {
		c.tokens = *tokens
	}
	if *issueFor > 0 {
		c.issueFor = *issueFor
	}
	var err error
	if c.repo, err = filepath.Abs(*repo); err != nil {
		return c, err
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(c.repo, p)
	}
	c.tokenledger, c.peer, c.benchmarks, c.natsServer = abs(*bin), abs(*peer), abs(*benchmarks), abs(*natsServer)
	c.out = *out
	if c.out == "" && c.quick {
		c.out = filepath.Join(os.TempDir(), "tokenledger-bench-quick.md")
	}
	if _, err := os.Stat(c.tokenledger); err != nil {
		return c, fmt.Errorf("the tokenledger binary: %w (make build)", err)
	}
	if !c.quick {
		if _, err := os.Stat(c.benchmarks); err != nil {
			return c, fmt.Errorf("BENCHMARKS.md: %w", err)
		}
	}
	return c, nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bare-server" {
		os.Exit(runBare(os.Args[2:]))
	}
	cfg, err := parseConfig(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	start := time.Now()
	err = run(ctx, cfg)
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case interrupted:
		fmt.Fprintf(os.Stderr, "bench: interrupted after %s; everything it started is stopped\n", time.Since(start).Round(time.Second))
		os.Exit(130)
	case err != nil:
		fmt.Fprintf(os.Stderr, "bench: FAILED after %s: %v\n", time.Since(start).Round(time.Second), err)
		os.Exit(1)
	}
	logf("done in %s", time.Since(start).Round(time.Second))
}

// bench is one run of the program.
type bench struct {
	cfg     config
	work    string // the run's directory: logs, raw results, data
	lua     string
	procs   *procs
	machine machine
	res     results
}

func run(ctx context.Context, cfg config) (err error) {
	work, err := os.MkdirTemp("", "tokenledger-bench-")
	if err != nil {
		return err
	}
	// PostgreSQL runs as the postgres user when started as root: it must
	// be able to reach its data directory.
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	logs := filepath.Join(work, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		return err
	}
	b := &bench{cfg: cfg, work: work, procs: newProcs(logs)}
	watch := startCPUWatch(work)
	defer func() {
		if !watch.stopped() {
			watch.result()
		}
		b.procs.stopAll()
		b.cleanup()
		if err != nil {
			logf("logs of every process are in %s", logs)
		}
	}()
	mode := "full"
	if cfg.quick {
		mode = "quick (BENCH_QUICK)"
	}
	logf("tokenledger bench, %s run; work directory %s", mode, work)
	if err := ensureWrk(ctx, b.procs); err != nil {
		return err
	}
	if b.lua, err = writeLua(work); err != nil {
		return err
	}
	b.machine = describeMachine(ctx, cfg.goTool)
	b.res = results{Quick: cfg.quick, Runs: cfg.runs, Wrk: cfg.wrk, Tokens: cfg.tokens, SeedTokens: cfg.seedTokens,
		IssueRate: cfg.issueRate, IssueFor: cfg.issueFor.String(), Revocations: cfg.revocations,
		LagRate: cfg.lagRate, LagFor: cfg.lagFor.String(), WebhookRate: cfg.webhookRate, WebhookFor: cfg.webhookFor.String(),
		Cluster: cfg.cluster.String()}

	if !cfg.skip["go"] {
		if err := b.goBenchmarks(ctx); err != nil {
			return fmt.Errorf("go benchmarks: %w", err)
		}
	}
	if !cfg.skip["drf"] {
		logf("DRF peer: run.sh, case a, %d run(s) of %s", cfg.runs, cfg.wrk.Duration)
		if b.res.DRF, err = b.runDRF(ctx); err != nil {
			return fmt.Errorf("DRF peer: %w", err)
		}
		logf("DRF peer: %s req/s", spread(of(b.res.DRF.Runs, rps), fmtInt))
	}
	if !cfg.skip["dev"] {
		if err := b.stackScenarios(ctx); err != nil {
			return err
		}
	}
	if !cfg.skip["cluster"] {
		if err := b.clusterScenarios(ctx); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	b.machine.OthersAvg, b.machine.OthersPeak = watch.result()
	b.res.Machine = b.machine
	return b.write()
}

// cleanup removes what must not outlive the run: the stack's data (a
// ledger of throwaway tokens, gigabytes with a million of them) and the
// token files, which hold secrets.
func (b *bench) cleanup() {
	for _, name := range []string{"tokens-1k.txt", "tokens-large.txt", "drfpeer", "cluster/secrets"} {
		_ = os.RemoveAll(filepath.Join(b.work, name))
	}
	if !b.cfg.keepData {
		_ = os.RemoveAll(filepath.Join(b.work, "data"))
		_ = os.RemoveAll(filepath.Join(b.work, "cluster"))
	}
}

// write saves the raw results and writes the document: into BENCHMARKS.md
// on a full run, into a temporary file on a quick one.
func (b *bench) write() error {
	raw, err := json.MarshalIndent(b.res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.work, "results.json"), raw, 0o644); err != nil {
		return err
	}
	body := b.res.markdown()
	fmt.Println(body)
	doc, err := os.ReadFile(b.cfg.benchmarks)
	if err != nil {
		return fmt.Errorf("read %s: %w", b.cfg.benchmarks, err)
	}
	out, err := replaceBetweenMarkers(string(doc), body)
	if err != nil {
		return err
	}
	target := b.cfg.benchmarks
	if b.cfg.quick {
		target = b.cfg.out
	}
	if err := os.WriteFile(target, []byte(out), 0o644); err != nil {
		return err
	}
	logf("table written to %s; raw results in %s", target, filepath.Join(b.work, "results.json"))
	return nil
}
