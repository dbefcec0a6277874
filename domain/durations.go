package domain

import (
	"encoding/json"
	"fmt"
	"time"
)

// Seconds is a duration stored as a whole number of seconds, the form used
// in events and in the API.
type Seconds int64

// SecondsOf converts d, truncating to whole seconds.
func SecondsOf(d time.Duration) Seconds { return Seconds(d / time.Second) }

// Duration converts s back to a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(s) * time.Second }

// UnmarshalJSON accepts only a non-negative whole number.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("seconds: %w", err)
	}
	if n < 0 {
		return fmt.Errorf("seconds: %d is negative", n)
	}
	*s = Seconds(n)
	return nil
}
