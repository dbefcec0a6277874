package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/domain"
)

// Store is the append-only event store on JetStream: a lifecycle stream
// holding every token and owner event forever, and a usage stream holding
// usage events for Config.UsageMaxAge. A Store is safe for concurrent use.
// It uses the connection it was opened with, which stays the caller's,
// and from its first Load on holds one subscription on it, until Close.
type Store struct {
	js        jetstream.JetStream
	reg       *domain.Registry
	cfg       Config
	subj      Subjects
	stream    jetstream.Stream
	usage     jetstream.Stream
	apiPrefix string
	direct    *directGetter
}

// Open creates the two streams, or updates them to cfg when they differ,
// and returns a store on them: set-up's call (`tokenledger dev`,
// `tokenledger streams init`, `admin bootstrap`). Processes that only use
// the streams open them with OpenExisting. It retries while a cluster is still
// electing leaders, a bounded number of times and until ctx ends. Open
// refuses a stream whose resulting configuration would allow history to
// be removed or rewritten (purge, message delete, rollup, limits or
// message TTLs on the lifecycle stream). DenyDelete and DenyPurge cannot be
// turned off once set: the streams stay append-only for good. Deleting a
// whole stream is refused only by permissions; see ProtectedAPISubjects.
// A user denied stream updates opens an up-to-date store without one, but
// cannot apply a changed configuration: the server drops the update
// unanswered and Open fails once its retries time out.
func Open(ctx context.Context, nc *nats.Conn, reg *domain.Registry, cfg Config) (*Store, error) {
	js, err := jetStream(nc)
	if err != nil {
		return nil, err
	}
	return open(ctx, js, reg, cfg)
}

// open is Open on the JetStream handle js.
func open(ctx context.Context, js jetstream.JetStream, reg *domain.Registry, cfg Config) (*Store, error) {
	s, err := newStore(js, reg, cfg)
	if err != nil {
		return nil, err
	}
	if s.stream, err = s.ensureStream(ctx, s.lifecycleConfig()); err != nil {
		return nil, err
	}
	if s.usage, err = s.ensureStream(ctx, s.usageConfig()); err != nil {
		return nil, err
	}
	return s, nil
}

// ErrStreamMissing is the error of OpenExisting when a stream does not
// exist: set-up (`tokenledger streams init`, or `tokenledger dev`) creates
// the streams, never a worker or an API node.
var ErrStreamMissing = errors.New("stream does not exist")

// OpenExisting returns a store on the two streams as they are, without
// creating or changing anything: what API nodes, workers and embedded
// validators use, so that a process started with a wrong flag cannot
// reconfigure production streams (only Open, run by set-up, does).
//
// It fails with ErrStreamMissing when a stream does not exist, and with a
// description of the problem when a stream is unsafe for the store: it
// allows history to be removed or rewritten (deletes, purges, rollups,
// message TTLs, or limits on the lifecycle stream), it does not capture
// the subjects the store writes (another prefix), or it lacks direct gets
// or, on the lifecycle stream, atomic batches. Settings that are the
// operator's to choose — replicas, the duplicate window, the usage
// stream's retention — are taken as they are.
func OpenExisting(ctx context.Context, nc *nats.Conn, reg *domain.Registry, cfg Config) (*Store, error) {
	js, err := jetStream(nc)
	if err != nil {
		return nil, err
	}
	s, err := newStore(js, reg, cfg)
	if err != nil {
		return nil, err
	}
	if s.stream, err = s.existingStream(ctx, s.lifecycleConfig(), true); err != nil {
		return nil, err
	}
	if s.usage, err = s.existingStream(ctx, s.usageConfig(), false); err != nil {
		return nil, err
	}
	return s, nil
}

// existingStream looks stream want.Name up and checks that the store can
// use it safely.
func (s *Store) existingStream(ctx context.Context, want jetstream.StreamConfig, lifecycle bool) (jetstream.Stream, error) {
	var stream jetstream.Stream
	err := retryTransient(ctx, s.cfg.RequestTimeout, openAttempts, func(ctx context.Context) error {
		var err error
		stream, err = s.js.Stream(ctx, want.Name)
		return err
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("open event store: stream %s: %w (create the streams with `tokenledger streams init`)", want.Name, ErrStreamMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("open event store: stream %s: %w", want.Name, err)
	}
	got := stream.CachedInfo().Config
	errs := rewritable(got)
	if lifecycle && (got.MaxAge != 0 || got.MaxMsgs > 0 || got.MaxBytes > 0 || got.MaxMsgsPerSubject > 0) {
		errs = append(errs, fmt.Errorf("limits would remove events: max age %s, max msgs %d, max bytes %d, max per subject %d",
			got.MaxAge, got.MaxMsgs, got.MaxBytes, got.MaxMsgsPerSubject))
	}
	if !slices.Equal(sorted(got.Subjects), sorted(want.Subjects)) {
		errs = append(errs, fmt.Errorf("subjects %v, the store writes %v (another subject prefix?)", got.Subjects, want.Subjects))
	}
	if !got.AllowDirect {
		errs = append(errs, errors.New("direct gets are off"))
	}
	if lifecycle && !got.AllowAtomicPublish {
		errs = append(errs, errors.New("atomic batches are off"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("open event store: stream %s is unsafe to use (fix it with `tokenledger streams init`): %w", want.Name, err)
	}
	return stream, nil
}

// jetStream returns a JetStream handle on nc.
func jetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	if nc == nil {
		return nil, errors.New("open event store: a connection is required")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open event store: %w", err)
	}
	return js, nil
}

// newStore returns a store with cfg on js, its streams not yet looked up.
func newStore(js jetstream.JetStream, reg *domain.Registry, cfg Config) (*Store, error) {
	if js == nil || reg == nil {
		return nil, errors.New("open event store: jetstream and registry are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open event store: %w", err)
	}
	s := &Store{
		js:        js,
		reg:       reg,
		cfg:       cfg,
		subj:      cfg.Subjects(),
		apiPrefix: apiPrefix(js.Options()),
	}
	s.direct = &directGetter{nc: js.Conn(), subject: s.apiPrefix + "DIRECT.GET." + cfg.Stream}
	return s, nil
}

// lifecycleConfig is the lifecycle stream: every event kept forever, no
// way to delete, purge or roll up, atomic batches for multi-event appends,
// direct gets for fast aggregate loads.
func (s *Store) lifecycleConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        s.cfg.Stream,
		Description: "tokenledger lifecycle events (append-only)",
		Subjects:    s.subj.Lifecycle(),
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
		Duplicates:  s.cfg.DuplicateWindow,
		Discard:     jetstream.DiscardNew,
		// No MaxAge/MaxMsgs/MaxBytes/MaxMsgsPerSubject: limits remove
		// messages even from a DenyDelete stream.
		MaxMsgs:            -1,
		MaxBytes:           -1,
		MaxMsgsPerSubject:  -1,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowRollup:        false,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		// SubjectDeleteMarkerTTL stays zero: it would turn rollups on
		// and purge protection off. Message TTLs stay off.
		AllowMsgTTL: false,
		PersistMode: jetstream.DefaultPersistMode,
	}
}

// usageConfig is the usage stream: append-only like the lifecycle stream,
// but messages age out after UsageMaxAge.
func (s *Store) usageConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              s.cfg.UsageStream,
		Description:       "tokenledger usage events (append-only, aged out)",
		Subjects:          s.subj.Usage(),
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Replicas:          s.cfg.Replicas,
		Duplicates:        s.cfg.DuplicateWindow,
		MaxAge:            s.cfg.UsageMaxAge,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1,
		DenyDelete:        true,
		DenyPurge:         true,
		AllowRollup:       false,
		AllowDirect:       true,
		AllowMsgTTL:       false,
		PersistMode:       jetstream.DefaultPersistMode,
	}
}

// ensureStream creates the stream, or updates it when its configuration
// differs from cfg. It reads the configuration first and updates only when
// needed, so a user who may create streams but not update them (see
// ProtectedAPISubjects) can open an up-to-date store.
func (s *Store) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	var stream jetstream.Stream
	err := retryTransient(ctx, s.cfg.RequestTimeout, openAttempts, func(ctx context.Context) error {
		err := s.createOrUpdate(ctx, cfg, &stream)
		if apiErrorCode(err) == codeNoSuitablePeers {
			// A cluster that just formed places replicas only once every
			// peer has reported its state; wait for that like for a
			// leader election.
			return fmt.Errorf("%w: %w", errRetryable, err)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open event store: stream %s: %w", cfg.Name, err)
	}
	got := stream.CachedInfo().Config
	if err := checkAppendOnly(got, cfg); err != nil {
		return nil, fmt.Errorf("open event store: stream %s: %w", cfg.Name, err)
	}
	if !sameConfig(got, cfg) {
		return nil, fmt.Errorf("open event store: stream %s: configuration differs from the requested one", cfg.Name)
	}
	return stream, nil
}

// createOrUpdate creates the stream, or updates it when its configuration
// differs from cfg.
func (s *Store) createOrUpdate(ctx context.Context, cfg jetstream.StreamConfig, out *jetstream.Stream) error {
	stream, err := s.js.Stream(ctx, cfg.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		stream, err = s.js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Created concurrently by another process: read it again.
			stream, err = s.js.Stream(ctx, cfg.Name)
		}
	case err != nil:
	case !sameConfig(stream.CachedInfo().Config, cfg):
		stream, err = s.js.UpdateStream(ctx, cfg)
	}
	if err == nil {
		*out = stream
	}
	return err
}

// sameConfig reports whether the settings the store chooses are equal in
// got and want.
func sameConfig(got, want jetstream.StreamConfig) bool {
	return slices.Equal(sorted(got.Subjects), sorted(want.Subjects)) &&
		got.Description == want.Description &&
		got.Retention == want.Retention &&
		got.Storage == want.Storage &&
		got.Replicas == want.Replicas &&
		got.Duplicates == want.Duplicates &&
		got.Discard == want.Discard &&
		got.MaxAge == want.MaxAge &&
		got.MaxMsgs == want.MaxMsgs &&
		got.MaxBytes == want.MaxBytes &&
		got.MaxMsgsPerSubject == want.MaxMsgsPerSubject &&
		got.DenyDelete == want.DenyDelete &&
		got.DenyPurge == want.DenyPurge &&
		got.AllowRollup == want.AllowRollup &&
		got.AllowDirect == want.AllowDirect &&
		got.AllowAtomicPublish == want.AllowAtomicPublish &&
		got.AllowMsgTTL == want.AllowMsgTTL &&
		got.SubjectDeleteMarkerTTL == want.SubjectDeleteMarkerTTL &&
		got.PersistMode == want.PersistMode
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// rewritable lists the settings of a stream through which its history
// could be removed or rewritten by messages alone.
func rewritable(got jetstream.StreamConfig) []error {
	var errs []error
	if !got.DenyDelete || !got.DenyPurge {
		errs = append(errs, errors.New("delete or purge is allowed"))
	}
	if got.AllowRollup {
		errs = append(errs, errors.New("rollup is allowed"))
	}
	if got.AllowMsgTTL || got.SubjectDeleteMarkerTTL != 0 {
		errs = append(errs, errors.New("message TTLs or subject delete markers are enabled"))
	}
	return errs
}

// checkAppendOnly verifies that the server kept the properties the store
// relies on.
func checkAppendOnly(got, want jetstream.StreamConfig) error {
	errs := rewritable(got)
	if got.MaxAge != want.MaxAge || got.MaxMsgs > 0 || got.MaxBytes > 0 || got.MaxMsgsPerSubject > 0 {
		errs = append(errs, fmt.Errorf("unexpected limits: max age %s, max msgs %d, max bytes %d, max per subject %d",
			got.MaxAge, got.MaxMsgs, got.MaxBytes, got.MaxMsgsPerSubject))
	}
	if !got.AllowDirect || got.AllowAtomicPublish != want.AllowAtomicPublish {
		errs = append(errs, errors.New("direct get or atomic publish setting not applied"))
	}
	if got.Duplicates != want.Duplicates || got.Replicas != want.Replicas {
		errs = append(errs, fmt.Errorf("duplicate window %s / replicas %d not applied", got.Duplicates, got.Replicas))
	}
	return errors.Join(errs...)
}

// openAttempts bounds Open's retries while a cluster elects its leaders.
const openAttempts = 10

// retryTransient calls op with a per-attempt timeout until it succeeds,
// fails with an error that is not transient, has been tried attempts
// times, or ctx ends.
func retryTransient(ctx context.Context, timeout time.Duration, attempts int, op func(context.Context) error) error {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := op(actx)
		cancel()
		if err == nil || !isTransient(err) || ctx.Err() != nil || attempt >= attempts {
			return err
		}
		if werr := wait(ctx, backoff); werr != nil {
			return err
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Attempt timeouts of the requests an append or a load makes: the first
// attempt gets attemptTimeoutMin, each further one twice the previous, up
// to attemptTimeoutMax (or Config.RequestTimeout if shorter). A request
// sent to a stream leader that just died or was cut off is never
// answered; short attempts find that out quickly and keep trying, so the
// first attempt after the new leader is elected comes soon after it,
// while the second's longer wait still lets a slow but live server answer.
const (
	attemptTimeoutMin = time.Second
	attemptTimeoutMax = 2 * time.Second
)

// untilDeadline runs op until it succeeds, fails with an error that is not
// transient, or ctx's deadline passes (Config.AppendTimeout from now when
// ctx has none), each attempt under a growing attempt timeout, pausing a
// jittered, growing time between attempts. It is how a read waits out a
// leader election instead of failing at the first unanswered request.
func (s *Store) untilDeadline(ctx context.Context, op func(context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.AppendTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	timeout := min(attemptTimeoutMin, s.cfg.RequestTimeout)
	backoff := appendBackoffMin
	for {
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := op(actx)
		cancel()
		if err == nil || !isTransient(err) || ctx.Err() != nil {
			return err
		}
		pause := jitter(backoff)
		if time.Until(deadline) < pause+appendAttemptMin {
			return err
		}
		if werr := wait(ctx, pause); werr != nil {
			return err
		}
		backoff = min(2*backoff, appendBackoffMax)
		timeout = min(2*timeout, attemptTimeoutMax, s.cfg.RequestTimeout)
	}
}

// wait pauses for d or until ctx ends.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// withTimeout bounds ctx by the configured request timeout unless it
// already has a deadline.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// apiPrefix is the subject prefix of JetStream API requests made with
// opts, ending in a dot.
func apiPrefix(opts jetstream.JetStreamOptions) string {
	switch {
	case opts.APIPrefix != "":
		if strings.HasSuffix(opts.APIPrefix, ".") {
			return opts.APIPrefix
		}
		return opts.APIPrefix + "."
	case opts.Domain != "":
		return "$JS." + opts.Domain + ".API."
	default:
		return "$JS.API."
	}
}

// Close releases the store's subscription. It does not close the
// connection, which belongs to the caller. Using the store after Close is
// allowed and subscribes again.
func (s *Store) Close() error { return s.direct.close() }

// Conn returns the connection the store uses, which stays the caller's:
// for watching its state, not for reading the streams around the store.
func (s *Store) Conn() *nats.Conn { return s.js.Conn() }

// Config returns the store's configuration.
func (s *Store) Config() Config { return s.cfg }

// Registry returns the registry events are encoded with.
func (s *Store) Registry() *domain.Registry { return s.reg }

// Subjects returns the subject builder of the store's prefix.
func (s *Store) Subjects() Subjects { return s.subj }
