package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/tokenledger/tokenledger/sdk"
)

// webhookRun is one run of the webhook scenario: revocations at a fixed
// rate through the API, delivered to a receiver subscribed to
// token.revoked.
type webhookRun struct {
	// Rate is the revocations per second started; Throughput the
	// deliveries per second the receiver got, from its first to its last.
	Rate, Throughput float64
	Revokes, Errors  int
	// Latencies are, per revocation, the microseconds from the revoke
	// call's return to the receiver's first request for it, sorted.
	Latencies []float64
	// Undelivered counts the revocations not delivered within
	// webhookDeliveryTimeout.
	Undelivered int
}

// webhookDeliveryTimeout is how long the scenario waits for the last
// deliveries after the last revocation.
const webhookDeliveryTimeout = 2 * time.Minute

// webhookReceiver is the scenario's endpoint: it notes when the first
// request for each token arrived, and answers 204.
type webhookReceiver struct {
	mu    sync.Mutex
	first map[string]time.Time
	all   int
}

func (r *webhookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	var p struct {
		Data struct {
			TokenID string `json:"token_id"`
		} `json:"data"`
	}
	body, _ := io.ReadAll(req.Body)
	if json.Unmarshal(body, &p) == nil {
		r.mu.Lock()
		if _, seen := r.first[p.Data.TokenID]; !seen {
			r.first[p.Data.TokenID] = at
		}
		r.all++
		r.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *webhookReceiver) arrival(id string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.first[id]
	return at, ok
}

// measureWebhooks registers an endpoint for token.revoked served by this
// program, issues rate·dur tokens, revokes them at rate per second (open
// loop) and measures, for each, the time from the revoke call's return to
// the delivery, and the receiver's delivery throughput. The dev stack must
// allow loopback webhook targets (--webhook-allow-private).
func measureWebhooks(ctx context.Context, d *devStack, rate int, dur time.Duration, tag string) (webhookRun, error) {
	recv := &webhookReceiver{first: map[string]time.Time{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return webhookRun{}, err
	}
	srv := &http.Server{Handler: recv, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	client, err := sdk.New(d.APIURL, sdk.WithToken(d.Admin), sdk.WithHTTPClient(httpClient))
	if err != nil {
		return webhookRun{}, err
	}
	hook, err := client.CreateWebhook(ctx, sdk.WebhookRequest{URL: "http://" + ln.Addr().String() + "/hook", Events: []string{"token.revoked"}})
	if err != nil {
		return webhookRun{}, fmt.Errorf("register the endpoint: %w", err)
	}
	defer func() { _ = client.RemoveWebhook(context.WithoutCancel(ctx), hook.ID) }()

	n := int(float64(rate) * dur.Seconds())
	toks, err := issueTokens(ctx, d.APIURL, d.Admin, "hook"+tag, n)
	if err != nil {
		return webhookRun{}, err
	}
	interval := time.Second / time.Duration(rate)
	returned := make([]time.Time, n)
	failed := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now().Add(50 * time.Millisecond)
	for i := range n {
		sched := start.Add(time.Duration(i) * interval)
		if wait := time.Until(sched); wait > 0 {
			if err := sleep(ctx, wait); err != nil {
				wg.Wait()
				return webhookRun{}, err
			}
		}
		wg.Go(func() {
			failed[i] = client.Revoke(ctx, toks[i].ID, "bench")
			returned[i] = time.Now()
		})
	}
	started := time.Since(start)
	wg.Wait()
	run := webhookRun{Rate: float64(n) / started.Seconds(), Revokes: n}
	deadline := time.Now().Add(webhookDeliveryTimeout)
	for {
		missing := 0
		for i, t := range toks {
			if _, ok := recv.arrival(t.ID); !ok && failed[i] == nil {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return webhookRun{}, err
		}
	}
	var first, last time.Time
	for i, t := range toks {
		if failed[i] != nil {
			if run.Errors == 0 {
				logf("revoke %d failed: %v", i, failed[i])
			}
			run.Errors++
			continue
		}
		at, ok := recv.arrival(t.ID)
		if !ok {
			run.Undelivered++
			continue
		}
		run.Latencies = append(run.Latencies, float64(at.Sub(returned[i]).Microseconds()))
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	if len(run.Latencies) == 0 {
		return run, errors.New("no revocation was delivered")
	}
	if span := last.Sub(first).Seconds(); span > 0 {
		run.Throughput = float64(len(run.Latencies)) / span
	}
	slices.Sort(run.Latencies)
	return run, nil
}

// webhookRow reports the webhook scenario.
func (r results) webhookRow() row {
	row := row{
		Figure: fmt.Sprintf("webhook delivery of revocations at %s revokes/s through the API (open loop, %s per run), to a receiver on loopback subscribed to token.revoked",
			fmtInt(float64(r.WebhookRate)), r.WebhookFor),
		Target:  "delivery throughput keeps up with 1,000 subscribed events/s; revoke→receiver latency reported",
		Command: "`make bench` (cmd/bench/webhooks.go): each revoke call's return until the receiver's first request for the token",
	}
	if row, skipped := unmeasured(row, len(r.Webhooks) > 0); skipped {
		return row
	}
	p50s := of(r.Webhooks, func(x webhookRun) float64 { return percentile(x.Latencies, 50) })
	p99s := of(r.Webhooks, func(x webhookRun) float64 { return percentile(x.Latencies, 99) })
	tput := of(r.Webhooks, func(x webhookRun) float64 { return x.Throughput })
	errs, undelivered := 0, 0
	for _, x := range r.Webhooks {
		errs += x.Errors
		undelivered += x.Undelivered
	}
	row.Measured = fmt.Sprintf("latency p50 %s, **p99 %s**; **%s deliveries/s**; %d revoke errors, %d undelivered",
		spread(p50s, fmtUS), spread(p99s, fmtUS), spread(tput, fmtInt), errs, undelivered)
	if v := tput.median(); v < 0.95*float64(r.WebhookRate) {
		row.Misses = append(row.Misses, fmt.Sprintf("%s deliveries/s < %s", fmtInt(v), fmtInt(float64(r.WebhookRate))))
	}
	if undelivered > 0 {
		row.Misses = append(row.Misses, fmt.Sprintf("%d revocations not delivered within %s", undelivered, webhookDeliveryTimeout))
	}
	return row
}
