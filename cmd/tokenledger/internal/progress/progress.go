// Package progress reports the progress of a long task towards a known
// total: a bar redrawn in place, with rate and time left, when the output is
// a terminal, and a plain line every few seconds otherwise (a log file, a
// pipe, a CI console), so that logs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenledger/tokenledger/export"
)

// Meter counts work done towards a total. Its methods are safe for
// concurrent use; Add and Set are a single atomic operation each, cheap
// enough to call once per item.
type Meter struct {
	done  atomic.Uint64
	total atomic.Uint64
	start time.Time
}

// NewMeter returns a meter of total items, started now.
func NewMeter(total uint64) *Meter {
	m := &Meter{start: time.Now()}
	m.total.Store(total)
	return m
}

// Add records n more items done.
func (m *Meter) Add(n uint64) { m.done.Add(n) }

// Set records that done items are done in all.
func (m *Meter) Set(done uint64) { m.done.Store(done) }

// SetTotal changes the total, for work that grows while it is done.
func (m *Meter) SetTotal(total uint64) { m.total.Store(total) }

// Done returns the number of items done.
func (m *Meter) Done() uint64 { return m.done.Load() }

// Total returns the total.
func (m *Meter) Total() uint64 { return m.total.Load() }

// Elapsed returns the time since the meter was made.
func (m *Meter) Elapsed() time.Duration { return time.Since(m.start) }

// Sample is the state of a meter at one instant, with its rates.
type Sample struct {
	Done, Total uint64
	Elapsed     time.Duration
	// Rate is items per second over the last few seconds (the average
	// since the start until enough time has passed).
	Rate float64
	// Average is items per second since the start.
	Average float64
	// Left is the estimated time to reach Total at Rate; negative when
	// unknown (no rate yet, or no total).
	Left time.Duration
}

// Fraction returns Done/Total, within [0, 1]; 0 without a total.
func (s Sample) Fraction() float64 {
	if s.Total == 0 {
		return 0
	}
	return min(float64(s.Done)/float64(s.Total), 1)
}

// rateWindow is how far back the current rate looks: long enough to smooth
// out batches, short enough to follow a change of pace.
const rateWindow = 5 * time.Second

// sampler turns meter readings into samples with a windowed rate.
type sampler struct {
	m    *Meter
	hist []point // readings within rateWindow, oldest first
}

type point struct {
	at   time.Duration
	done uint64
}

func (s *sampler) sample() Sample { return s.sampleAt(s.m.Elapsed()) }

// sampleAt samples the meter as if now had elapsed since its start.
func (s *sampler) sampleAt(now time.Duration) Sample {
	done, total := s.m.Done(), s.m.Total()
	s.hist = append(s.hist, point{now, done})
	for len(s.hist) > 2 && now-s.hist[1].at >= rateWindow {
		s.hist = s.hist[1:]
	}
	out := Sample{Done: done, Total: total, Elapsed: now, Left: -1}
	if now > 0 {
		out.Average = float64(done) / now.Seconds()
	}
	out.Rate = out.Average
	if first := s.hist[0]; now-first.at >= time.Second && done >= first.done {
		out.Rate = float64(done-first.done) / (now - first.at).Seconds()
	}
	if out.Rate > 0 && total > 0 {
		left := float64(total) - float64(done)
		out.Left = time.Duration(max(left, 0) / out.Rate * float64(time.Second))
	}
	return out
}

// Options configures a Reporter.
type Options struct {
	// Label names the work: "rebuild".
	Label string
	// Unit names the items: "events".
	Unit string
	// Terminal draws a bar redrawn in place instead of printing lines. Use
	// IsTerminal to decide.
	Terminal bool
	// Interval is the time between two lines when not on a terminal;
	// DefaultInterval when zero. A terminal is redrawn ten times a second.
	Interval time.Duration
	// Width is the bar's width in characters; DefaultWidth when zero.
	Width int
}

// Defaults of Options.
const (
	DefaultInterval = 5 * time.Second
	DefaultWidth    = 30
	redrawInterval  = 100 * time.Millisecond
)

// Reporter writes a meter's progress to an output until stopped. Other
// output meant for the same place (log lines) goes through its Write, so
// that it does not land in the middle of a bar.
type Reporter struct {
	opts Options
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu    sync.Mutex // guards everything below and the writes to w
	w     io.Writer
	s     sampler
	last  Sample
	drawn bool // a bar is on the terminal's current line
}

// Start reports m's progress on w: on a terminal it redraws a bar every
// 100 ms; otherwise it prints a line every opts.Interval. Stop ends it.
func Start(w io.Writer, m *Meter, opts Options) *Reporter {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Width <= 0 {
		opts.Width = DefaultWidth
	}
	r := &Reporter{w: w, opts: opts, s: sampler{m: m}, stop: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

func (r *Reporter) run() {
	defer close(r.done)
	every := r.opts.Interval
	if r.opts.Terminal {
		every = redrawInterval
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
			r.mu.Lock()
			r.report()
			r.mu.Unlock()
		}
	}
}

// report samples the meter and draws the bar or prints a line; r.mu is
// held.
func (r *Reporter) report() {
	r.last = r.s.sample()
	if r.opts.Terminal {
		// \r returns to the line's start, \x1b[K clears what a longer
		// previous line left behind.
		fmt.Fprintf(r.w, "\r%s\x1b[K", Bar(r.last, r.opts))
		r.drawn = true
		return
	}
	fmt.Fprintln(r.w, Line(r.last, r.opts))
}

// Write writes p, whole lines such as a log record, to the reporter's
// output. On a terminal it clears the bar first and draws it again below.
// It is safe to call concurrently with the reporting.
func (r *Reporter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.drawn {
		if _, err := io.WriteString(r.w, "\r\x1b[K"); err != nil {
			return 0, err
		}
		r.drawn = false
	}
	n, err := r.w.Write(p)
	if err == nil && r.opts.Terminal && !r.stopped() {
		fmt.Fprintf(r.w, "\r%s\x1b[K", Bar(r.last, r.opts))
		r.drawn = true
	}
	return n, err
}

func (r *Reporter) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// Stop stops reporting and, on a terminal, draws the bar a last time and
// ends its line. It returns the last sample. Stop is idempotent and safe
// for concurrent use.
func (r *Reporter) Stop() Sample {
	r.once.Do(func() {
		close(r.stop)
		<-r.done
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.opts.Terminal {
			r.report()
			fmt.Fprintln(r.w)
			r.drawn = false
		} else {
			r.last = r.s.sample()
		}
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Bar renders s as a one-line bar with count, rate and time left:
//
//	rebuild [=========>          ]  45%  450,000/1,000,000 events  123,456 events/s  ETA 4s
func Bar(s Sample, opts Options) string {
	width := opts.Width
	if width <= 0 {
		width = DefaultWidth
	}
	filled := int(s.Fraction() * float64(width))
	var b strings.Builder
	if opts.Label != "" {
		b.WriteString(opts.Label)
		b.WriteByte(' ')
	}
	b.WriteByte('[')
	b.WriteString(strings.Repeat("=", filled))
	if filled < width {
		b.WriteByte('>')
		b.WriteString(strings.Repeat(" ", width-filled-1))
	}
	b.WriteByte(']')
	fmt.Fprintf(&b, " %3.0f%%  %s", 100*s.Fraction(), counts(s, opts.Unit))
	return b.String()
}

// Line renders s as a plain log line:
//
//	rebuild: 450,000/1,000,000 events (45%), 123,456 events/s, ETA 4s
func Line(s Sample, opts Options) string {
	var b strings.Builder
	if opts.Label != "" {
		b.WriteString(opts.Label)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "%s/%s %s (%.0f%%), %s %s/s, ETA %s",
		export.Count(s.Done), export.Count(s.Total), unit(opts.Unit), 100*s.Fraction(),
		export.Count(uint64(s.Rate)), unit(opts.Unit), eta(s.Left))
	return b.String()
}

func counts(s Sample, u string) string {
	return fmt.Sprintf("%s/%s %s  %s %s/s  ETA %s", export.Count(s.Done), export.Count(s.Total), unit(u),
		export.Count(uint64(s.Rate)), unit(u), eta(s.Left))
}

func unit(u string) string {
	if u == "" {
		return "items"
	}
	return u
}

func eta(d time.Duration) string {
	if d < 0 {
		return "?"
	}
	return d.Round(time.Second).String()
}

// IsTerminal reports whether f is a terminal (a character device), on
// which a bar can be redrawn in place. TERM=dumb counts as no terminal.
func IsTerminal(f *os.File) bool {
	if f == nil || os.Getenv("TERM") == "dumb" {
		return false
	}
	info, err := f.Stat()
	if err != nil {
		return false
	}
	return info.Mode()&os.ModeCharDevice != 0
}
