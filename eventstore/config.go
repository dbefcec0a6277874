package eventstore

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultStream          = "TOKENLEDGER"
	DefaultUsageStream     = "TOKENLEDGER_USAGE"
	DefaultSubjectPrefix   = "tl"
	DefaultReplicas        = 1
	DefaultDuplicateWindow = 10 * time.Minute
	DefaultUsageMaxAge     = 30 * 24 * time.Hour
	DefaultRequestTimeout  = 5 * time.Second
	DefaultAppendTimeout   = 10 * time.Second
	DefaultReadBatch       = 4096
	DefaultLoadBatch       = 256
)

// MaxBatch is the most events one Append or AppendAtomic may carry: the
// server's limit on an atomic batch.
const MaxBatch = 1000

// Config configures the event store. Start from DefaultConfig; the zero
// value is not valid.
type Config struct {
	// Stream is the lifecycle stream's name.
	Stream string
	// UsageStream is the usage stream's name.
	UsageStream string
	// SubjectPrefix is the first subject token of every event subject.
	SubjectPrefix string
	// Replicas is the replication factor of both streams: 1 for a single
	// server, 3 for a cluster. A replicated append is acknowledged once a
	// majority of the replicas stored it.
	Replicas int
	// DuplicateWindow is how long the server remembers event ids to drop
	// re-sent events. It must cover every retry of an append, including a
	// client's retry of a whole request after a lost answer.
	DuplicateWindow time.Duration
	// UsageMaxAge is how long usage events are kept.
	UsageMaxAge time.Duration
	// RequestTimeout bounds each request to the server (one append
	// attempt, one read request) when the context has no earlier deadline.
	RequestTimeout time.Duration
	// AppendTimeout bounds a whole append, every attempt and the lookup
	// that settles an unanswered one, when the context has no earlier
	// deadline. Within it an append that gets no answer (no responders
	// during a leader election, a timeout, a reconnecting client) is sent
	// again, with the same event ids and expectation, after a growing
	// pause. It must be longer than a leader election (about 5 s) for an
	// election to stay invisible to writers.
	AppendTimeout time.Duration
	// ReadBatch is how many messages a read with a consumer (the usage
	// stream's reads, ReadTokenEvents) asks the server for at a time.
	ReadBatch int
	// LoadBatch is how many messages one request of an aggregate load
	// returns.
	LoadBatch int
}

// DefaultConfig returns the default configuration: a single replica, the
// stream names and prefix of the subject contract, a ten minute duplicate
// window and thirty days of usage.
func DefaultConfig() Config {
	return Config{
		Stream:          DefaultStream,
		UsageStream:     DefaultUsageStream,
		SubjectPrefix:   DefaultSubjectPrefix,
		Replicas:        DefaultReplicas,
		DuplicateWindow: DefaultDuplicateWindow,
		UsageMaxAge:     DefaultUsageMaxAge,
		RequestTimeout:  DefaultRequestTimeout,
		AppendTimeout:   DefaultAppendTimeout,
		ReadBatch:       DefaultReadBatch,
		LoadBatch:       DefaultLoadBatch,
	}
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if err := validStreamName(c.Stream); err != nil {
		errs = append(errs, fmt.Errorf("stream: %w", err))
	}
	if err := validStreamName(c.UsageStream); err != nil {
		errs = append(errs, fmt.Errorf("usage stream: %w", err))
	}
	if c.Stream != "" && c.Stream == c.UsageStream {
		errs = append(errs, fmt.Errorf("usage stream must differ from stream %q", c.Stream))
	}
	if err := validPrefix(c.SubjectPrefix); err != nil {
		errs = append(errs, fmt.Errorf("subject prefix: %w", err))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas %d outside 1..5", c.Replicas))
	}
	if c.DuplicateWindow <= 0 {
		errs = append(errs, fmt.Errorf("duplicate window %s must be positive", c.DuplicateWindow))
	}
	if c.UsageMaxAge <= 0 {
		errs = append(errs, fmt.Errorf("usage max age %s must be positive", c.UsageMaxAge))
	} else if c.UsageMaxAge < c.DuplicateWindow {
		errs = append(errs, fmt.Errorf("usage max age %s is shorter than the duplicate window %s", c.UsageMaxAge, c.DuplicateWindow))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("request timeout %s must be positive", c.RequestTimeout))
	}
	if c.AppendTimeout <= 0 {
		errs = append(errs, fmt.Errorf("append timeout %s must be positive", c.AppendTimeout))
	}
	if c.ReadBatch < 1 {
		errs = append(errs, fmt.Errorf("read batch %d must be at least 1", c.ReadBatch))
	}
	if c.LoadBatch < 1 {
		errs = append(errs, fmt.Errorf("load batch %d must be at least 1", c.LoadBatch))
	}
	return errors.Join(errs...)
}

// Subjects returns the subject builder for c's prefix.
func (c Config) Subjects() Subjects { return NewSubjects(c.SubjectPrefix) }

func validStreamName(name string) error {
	switch {
	case name == "":
		return errors.New("name is empty")
	case len(name) > 255:
		return fmt.Errorf("name %q is longer than 255 bytes", name[:32]+"…")
	case strings.ContainsAny(name, ".*> \t\r\n/\\"):
		return fmt.Errorf("name %q contains one of . * > / \\ or white space", name)
	}
	return nil
}

func validPrefix(prefix string) error {
	if prefix == "" {
		return errors.New("prefix is empty")
	}
	for tok := range strings.SplitSeq(prefix, ".") {
		if tok == "" {
			return fmt.Errorf("prefix %q has an empty token", prefix)
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; !keepOwnerByte(c) && c != '_' {
				return fmt.Errorf("prefix %q may only contain letters, digits, '-', '_' and '.'", prefix)
			}
		}
	}
	return nil
}
