package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tokenledger/tokenledger/stack"
)

// drfResult is the DRF peer's case "a" (stock TokenAuthentication on
// PostgreSQL) over its runs, and its description of the environment.
type drfResult struct {
	Runs []wrkResult
	Env  string
}

// runDRF runs the peer's script for case a with the same wrk threads,
// connections, duration and warm-up as tokenledger's runs, and reads its
// raw wrk outputs.
func (b *bench) runDRF(ctx context.Context) (drfResult, error) {
	script := filepath.Join(b.cfg.peer, "run.sh")
	if _, err := os.Stat(script); err != nil {
		return drfResult{}, fmt.Errorf("the DRF peer's script: %w (set DRF_PEER to the peer's directory)", err)
	}
	results := filepath.Join(b.work, "drf-results")
	port, err := stack.FreePort("127.0.0.1")
	if err != nil {
		return drfResult{}, err
	}
	p := b.cfg.wrk
	env := []string{
		"CASES=a",
		"RUNS=" + strconv.Itoa(b.cfg.runs),
		"DURATION=" + p.Duration,
		"WARMUP=" + p.Warmup,
		"THREADS=" + strconv.Itoa(p.Threads),
		"CONNS=" + strconv.Itoa(p.Conns),
		"RESULTS=" + results,
		"PEER_WORKDIR=" + filepath.Join(b.work, "drfpeer"),
		"PEER_HTTP_PORT=" + strconv.Itoa(port),
	}
	if _, err := b.procs.runCmd(ctx, "drf-peer", b.cfg.peer, env, script); err != nil {
		return drfResult{}, err
	}
	var r drfResult
	for i := 1; i <= b.cfg.runs; i++ {
		path := filepath.Join(results, fmt.Sprintf("drf-a-run%d.txt", i))
		out, err := os.ReadFile(path)
		if err != nil {
			return r, fmt.Errorf("the DRF peer's result: %w", err)
		}
		w, err := parseWrk(string(out))
		if err != nil {
			return r, fmt.Errorf("%s: %w", path, err)
		}
		r.Runs = append(r.Runs, w)
	}
	if env, err := os.ReadFile(filepath.Join(results, "env.txt")); err == nil {
		r.Env = strings.TrimSpace(string(env))
	}
	return r, nil
}
