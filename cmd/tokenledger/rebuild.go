package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"

	"github.com/spf13/cobra"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/cmd/tokenledger/internal/progress"
	"github.com/tokenledger/tokenledger/export"
	"github.com/tokenledger/tokenledger/rebuild"
)

// newRebuildCommand is `tokenledger rebuild`; `replay`, its former name,
// still runs it.
func newRebuildCommand(g *globalFlags) *cobra.Command {
	cfg := app.DefaultRebuildConfig()
	progressMode := "auto"
	gcPercent := rebuild.DefaultGCPercent
	cmd := &cobra.Command{
		Use:     "rebuild",
		Aliases: []string{"replay"},
		Short:   "Rebuild the PostgreSQL read model from the event stream and swap it in",
		Long: `rebuild rebuilds the lifecycle projection from stream sequence 1 into fresh
tables while the live projector keeps serving, then swaps them in atomically
once they have caught up:

  read      every event of the stream is read and folded in memory
  load      the folded rows are copied into shadow tables, then indexed
  catch-up  events appended meanwhile are applied to the shadow tables
  swap      under the live checkpoint's lock, the last events are applied and
            the shadow tables replace the live ones in one transaction

The live tables are untouched until the swap, and untouched if the rebuild fails
or is interrupted. The fold holds every token in memory, about 620 bytes per
token; with --gc-percent 200 the heap peaks at about three times that (1.9 GB
for a million tokens). Progress goes to stderr (a bar on a terminal, a line
every five seconds otherwise); the summary goes to stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mode, err := parseProgressMode(progressMode, os.Stderr)
			if err != nil {
				return err
			}
			pp := &rebuildProgress{w: cmd.ErrOrStderr(), mode: mode}
			log, err := g.newLoggerTo(pp)
			if err != nil {
				return err
			}
			setGCPercent(gcPercent, cmd.Flags().Changed("gc-percent"))
			cfg.Rebuild.Progress = pp.update
			res, err := app.Rebuild(cmd.Context(), cfg, log)
			pp.stop()
			if err != nil {
				return oneLine(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rebuilt from %s events in %.2f s: %s events/s (%s tokens, %s owner revocations; projection %q at sequence %d)\n",
				export.Count(res.Events), res.Elapsed.Seconds(), export.Count(uint64(res.Rate())),
				export.Count(uint64(res.Tokens)), export.Count(uint64(res.Owners)), cfg.Rebuild.Name, res.Sequence)
			return nil
		},
	}
	f := cmd.Flags()
	bindConnectFlags(f, &cfg.NATSURL, &cfg.NATSAuth, &cfg.PostgresURL, &cfg.Store)
	f.StringVar(&cfg.Rebuild.Name, "name", cfg.Rebuild.Name, "name of the projection to rebuild (its checkpoint's name; the live projector's --name)")
	f.IntVar(&cfg.Rebuild.Batch, "catch-up-batch", cfg.Rebuild.Batch, "events per transaction while catching up; the swap takes over once at most this many are left")
	f.DurationVar(&cfg.Rebuild.LockTimeout, "swap-lock-timeout", cfg.Rebuild.LockTimeout, "longest wait of the swap for each lock (0: no limit); the live projector and readers wait behind it meanwhile")
	f.IntVar(&cfg.Rebuild.SwapAttempts, "swap-attempts", cfg.Rebuild.SwapAttempts, "how many times a swap that timed out on a lock is tried")
	f.IntVar(&cfg.Rebuild.IndexWorkers, "index-workers", cfg.Rebuild.IndexWorkers, "indexes built at once, one connection each (0: 2)")
	f.BoolVar(&cfg.UsageRollups, "usage", cfg.UsageRollups, "also rebuild the hourly usage rollups (GET /v1/tokens/{id}/usage) from the usage stream, up to the usage projection's checkpoint; its consumer waits meanwhile")
	f.StringVar(&cfg.UsageName, "usage-name", cfg.UsageName, "with --usage: the usage projection's name (the usage consumer's --usage-name)")
	dayDurationVar(f, &cfg.RollupRetention, "usage-rollup-retention", cfg.RollupRetention, "with --usage: the rollup retention of the usage consumer; older hours are left out")
	f.StringVar(&progressMode, "progress", progressMode, "progress display: auto (a bar on a terminal, lines otherwise), bar, lines or off")
	f.IntVar(&gcPercent, "gc-percent", gcPercent, "garbage collector target while rebuilding, as GOGC (a GOGC environment variable wins unless this flag is given); higher is faster and needs more memory: the heap peaks at about (1 + value/100) × the fold")
	return cmd
}

// setGCPercent applies --gc-percent, unless the flag was not given and the
// GOGC environment variable was: the runtime has applied it already.
func setGCPercent(percent int, given bool) {
	if _, ok := os.LookupEnv("GOGC"); ok && !given {
		return
	}
	debug.SetGCPercent(percent)
}

// progressMode is how rebuild shows its progress.
type progressMode int

const (
	progressOff progressMode = iota
	progressLines
	progressBar
)

// parseProgressMode resolves --progress; auto looks at whether out is a
// terminal.
func parseProgressMode(s string, out *os.File) (progressMode, error) {
	switch s {
	case "auto":
		if progress.IsTerminal(out) {
			return progressBar, nil
		}
		return progressLines, nil
	case "bar":
		return progressBar, nil
	case "lines":
		return progressLines, nil
	case "off":
		return progressOff, nil
	}
	return progressOff, fmt.Errorf("--progress %q: want auto, bar, lines or off", s)
}

// rebuildProgress shows a rebuild's progress on w, one bar (or series of
// lines) per reading phase. Log records go through it too, so that they
// never land in the middle of a bar.
type rebuildProgress struct {
	w    io.Writer
	mode progressMode

	mu    sync.Mutex
	phase rebuild.Phase
	base  uint64 // the sequence the phase started from
	meter *progress.Meter
	rep   *progress.Reporter
}

// update is the rebuild's progress callback.
func (p *rebuildProgress) update(u rebuild.Progress) {
	if p.mode == progressOff {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if u.Phase != p.phase {
		p.stopLocked()
		p.phase = u.Phase
		if u.Phase == rebuild.PhaseRead || u.Phase == rebuild.PhaseCatchUp {
			p.base = u.Done
			p.meter = progress.NewMeter(u.Total - min(u.Total, p.base))
			p.rep = progress.Start(p.w, p.meter, progress.Options{
				Label:    "rebuild " + string(u.Phase),
				Unit:     "events",
				Terminal: p.mode == progressBar,
			})
		}
	}
	if p.meter != nil {
		p.meter.SetTotal(u.Total - min(u.Total, p.base))
		p.meter.Set(u.Done - min(u.Done, p.base))
	}
}

// Write writes a log record.
func (p *rebuildProgress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rep != nil {
		return p.rep.Write(b)
	}
	return p.w.Write(b)
}

func (p *rebuildProgress) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked()
}

func (p *rebuildProgress) stopLocked() {
	if p.rep != nil {
		p.rep.Stop()
	}
	p.rep, p.meter = nil, nil
}
