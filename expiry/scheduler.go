package expiry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/oklog/ulid/v2"

	"github.com/tokenledger/tokenledger/domain"
)

// Defaults of Config.
const (
	DefaultInterval = time.Minute
	DefaultOverlap  = 10 * time.Minute
	DefaultPageSize = 500
)

// Announcer records the expiry notice of a token that is due now, once,
// and applies the inactivity policy to a token (ledger.Service implements
// it).
type Announcer interface {
	AnnounceExpiry(ctx context.Context, id domain.TokenID, leads []time.Duration) (bool, error)
	EnforceInactivity(ctx context.Context, id domain.TokenID, due time.Time, leads []time.Duration) (bool, error)
}

// Config configures a Scheduler.
type Config struct {
	// Leads are the lead times of token.expiring notices; nil means
	// domain.DefaultExpiryLeads.
	Leads []time.Duration
	// Interval is the pause between passes of Run.
	Interval time.Duration
	// Overlap is how far before its watermark each pass looks again, for
	// tokens the projector wrote after the pass that should have seen them.
	Overlap time.Duration
	// PageSize is how many tokens one query reads.
	PageSize int
	// Inactivity is the inactivity policy: a token not used for this long
	// (counted from its issue if never used) is revoked with reason
	// "inactive", after token.expiring warnings (reason "inactivity") at
	// the lead times. Zero turns the policy off.
	Inactivity time.Duration
	// Clock tells the time; nil means domain.SystemClock. It must be the
	// ledger's.
	Clock domain.Clock
	// Logger receives failures; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Leads:    slices.Clone(domain.DefaultExpiryLeads),
		Interval: DefaultInterval,
		Overlap:  DefaultOverlap,
		PageSize: DefaultPageSize,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Leads != nil {
		if err := domain.ValidateExpiryLeads(c.Leads); err != nil {
			errs = append(errs, fmt.Errorf("expiry lead times: %w", err))
		}
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("expiry interval %s must be positive", c.Interval))
	}
	if c.Overlap < 0 {
		errs = append(errs, fmt.Errorf("expiry overlap %s must not be negative", c.Overlap))
	}
	if c.PageSize < 1 {
		errs = append(errs, fmt.Errorf("expiry page size %d must be positive", c.PageSize))
	}
	if c.Inactivity < 0 {
		errs = append(errs, fmt.Errorf("inactivity period %s must not be negative", c.Inactivity))
	}
	return errors.Join(errs...)
}

// Scheduler announces due expiry notices; see the package documentation.
// It is safe for concurrent use, and several Schedulers (in several
// processes) may share one database.
type Scheduler struct {
	pool *pgxpool.Pool
	ann  Announcer
	cfg  Config
	log  *slog.Logger
}

// New returns a Scheduler reading the read model in pool's database.
func New(pool *pgxpool.Pool, ann Announcer, cfg Config) (*Scheduler, error) {
	if pool == nil || ann == nil {
		return nil, errors.New("expiry: pool and announcer are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Leads == nil {
		cfg.Leads = slices.Clone(domain.DefaultExpiryLeads)
	}
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{pool: pool, ann: ann, cfg: cfg, log: log}, nil
}

// Pass is the outcome of one pass.
type Pass struct {
	// Checked is how many tokens were looked at (a token may be looked at
	// once per lead time); Recorded how many notices this pass recorded.
	Checked, Recorded int
}

// Run makes a pass every Interval until ctx ends. A failed pass is
// logged and made again at the next interval; Run returns nil when ctx
// ends.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("expiry notices: pass failed; trying again at the next interval", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunOnce makes one pass over every lead time and the expiry itself. An
// error leaves the watermark of the
// look it concerns where it was.
func (s *Scheduler) RunOnce(ctx context.Context) (Pass, error) {
	now := s.cfg.Clock.Now()
	var total Pass
	var errs []error
	looks := []look{{name: "lead:0"}}
	for _, l := range s.cfg.Leads {
		looks = append(looks, look{name: fmt.Sprintf("lead:%d", int64(l/time.Second)), lead: l})
	}
	for _, l := range looks {
		p, err := s.pass(ctx, l, now)
		total.Checked += p.Checked
		total.Recorded += p.Recorded
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", l.name, err))
		}
	}
	if s.cfg.Inactivity > 0 {
		p, err := s.inactivityPass(ctx, now)
		total.Checked += p.Checked
		total.Recorded += p.Recorded
		if err != nil {
			errs = append(errs, fmt.Errorf("inactivity: %w", err))
		}
	}
	return total, errors.Join(errs...)
}

// look is one kind of query a pass makes: the tokens whose notice of lead
// fell due (lead 0: the expiry).
type look struct {
	name string
	lead time.Duration
}

// pass deals with the tokens of look l that fell due since its watermark
// (less the overlap), up to now.
func (s *Scheduler) pass(ctx context.Context, l look, now time.Time) (Pass, error) {
	var p Pass
	since, err := s.watermark(ctx, l.name, now)
	if err != nil {
		return p, err
	}
	since = since.Add(-s.cfg.Overlap)
	var failed error
	var after dueToken
	for {
		page, err := s.due(ctx, l, since, now, after)
		if err != nil {
			return p, err
		}
		for _, d := range page {
			p.Checked++
			ok, err := s.ann.AnnounceExpiry(ctx, d.id, s.cfg.Leads)
			if err != nil {
				if ctx.Err() != nil {
					return p, ctx.Err()
				}
				s.log.Warn("expiry notice not recorded; trying again at the next pass", "token", d.id.String(), "error", err)
				failed = err
				continue
			}
			if ok {
				p.Recorded++
			}
		}
		if len(page) < s.cfg.PageSize {
			break
		}
		after = page[len(page)-1]
	}
	if failed != nil {
		return p, failed
	}
	return p, s.advance(ctx, l.name, now)
}

type dueToken struct {
	id        domain.TokenID
	expiresAt time.Time
}

// dueSQL selects the live api tokens expiring in ($1, $2], after
// ($3, $4) in (expires_at, id) order: those whose notice of a lead time
// fell due in ($1 - lead, $2 - lead].
const dueSQL = `SELECT id, expires_at FROM tokens
WHERE revoked_at IS NULL AND kind = 'api' AND expires_at > $1 AND expires_at <= $2
  AND (expires_at, id) > ($3, $4)
ORDER BY expires_at, id
LIMIT $5`

func (s *Scheduler) due(ctx context.Context, l look, since, now time.Time, after dueToken) ([]dueToken, error) {
	rows, err := s.pool.Query(ctx, dueSQL, since.Add(l.lead), now.Add(l.lead), after.expiresAt, [16]byte(after.id), s.cfg.PageSize)
	if err != nil {
		return nil, fmt.Errorf("read the tokens due: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dueToken, error) {
		var id [16]byte
		var at time.Time
		if err := r.Scan(&id, &at); err != nil {
			return dueToken{}, err
		}
		return dueToken{id: domain.TokenID(ulid.ULID(id)), expiresAt: at}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the tokens due: %w", err)
	}
	return out, nil
}

// watermark returns the look's watermark, or now when it has none.
func (s *Scheduler) watermark(ctx context.Context, look string, now time.Time) (time.Time, error) {
	var through time.Time
	err := s.pool.QueryRow(ctx, `SELECT through FROM expiry_watermarks WHERE look = $1`, look).Scan(&through)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return now, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("read the expiry watermark: %w", err)
	}
	return through, nil
}

// advance moves the look's watermark to now, never back.
func (s *Scheduler) advance(ctx context.Context, look string, now time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO expiry_watermarks (look, through) VALUES ($1, $2)
ON CONFLICT (look) DO UPDATE SET through = GREATEST(expiry_watermarks.through, EXCLUDED.through)`, look, now)
	if err != nil {
		return fmt.Errorf("advance the expiry watermark: %w", err)
	}
	return nil
}
