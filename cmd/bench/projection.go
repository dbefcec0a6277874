package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/sdk"
)

// liveProjection is what the live lifecycle projector did while the large
// scenario's events were published into the stream.
type liveProjection struct {
	// Events is how many events it applied, Seconds how long from the
	// start of the publish until it had applied the last of them.
	Events  int64
	Seconds float64
	Rate    float64
	// PeakRate is the most events it applied in one second.
	PeakRate float64
	// PublishRate is the rate the events were published at, and
	// BehindAtEnd how many events the projector had still to apply when
	// the last one was acknowledged; CatchUp how long it took then.
	PublishRate float64
	BehindAtEnd int64
	CatchUp     float64
}

// checkpointSample is the lifecycle checkpoint at an instant.
type checkpointSample struct {
	at  time.Time
	seq uint64
}

// sampleCheckpoint reads the lifecycle checkpoint every interval until
// stop is called, which returns the samples.
func (d *devStack) sampleCheckpoint(ctx context.Context, interval time.Duration) (stop func() []checkpointSample) {
	ctx, cancel := context.WithCancel(ctx)
	var samples []checkpointSample
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if cp, err := d.checkpoint(ctx); err == nil {
				samples = append(samples, checkpointSample{time.Now(), cp})
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() []checkpointSample {
		cancel()
		<-done
		return samples
	}
}

// seedWhileProjecting publishes the large scenario's tokens into the
// lifecycle stream while the live projector follows it, and measures how
// fast the projector applies them: from the start of the publish until
// its checkpoint reaches the stream's end.
func (b *bench) seedWhileProjecting(ctx context.Context, d *devStack, tokenFile string) (liveProjection, error) {
	var lp liveProjection
	from, err := d.checkpoint(ctx)
	if err != nil {
		return lp, err
	}
	start := time.Now()
	stop := d.sampleCheckpoint(ctx, 100*time.Millisecond)
	rate, err := seedTokens(ctx, d, b.cfg.tokens, tokenFile)
	if err != nil {
		stop()
		return lp, fmt.Errorf("seed: %w", err)
	}
	lp.PublishRate = rate
	published := time.Now()
	last, err := d.streamLast(ctx)
	if err != nil {
		stop()
		return lp, err
	}
	if cp, err := d.checkpoint(ctx); err == nil {
		lp.BehindAtEnd = int64(last - min(cp, last))
	}
	err = d.waitProjected(ctx, 10*time.Minute)
	caught := time.Now()
	samples := stop()
	if err != nil {
		return lp, err
	}
	lp.Events = int64(last - from)
	lp.Seconds = caught.Sub(start).Seconds()
	lp.Rate = float64(lp.Events) / lp.Seconds
	lp.CatchUp = caught.Sub(published).Seconds()
	for i, s := range samples {
		// The most applied over any window of about a second.
		for j := i + 1; j < len(samples); j++ {
			if dt := samples[j].at.Sub(s.at); dt >= time.Second {
				lp.PeakRate = max(lp.PeakRate, float64(samples[j].seq-s.seq)/dt.Seconds())
				break
			}
		}
	}
	return lp, nil
}

// lagRun is one run of the projection-lag scenario: mutations through the
// API, open loop at a target rate, and for each the time from its answer
// until the read model showed it.
type lagRun struct {
	// Target is the rate asked for, Rate the mutations per second that
	// were answered (the machine may not reach Target).
	Target int
	Rate   float64
	// Issues and Revokes are the answered mutations; Errors the failed
	// ones; Capped the requests that had to wait for a free connection.
	Issues, Revokes, Errors int
	Capped                  int
	// Lags are in microseconds, sorted: from each mutation's answer until
	// the read model held it (the token's row, or its revocation).
	Lags []float64
	// Unseen counts mutations the read model did not show within the
	// scenario's bound.
	Unseen int
}

// lagInFlight caps the requests in flight: past it the open loop waits,
// and the rate reached says so.
const lagInFlight = 256

// measureLag drives issues and revokes (one revoke of an earlier token for
// every four issues) through base at rate per second for dur, open loop,
// and samples the projection lag of every mutation: a poller asks
// PostgreSQL every 5 ms which of the mutations still pending the read
// model holds.
func measureLag(ctx context.Context, d *devStack, rate int, dur time.Duration, tag string) (lagRun, error) {
	client, err := sdk.New(d.APIURL, sdk.WithToken(d.Admin), sdk.WithHTTPClient(httpClient))
	if err != nil {
		return lagRun{}, err
	}
	run := lagRun{Target: rate}
	w := newLagWatch(d)
	watchDone := make(chan error, 1)
	watchCtx, stopWatch := context.WithCancel(ctx)
	go func() { watchDone <- w.run(watchCtx) }()

	n := int(float64(rate) * dur.Seconds())
	interval := time.Second / time.Duration(rate)
	slots := make(chan struct{}, lagInFlight)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		toRevoke []string
		firstErr error
		issues   atomic.Int64
		revokes  atomic.Int64
		failed   atomic.Int64
	)
	fail := func(err error) {
		failed.Add(1)
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	start := time.Now()
	for i := range n {
		sched := start.Add(time.Duration(i) * interval)
		if wait := time.Until(sched); wait > 0 {
			if err := sleep(ctx, wait); err != nil {
				break
			}
		}
		select {
		case slots <- struct{}{}:
		default:
			run.Capped++
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		var revoke string
		if i%5 == 4 {
			mu.Lock()
			if len(toRevoke) > 0 {
				revoke, toRevoke = toRevoke[0], toRevoke[1:]
			}
			mu.Unlock()
		}
		wg.Go(func() {
			defer func() { <-slots }()
			if revoke != "" {
				if err := client.Revoke(ctx, revoke, "bench lag"); err != nil {
					fail(err)
					return
				}
				w.add(revoke, true, time.Now())
				revokes.Add(1)
				return
			}
			exp := sdk.Duration(24 * time.Hour)
			tok, err := client.Issue(ctx, sdk.IssueRequest{
				Owner: fmt.Sprintf("lag-%s-%d", tag, i%100), Name: "lag", Scopes: []string{"read"}, ExpiresIn: &exp,
			})
			if err != nil {
				fail(err)
				return
			}
			w.add(tok.ID, false, time.Now())
			issues.Add(1)
			mu.Lock()
			toRevoke = append(toRevoke, tok.ID)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	run.Issues, run.Revokes, run.Errors = int(issues.Load()), int(revokes.Load()), int(failed.Load())
	run.Rate = float64(run.Issues+run.Revokes) / elapsed.Seconds()
	if firstErr != nil {
		logf("lag: %d mutations failed, the first: %v", run.Errors, firstErr)
	}
	// Whatever is still pending gets a generous bound to show up.
	w.drain(ctx, time.Minute)
	stopWatch()
	if err := <-watchDone; err != nil && ctx.Err() == nil {
		return run, err
	}
	run.Lags, run.Unseen = w.result()
	return run, ctx.Err()
}

// lagWatch polls the read model for the mutations not seen there yet.
type lagWatch struct {
	d       *devStack
	mu      sync.Mutex
	pending map[string]lagPending // by token id (uuid text)
	lags    []float64
	idle    chan struct{} // signalled when pending empties
}

type lagPending struct {
	revoked bool // waiting for the revocation, not the row
	at      time.Time
}

func newLagWatch(d *devStack) *lagWatch {
	return &lagWatch{d: d, pending: map[string]lagPending{}, idle: make(chan struct{}, 1)}
}

// add records a mutation answered at at.
func (w *lagWatch) add(id string, revoked bool, at time.Time) {
	tid, err := domain.ParseTokenID(id)
	if err != nil {
		return
	}
	w.mu.Lock()
	w.pending[uuidText(tid)] = lagPending{revoked: revoked, at: at}
	w.mu.Unlock()
}

// run polls every 5 ms until ctx ends.
func (w *lagWatch) run(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := w.poll(ctx); err != nil && ctx.Err() == nil {
			return fmt.Errorf("lag poll: %w", err)
		}
	}
}

func (w *lagWatch) poll(ctx context.Context) error {
	w.mu.Lock()
	ids := make([]string, 0, len(w.pending))
	for id := range w.pending {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	if len(ids) == 0 {
		select {
		case w.idle <- struct{}{}:
		default:
		}
		return nil
	}
	rows, err := w.d.pool.Query(ctx, `/* `+snapshotTag+` */ SELECT id::text, revoked_at IS NOT NULL FROM tokens WHERE id = ANY($1::uuid[])`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for rows.Next() {
		var id string
		var revoked bool
		if err := rows.Scan(&id, &revoked); err != nil {
			return err
		}
		p, ok := w.pending[id]
		if !ok || (p.revoked && !revoked) {
			continue
		}
		w.lags = append(w.lags, float64(now.Sub(p.at).Microseconds()))
		delete(w.pending, id)
	}
	return rows.Err()
}

// drain waits until nothing is pending, at most timeout.
func (w *lagWatch) drain(ctx context.Context, timeout time.Duration) {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		n := len(w.pending)
		w.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-w.idle:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (w *lagWatch) result() ([]float64, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	lags := slices.Clone(w.lags)
	slices.Sort(lags)
	return lags, len(w.pending)
}

// uuidText renders a token id in the read model's uuid text form.
func uuidText(id domain.TokenID) string {
	b := id[:]
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
