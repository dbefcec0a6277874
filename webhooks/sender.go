package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tokenledger/tokenledger/domain"
)

// maxRecordBatch is the most attempts one statement records.
const maxRecordBatch = 256

// headsPerLook is how many deliveries due one look reads, per delivery
// attempted at once: the sender works through them before it looks
// again, so a look (whose cost grows with the deliveries pending) is made
// once per many deliveries, not once per delivery.
const headsPerLook = 8

// outcome is an attempt made, waiting to be recorded.
type outcome struct {
	h    head
	a    attempt
	pair string // the endpoint and order key, busy until recorded
	// disable is the reason to disable the endpoint: the delivery gave
	// up (empty otherwise).
	disable string
}

// send attempts the deliveries due until ctx ends: up to
// Config.Concurrency at once, each endpoint's deliveries of one token (or
// owner) one at a time in stream order. An endpoint and token stay busy
// until their attempt is recorded, so the next look for deliveries due
// never picks the same one again meanwhile. Attempts are recorded in
// batches, one statement for what has come in.
func (d *Dispatcher) send(ctx context.Context) {
	sem := make(chan struct{}, d.cfg.Concurrency)
	var mu sync.Mutex
	inflight := map[string]bool{}
	release := func(pair string) {
		mu.Lock()
		delete(inflight, pair)
		mu.Unlock()
		d.poke()
	}
	done := make(chan outcome, 4*d.cfg.Concurrency)
	var recorder, workers sync.WaitGroup
	recorder.Go(func() { d.recordOutcomes(ctx, done, release) })
	defer func() {
		workers.Wait()
		close(done)
		recorder.Wait()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
			d.refreshFanned(ctx)
		}
		heads, err := d.st.heads(ctx, d.cfg.Clock.Now(), d.fanned.Load(), headsPerLook*d.cfg.Concurrency)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("webhook deliveries: cannot read the deliveries due", "error", err)
		}
		for _, h := range heads {
			pair := h.endpointID + "\x00" + h.orderKey
			mu.Lock()
			busy := inflight[pair]
			if !busy {
				inflight[pair] = true
			}
			mu.Unlock()
			if busy {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				release(pair)
				return
			}
			workers.Go(func() {
				o, ok := d.deliver(ctx, h)
				<-sem
				if !ok {
					release(pair)
					return
				}
				o.pair = pair
				done <- o
			})
		}
		timer.Reset(d.cfg.PollInterval)
	}
}

// recordOutcomes records the attempts coming in on done, a batch at a
// time, and releases their endpoint and token, until done is closed.
func (d *Dispatcher) recordOutcomes(ctx context.Context, done <-chan outcome, release func(string)) {
	for o := range done {
		batch := []outcome{o}
	drain:
		for len(batch) < maxRecordBatch {
			select {
			case o, ok := <-done:
				if !ok {
					break drain
				}
				batch = append(batch, o)
			default:
				break drain
			}
		}
		var plain []outcome
		for _, o := range batch {
			if o.disable == "" {
				plain = append(plain, o)
				continue
			}
			d.giveUp(ctx, o)
		}
		if err := d.st.recordAll(ctx, plain); err != nil && ctx.Err() == nil {
			// The deliveries stay due as they were: they are attempted
			// again, with the same webhook-id.
			d.log.Warn("webhook deliveries: cannot record attempts; they will be made again", "attempts", len(plain), "error", err)
		}
		for _, o := range batch {
			release(o.pair)
		}
	}
}

// giveUp records the last attempt of a delivery that failed for the whole
// retry period, and disables its endpoint: first the event saying so
// (Config.Disabled), then the endpoint's row. If the event cannot be
// recorded, the attempt is recorded as one to try again, so the endpoint
// is disabled, with its event, after a later attempt.
func (d *Dispatcher) giveUp(ctx context.Context, o outcome) {
	if d.cfg.Disabled != nil {
		if err := d.recordDisabled(ctx, o); err != nil {
			if ctx.Err() == nil {
				d.log.Warn("webhook endpoint: cannot record that it is disabled; trying again later", "endpoint", o.h.endpointID, "error", err)
			}
			o.a.next = o.a.at.Add(d.cfg.BackoffInitial)
			if err := d.st.recordAll(ctx, []outcome{o}); err != nil && ctx.Err() == nil {
				d.log.Warn("webhook deliveries: cannot record an attempt; it will be made again", "delivery", o.h.id, "error", err)
			}
			return
		}
	}
	d.log.Warn("webhook endpoint disabled", "endpoint", o.h.endpointID, "reason", o.disable)
	if err := d.st.record(ctx, o.h, o.a, o.disable); err != nil && ctx.Err() == nil {
		d.log.Warn("webhook deliveries: cannot record an attempt; it will be made again", "delivery", o.h.id, "error", err)
	}
}

// recordDisabled records the event that o's endpoint is disabled, on the
// history of the owner of the event whose delivery failed.
func (d *Dispatcher) recordDisabled(ctx context.Context, o outcome) error {
	var p Payload
	if err := json.Unmarshal(o.h.body, &p); err != nil {
		return fmt.Errorf("read delivery %d: %w", o.h.id, err)
	}
	_, err := d.cfg.Disabled.RecordWebhookDisabled(ctx, p.Data.Owner, domain.OwnerWebhookDisabled{
		Endpoint: o.h.endpointID,
		URL:      truncate(o.h.url, domain.MaxWebhookURLLen),
		Event:    o.h.eventID,
		Reason:   truncate(o.disable, domain.MaxWebhookReasonLen),
	})
	return err
}

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// deliver makes one attempt of delivery h. ok is false when ctx ended
// meanwhile: the attempt is then not to be recorded, and the delivery
// stays due, so it is made again after the restart, with the same
// webhook-id.
func (d *Dispatcher) deliver(ctx context.Context, h head) (o outcome, ok bool) {
	now := d.cfg.Clock.Now()
	a := attempt{at: now}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(h.body))
	if err != nil {
		a.err = err.Error()
	} else {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "tokenledger-webhooks")
		req.Header.Set(HeaderID, h.eventID)
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(HeaderSignature, h.secret.Sign(h.eventID, now, h.body))
		res, err := d.client.Do(req)
		if err != nil {
			a.err = err.Error()
		} else {
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, d.cfg.MaxResponseBytes))
			_ = res.Body.Close()
			a.status = res.StatusCode
			a.ok = res.StatusCode >= 200 && res.StatusCode < 300
			if !a.ok {
				a.err = "HTTP " + res.Status
			}
		}
	}
	if ctx.Err() != nil {
		return outcome{}, false
	}
	o = outcome{h: h, a: a}
	if !a.ok {
		first := h.firstAt
		if first.IsZero() {
			first = now
		}
		if now.Sub(first) >= d.cfg.RetryPeriod {
			o.disable = fmt.Sprintf("delivery of event %s failed for %s: %s", h.eventID, d.cfg.RetryPeriod, a.err)
		} else {
			o.a.next = now.Add(d.cfg.backoff(h.attempts + 1))
		}
	}
	return o, true
}
