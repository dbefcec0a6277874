package projections

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrLeadershipLost is the cause a Leadership reports when its session
// ended (the connection broke, or PostgreSQL restarted): another process
// may have taken over, so the holder must stop writing at once.
var ErrLeadershipLost = errors.New("projection leadership lost")

// Leadership makes one process of several the active writer of a
// projection, with the others standing by: it is a session-level
// PostgreSQL advisory lock held on a connection of its own. The lock is
// released when Release is called or when the session ends for any
// reason, a SIGKILLed process included (the server ends the session as
// soon as the connection closes), so a standby polling for it takes over
// within one poll interval.
//
// The lock only keeps standbys from doing the same work twice; exactly
// once does not depend on it: ApplyNext locks the checkpoint row and
// refuses a batch that does not follow the checkpoint, so even two
// writers that both believe they lead never commit interleaved batches.
type Leadership struct {
	release func(context.Context) error
	lost    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	err     error // why lost was closed
}

// leadershipKey is the advisory lock key of projection name.
func leadershipKey(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("tokenledger projection leader " + name))
	return int64(h.Sum64())
}

// AcquireLeadership waits until this process holds the leadership of
// projection name, asking every poll, and returns it; standby, if not
// nil, is called once when the first attempt finds another holder. It
// returns ctx's error if ctx ends first. The holder watches its session
// every poll: Lost is closed when it ends.
func AcquireLeadership(ctx context.Context, pool *pgxpool.Pool, name string, poll time.Duration, standby func()) (*Leadership, error) {
	if poll <= 0 {
		return nil, fmt.Errorf("leadership of %q: poll interval %s must be positive", name, poll)
	}
	key := leadershipKey(name)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("leadership of %q: %w", name, err)
	}
	// The lock lives as long as this session: the connection leaves the
	// pool for good.
	pc := conn.Hijack()
	t := time.NewTicker(poll)
	defer t.Stop()
	for first := true; ; first = false {
		var ok bool
		if err := pc.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
			_ = pc.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("leadership of %q: %w", name, err)
		}
		if ok {
			break
		}
		if first && standby != nil {
			standby()
		}
		select {
		case <-ctx.Done():
			_ = pc.Close(context.WithoutCancel(ctx))
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	l := &Leadership{
		lost: make(chan struct{}),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	l.release = func(ctx context.Context) error {
		_, err := pc.Exec(ctx, `SELECT pg_advisory_unlock($1)`, key)
		return errors.Join(err, pc.Close(ctx))
	}
	go func() {
		defer close(l.done)
		t := time.NewTicker(poll)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(context.Background(), max(poll, time.Second))
			err := pc.Ping(pctx)
			cancel()
			if err != nil {
				l.err = fmt.Errorf("%w: %s: %w", ErrLeadershipLost, name, err)
				close(l.lost)
				return
			}
		}
	}()
	return l, nil
}

// Lost is closed when the session holding the lock ended; Err then says
// why.
func (l *Leadership) Lost() <-chan struct{} { return l.lost }

// Err returns why the leadership was lost, nil while it is held.
func (l *Leadership) Err() error {
	select {
	case <-l.lost:
		return l.err
	default:
		return nil
	}
}

// Release gives the leadership up (a standby takes over at its next poll)
// and closes the session. Call it once, after the writers stopped.
func (l *Leadership) Release(ctx context.Context) error {
	close(l.stop)
	<-l.done
	return l.release(ctx)
}
