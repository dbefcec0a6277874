package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/tokenledger/tokenledger/sdk"
)

// revocationRun is one run of the propagation scenario: for every token,
// the time from the revoke call's return on the first node until each of
// the two other nodes answered 401, in microseconds.
type revocationRun struct {
	Samples []float64
	// OriginImmediate counts the revocations the revoking node itself
	// refused at once, on the first request after the call returned.
	OriginImmediate, Revocations int
}

// propagationTimeout is how long a revocation may take to reach a node
// before the scenario fails: far beyond any bound, so only a lost
// revocation hits it.
const propagationTimeout = 10 * time.Second

// measureRevocation starts three `tokenledger serve` nodes against the dev
// stack, then, for each of runs rounds of n tokens issued through the
// first node, revokes each through the first node and polls the two others
// until they answer 401.
func (b *bench) measureRevocation(ctx context.Context, d *devStack, runs, n int) ([]revocationRun, error) {
	var nodes []string
	for i := range 3 {
		p, u, err := b.startServe(ctx, fmt.Sprintf("serve-%d", i+1), d)
		if err != nil {
			return nil, err
		}
		defer b.procs.stop(p, syscall.SIGINT, 30*time.Second)
		nodes = append(nodes, u)
	}
	logf("revocation: 3 serve nodes up: %v", nodes)
	return revokeRounds(ctx, nodes, d.Admin, runs, n)
}

// revokeRounds runs the propagation scenario on nodes: for each of runs
// rounds of n tokens issued through the first node, it revokes each
// through the first node and polls the others until they answer 401.
func revokeRounds(ctx context.Context, nodes []string, admin string, runs, n int) ([]revocationRun, error) {
	client, err := sdk.New(nodes[0], sdk.WithToken(admin), sdk.WithHTTPClient(httpClient))
	if err != nil {
		return nil, fmt.Errorf("api client: %w", err)
	}
	var out []revocationRun
	for r := range runs {
		toks, err := issueTokens(ctx, nodes[0], admin, fmt.Sprintf("revoke%d", r), n)
		if err != nil {
			return nil, err
		}
		run := revocationRun{}
		for _, t := range toks {
			for _, node := range nodes[1:] {
				if err := waitStatus(ctx, node, t.Secret, http.StatusOK, propagationTimeout); err != nil {
					return nil, fmt.Errorf("token %s before its revocation: %w", t.ID, err)
				}
			}
			if err := client.Revoke(ctx, t.ID, "bench"); err != nil {
				return nil, err
			}
			returned := time.Now()
			if st, err := authStatus(ctx, nodes[0], t.Secret); err != nil {
				return nil, err
			} else if st == http.StatusUnauthorized {
				run.OriginImmediate++
			}
			var wg sync.WaitGroup
			lat := make([]time.Duration, len(nodes)-1)
			errs := make([]error, len(nodes)-1)
			for k, node := range nodes[1:] {
				wg.Go(func() {
					errs[k] = waitStatus(ctx, node, t.Secret, http.StatusUnauthorized, propagationTimeout)
					lat[k] = time.Since(returned)
				})
			}
			wg.Wait()
			for k, err := range errs {
				if err != nil {
					return nil, fmt.Errorf("revocation of token %s on %s: %w", t.ID, nodes[k+1], err)
				}
				run.Samples = append(run.Samples, float64(lat[k].Microseconds()))
			}
			run.Revocations++
		}
		slices.Sort(run.Samples)
		logf("revocation run %d: %d revocations, p50 %.0f µs, p99 %.0f µs, max %.0f µs", r+1, run.Revocations,
			percentile(run.Samples, 50), percentile(run.Samples, 99), run.Samples[len(run.Samples)-1])
		out = append(out, run)
	}
	return out, nil
}

// authStatus asks node's /v1/auth about secret and returns the status.
func authStatus(ctx context.Context, node, secret string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, node+"/v1/auth", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s/v1/auth: %w", node, err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// waitStatus asks node about secret, as fast as it answers, until the
// answer is want.
func waitStatus(ctx context.Context, node, secret string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := authStatus(ctx, node, secret)
		if err != nil {
			return err
		}
		if st == want {
			return nil
		}
		if st != http.StatusOK && st != http.StatusUnauthorized {
			return fmt.Errorf("GET %s/v1/auth answered %d", node, st)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/v1/auth still answers %d, not %d, after %s", node, st, want, timeout)
		}
	}
}
