package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// issueRun is one run of the open-loop issue scenario. Latencies are in
// microseconds, from each request's scheduled instant to its answer.
type issueRun struct {
	Latencies []float64
	Errors    int
	// Rate is the issues per second actually started.
	Rate float64
}

// measureIssue issues tokens through base at rate per second for dur,
// open loop: request i is scheduled at start + i/rate whatever happened
// to the earlier ones, and its latency counts from that instant, so a
// stall of the server shows in the latency of every request scheduled
// during it (no coordinated omission).
func measureIssue(ctx context.Context, base, admin string, rate int, dur time.Duration, tag string) (issueRun, error) {
	n := int(float64(rate) * dur.Seconds())
	interval := time.Second / time.Duration(rate)
	lat := make([]float64, n)
	failed := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now().Add(50 * time.Millisecond)
	for i := range n {
		sched := start.Add(time.Duration(i) * interval)
		if wait := time.Until(sched); wait > 0 {
			if err := sleep(ctx, wait); err != nil {
				wg.Wait()
				return issueRun{}, err
			}
		}
		body := fmt.Appendf(nil, `{"owner":"issue-%s-%d","name":"issue bench","scopes":["read"],"expires_in":"24h"}`, tag, i%100)
		wg.Go(func() {
			failed[i] = issueOnce(ctx, base, admin, body)
			lat[i] = float64(time.Since(sched).Microseconds())
		})
	}
	started := time.Since(start)
	wg.Wait()
	r := issueRun{Rate: float64(n) / started.Seconds()}
	for i, err := range failed {
		if err != nil {
			if r.Errors == 0 {
				logf("issue %d failed: %v", i, err)
			}
			r.Errors++
			continue
		}
		r.Latencies = append(r.Latencies, lat[i])
	}
	slices.Sort(r.Latencies)
	return r, nil
}

func issueOnce(ctx context.Context, base, admin string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/tokens", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST /v1/tokens: %s: %s", resp.Status, b)
	}
	return nil
}
