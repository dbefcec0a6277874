package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/internal/testkit/storetest"
	"github.com/tokenledger/tokenledger/projections"
)

var rebuildSummary = regexp.MustCompile(`^rebuilt from ([\d,]+) events in [\d.]+ s: [\d,]+ events/s \(([\d,]+) tokens, [\d,]+ owner revocations; projection "lifecycle" at sequence (\d+)\)\n$`)

// `tokenledger rebuild` rebuilds the read model while `tokenledger project`
// runs and events are appended, reports its progress on stderr and its
// summary on stdout; the projector then carries on with the swapped-in
// tables, which hold exactly the fold of the stream.
func TestRebuildCommandWithProjectRunning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestStack(t)
	events := lifecycleHistory(61, 3000)
	if _, err := storetest.AppendAll(ctx, s.store, events[:2000]); err != nil {
		t.Fatal(err)
	}
	project := startBinary(t, s.env(), "project", "--health-listen", "off")
	appended := make(chan error, 1)
	go func() {
		_, err := storetest.AppendAll(ctx, s.store, events[2000:3000])
		appended <- err
	}()

	r := runBinary(t, s.env(), "rebuild", "--progress", "lines", "--catch-up-batch", "100", "--usage")
	if r.code != 0 {
		t.Fatalf("rebuild: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	m := rebuildSummary.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("rebuild summary %q does not match %s", r.stdout, rebuildSummary)
	}
	if n, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", "")); n < 2000 {
		t.Errorf("rebuilt from %d events, want at least the 2000 appended before", n)
	}
	for _, want := range []string{`msg="rebuild: stream folded"`, `msg="rebuild: swapped in"`, `msg="usage rollups rebuilt"`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %s:\n%s", want, r.stderr)
		}
	}
	if strings.ContainsAny(r.stderr, "\r\x1b") {
		t.Errorf("--progress lines wrote terminal control characters:\n%q", r.stderr)
	}

	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	last := s.streamLast(t)
	stacktest.Eventually(t, time.Minute, func() bool {
		if !project.running() {
			t.Fatalf("tokenledger project exited (%v); stderr:\n%s", project.waitErr, project.stderr.String())
		}
		return s.checkpoint(t) == last
	}, "the projector applies the stream up to %d after the rebuild", last)
	project.stop(t)
	projectionstest.RequireMatchesState(t, projections.New(s.pool), "lifecycle", projectionstest.Fold(storetest.ReadAll(t, s.store)), last, time.Time{})
}

func TestRebuildCommandRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad progress mode", []string{"rebuild", "--postgres-url", "postgres://127.0.0.1/db", "--progress", "fancy"}, `--progress "fancy"`},
		{"every configuration problem at once", []string{"rebuild", "--nats-url", "http://x", "--catch-up-batch", "0", "--name", ""},
			"nats url"},
		{"under its former name, replay", []string{"replay", "--postgres-url", "postgres://127.0.0.1/db", "--progress", "fancy"}, `--progress "fancy"`},
		{"nats unreachable", []string{"rebuild", "--nats-url", "nats://127.0.0.1:1", "--postgres-url", "postgres://127.0.0.1/db"}, "connect to nats"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runBinary(t, nil, tc.args...)
			msg := strings.TrimSuffix(r.stderr, "\n")
			if r.code == 0 || r.stdout != "" {
				t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
			}
			if strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) {
				t.Errorf("stderr is not one line saying %q:\n%s", tc.want, r.stderr)
			}
		})
	}
}
