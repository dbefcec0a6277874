package metrics

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/validator"
)

func TestValidationResult(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"no error is valid", nil, ResultValid},
		{"malformed", fmt.Errorf("checksum: %w", validator.ErrMalformed), ResultMalformed},
		{"unknown", fmt.Errorf("lookup: %w", validator.ErrUnknown), ResultUnknown},
		{"expired, matched through the domain's sentinel", fmt.Errorf("x: %w", domain.ErrTokenExpired), ResultExpired},
		{"revoked", fmt.Errorf("x: %w", validator.ErrRevoked), ResultRevoked},
		{"owner revoked", fmt.Errorf("x: %w", validator.ErrOwnerRevoked), ResultOwnerRevoked},
		{"stale", validator.ErrStale, ResultStale},
		{"not started has no verdict", validator.ErrNotStarted, ResultError},
		{"closed has no verdict", validator.ErrClosed, ResultError},
		{"an unrelated error has no verdict", errors.New("boom"), ResultError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := ValidationResult(tc.err); got != tc.want {
				t.Errorf("ValidationResult(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestObserveValidation(t *testing.T) {
	t.Parallel()
	m := New(discardLogger())
	m.ObserveValidation(ResultValid, 400*time.Nanosecond)
	m.ObserveValidation(ResultValid, 3*time.Millisecond)
	m.ObserveValidation(ResultInsufficientScope, time.Microsecond)
	f := scrape(t, m)

	h := f.histogram(t, "tokenledger_validation_duration_seconds", labels{"result": ResultValid})
	if h.GetSampleCount() != 2 {
		t.Fatalf("valid validations: %d, want 2", h.GetSampleCount())
	}
	for _, b := range []struct {
		le   float64
		want uint64
	}{
		{250e-9, 0}, {500e-9, 1}, {2.5e-3, 1}, {5e-3, 2},
	} {
		if got := bucket(t, h, b.le); got != b.want {
			t.Errorf("valid validations of 400 ns and 3 ms: bucket le=%g counts %d, want %d", b.le, got, b.want)
		}
	}
	if n := f.histogram(t, "tokenledger_validation_duration_seconds", labels{"result": ResultInsufficientScope}).GetSampleCount(); n != 1 {
		t.Errorf("insufficient_scope validations: %d, want 1", n)
	}
}

func TestValidatorCollector(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	stats := validator.Stats{
		Valid: 101, Malformed: 102, Unknown: 103, Expired: 104, Revoked: 105, OwnerRevoked: 106, Stale: 107,
		Lookups: 201, LookupsCoalesced: 202, LookupsLimited: 203, NegativeHits: 204, LookupErrors: 205,
		UsageEventsPublished: 301, UsageEventsDropped: 302, UsesPublished: 303, UsesDropped: 304, UsagePublishErrors: 305,
		EventsApplied: 401, TailRestarts: 402,
		Evicted: 501, CapacityEvicted: 502, ColdLookups: 503, ColdLookupsCoalesced: 504, ColdLookupsLimited: 505,
	}
	cases := []struct {
		name   string
		status validator.Status
		gauges map[string]float64
	}{
		{
			name:   "a running validator that follows the stream",
			status: validator.Status{Running: true, SnapshotSequence: 7, AppliedSequence: 42, Tokens: 1000, Owners: 30},
			gauges: map[string]float64{
				"tokenledger_validator_running":          1,
				"tokenledger_validator_tokens":           1000,
				"tokenledger_validator_owners":           30,
				"tokenledger_validator_applied_sequence": 42,
				"tokenledger_validator_stale":            0,
				"tokenledger_validator_stale_seconds":    0,
			},
		},
		{
			name: "a validator not following the stream, within its staleness bound",
			status: validator.Status{Running: true, AppliedSequence: 42, Tokens: 1, Owners: 1,
				StaleSince: now.Add(-3 * time.Second), StaleReason: errors.New("disconnected")},
			gauges: map[string]float64{
				"tokenledger_validator_stale":         0,
				"tokenledger_validator_stale_seconds": 3,
			},
		},
		{
			name: "a stale validator",
			status: validator.Status{Running: true, AppliedSequence: 42, Tokens: 1, Owners: 1,
				StaleSince: now.Add(-30 * time.Second), Stale: true, StaleReason: errors.New("disconnected")},
			gauges: map[string]float64{
				"tokenledger_validator_stale":         1,
				"tokenledger_validator_stale_seconds": 30,
			},
		},
		{
			name:   "a closed validator",
			status: validator.Status{Running: false, AppliedSequence: 42},
			gauges: map[string]float64{"tokenledger_validator_running": 0},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := New(discardLogger())
			m.validator.watch(func() (validator.Stats, validator.Status) { return stats, tc.status }, func() time.Time { return now })
			f := scrape(t, m)
			for name, want := range tc.gauges {
				f.wantValue(t, name, labels{}, want)
			}
			for result, want := range map[string]float64{
				ResultValid: 101, ResultMalformed: 102, ResultUnknown: 103, ResultExpired: 104,
				ResultRevoked: 105, ResultOwnerRevoked: 106, ResultStale: 107,
			} {
				f.wantValue(t, "tokenledger_validations_total", labels{"result": result}, want)
			}
			for outcome, want := range map[string]float64{"loaded": 201, "coalesced": 202, "limited": 203, "negative_hit": 204} {
				f.wantValue(t, "tokenledger_validator_lookups_total", labels{"outcome": outcome}, want)
			}
			for reason, want := range map[string]float64{"dead": 501, "capacity": 502} {
				f.wantValue(t, "tokenledger_validator_evicted_total", labels{"reason": reason}, want)
			}
			for outcome, want := range map[string]float64{"loaded": 503, "coalesced": 504, "limited": 505} {
				f.wantValue(t, "tokenledger_validator_cold_lookups_total", labels{"outcome": outcome}, want)
			}
			for name, want := range map[string]float64{
				"tokenledger_validator_lookup_errors_total":  205,
				"tokenledger_usage_events_published_total":   301,
				"tokenledger_usage_events_dropped_total":     302,
				"tokenledger_usage_uses_published_total":     303,
				"tokenledger_usage_uses_dropped_total":       304,
				"tokenledger_usage_publish_errors_total":     305,
				"tokenledger_validator_events_applied_total": 401,
				"tokenledger_validator_tail_restarts_total":  402,
			} {
				f.wantValue(t, name, labels{}, want)
			}
		})
	}
}

func TestWatchValidatorNilStopsWatching(t *testing.T) {
	t.Parallel()
	m := New(discardLogger())
	m.validator.watch(func() (validator.Stats, validator.Status) {
		return validator.Stats{Malformed: 1}, validator.Status{}
	}, time.Now)
	if f := scrape(t, m); f.series("tokenledger_validations_total") == 0 {
		t.Fatal("a watched validator exports no tokenledger_validations_total")
	}
	m.WatchValidator(nil)
	if f := scrape(t, m); f.series("tokenledger_validations_total") != 0 {
		t.Error("WatchValidator(nil): the validator is still exported")
	}
}
