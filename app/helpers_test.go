package app_test

import (
	"io"
	"log/slog"
	"strings"
	"testing"
)

// discard is a logger that drops everything.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// checkValidateError checks a config's Validate result: nil when want is
// empty, otherwise an error mentioning every string of want, and never the
// password of a URL ("secret" in the tests' URLs).
func checkValidateError(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatal("Validate accepted an invalid configuration")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q shows the password", err)
	}
}
