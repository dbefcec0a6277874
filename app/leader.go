package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/projections"
)

// leadershipPoll is how often a standby `project` process asks for the
// projection's leadership, and how often the leader checks it still holds
// it: a standby takes over within about this long after the leader died.
const leadershipPoll = 250 * time.Millisecond

// leader runs a `project` process's workers only while the process leads
// its projection (projections.Leadership): of several processes one
// projects, the others stand by and the first to notice the leader gone
// takes over. Losing the leadership stops the workers with
// projections.ErrLeadershipLost, so the process exits and its supervisor
// starts it again, as a standby.
type leader struct {
	pool *pgxpool.Pool
	name string
	log  *slog.Logger

	ctx    context.Context // ends when the process stops
	cancel context.CancelFunc

	acquired chan struct{} // closed when the acquisition ended, either way
	held     *projections.Leadership
	err      error // why the acquisition failed (not ctx's end)
	active   atomic.Bool
	once     sync.Once
}

func newLeader(pool *pgxpool.Pool, name string, log *slog.Logger) *leader {
	ctx, cancel := context.WithCancel(context.Background())
	return &leader{pool: pool, name: name, log: log, ctx: ctx, cancel: cancel, acquired: make(chan struct{})}
}

// acquire waits for the leadership, until release is called; run it once,
// in a goroutine of its own.
func (l *leader) acquire() {
	defer close(l.acquired)
	held, err := projections.AcquireLeadership(l.ctx, l.pool, l.name, leadershipPoll, func() {
		l.log.Info("standing by: another project process leads the projection", "projection", l.name)
	})
	if err != nil {
		if l.ctx.Err() == nil {
			l.err = err
		}
		return
	}
	l.held = held
	l.active.Store(true)
	l.log.Info("leading the projection", "projection", l.name)
}

func (l *leader) isActive() bool { return l.active.Load() }

// gated returns run, started only once the process leads and stopped when
// it loses the leadership; closeIdle, if not nil, is called instead when
// the process stops without ever leading.
func (l *leader) gated(run func(context.Context) error, closeIdle func() error) func(context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-l.acquired:
		case <-ctx.Done():
		}
		if l.held == nil || ctx.Err() != nil {
			if closeIdle != nil {
				_ = closeIdle()
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("lead projection %q: %w", l.name, l.err)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-l.held.Lost():
				cancel()
			case <-ctx.Done():
			}
		}()
		err := run(ctx)
		if lost := l.held.Err(); lost != nil {
			return errors.Join(err, lost)
		}
		return err
	}
}

// release stops waiting for the leadership, or gives it up: call it after
// the workers stopped.
func (l *leader) release(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		l.cancel()
		select {
		case <-l.acquired:
		case <-ctx.Done():
			err = ctx.Err()
			return
		}
		if l.held != nil {
			l.active.Store(false)
			if lerr := l.held.Release(ctx); lerr != nil && l.held.Err() == nil {
				err = fmt.Errorf("release the leadership of projection %q: %w", l.name, lerr)
			}
		}
	})
	return err
}
