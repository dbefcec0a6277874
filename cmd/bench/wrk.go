package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

//go:embed random_token.lua
var randomTokenLua []byte

// wrkParams are the load every HTTP scenario gets: the same for
// tokenledger, the bare handler and the DRF peer.
type wrkParams struct {
	Threads, Conns int
	Duration       string // wrk's -d, e.g. "10s"
	Warmup         string // a run of this length before each measured run
}

// wrkResult is one measured wrk run. Latencies are in microseconds.
type wrkResult struct {
	RPS                      float64
	Requests                 int64
	P50, P90, P99, P999, Max float64
	Non2xx                   int64
	SocketErrors             int64
	HasP999                  bool
}

// ensureWrk makes sure wrk is installed, installing the Debian package when
// it is missing.
func ensureWrk(ctx context.Context, ps *procs) error {
	if _, err := exec.LookPath("wrk"); err == nil {
		return nil
	}
	logf("wrk is missing: installing the Debian package")
	if _, err := exec.LookPath("apt-get"); err != nil {
		return errors.New("wrk is not installed and apt-get is not available: install wrk (https://github.com/wg/wrk) and run again")
	}
	if os.Geteuid() != 0 {
		return errors.New("wrk is not installed and installing it needs root: run `apt-get install wrk` as root, then run again")
	}
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	if _, err := ps.runCmd(ctx, "apt-get-update", "", env, "apt-get", "update", "-qq"); err != nil {
		return fmt.Errorf("wrk is not installed and apt-get update failed: %w", err)
	}
	if _, err := ps.runCmd(ctx, "apt-get-install-wrk", "", env, "apt-get", "install", "-y", "-q", "wrk"); err != nil {
		return fmt.Errorf("wrk is not installed and `apt-get install wrk` failed: %w", err)
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("apt-get installed wrk but it is not on PATH")
	}
	return nil
}

// writeLua writes the wrk script into dir and returns its path.
func writeLua(dir string) (string, error) {
	path := filepath.Join(dir, "random_token.lua")
	if err := os.WriteFile(path, randomTokenLua, 0o644); err != nil {
		return "", fmt.Errorf("write wrk script: %w", err)
	}
	return path, nil
}

var (
	wrkRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)
	wrkLatency  = regexp.MustCompile(`(?m)^\s+(50|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$`)
	wrkNon2xx   = regexp.MustCompile(`(?m)Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSocket   = regexp.MustCompile(`(?m)Socket errors:.*$`)
	wrkRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in`)
	wrkResLine  = regexp.MustCompile(`(?m)^BENCH-RESULT (.*)$`)
	digits      = regexp.MustCompile(`\d+`)
)

// parseWrk reads wrk's output: Requests/sec, the --latency distribution,
// errors, and, when the script printed it, the BENCH-RESULT line with
// p99.9 (which takes precedence for the latencies, being in
// microseconds).
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output:\n%s", out)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := wrkRequests.FindStringSubmatch(out); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	for _, m := range wrkLatency.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		v *= map[string]float64{"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7}[m[3]]
		switch m[1] {
		case "50":
			r.P50 = v
		case "90":
			r.P90 = v
		case "99":
			r.P99 = v
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkSocket.FindString(out); m != "" {
		for _, d := range digits.FindAllString(m, -1) {
			n, _ := strconv.ParseInt(d, 10, 64)
			r.SocketErrors += n
		}
	}
	if m := wrkResLine.FindStringSubmatch(out); m != nil {
		kv := map[string]float64{}
		for field := range strings.FieldsSeq(m[1]) {
			k, v, ok := strings.Cut(field, "=")
			if !ok {
				continue
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return r, fmt.Errorf("BENCH-RESULT %s: %w", field, err)
			}
			kv[k] = f
		}
		r.P50, r.P90, r.P99, r.P999, r.Max = kv["p50_us"], kv["p90_us"], kv["p99_us"], kv["p999_us"], kv["max_us"]
		r.HasP999 = true
		r.Requests = int64(kv["requests"])
	}
	if r.P50 == 0 || r.P99 == 0 {
		return r, fmt.Errorf("no latency distribution in wrk output (was --latency given?):\n%s", out)
	}
	return r, nil
}
