package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

// serve and project open the streams as they are: against streams that do
// not exist they fail with one line saying what to run and create nothing;
// against streams whose settings differ from their flags (another usage
// retention) they run and change nothing. Only `streams init` creates or
// changes streams.
func TestWorkersNeverCreateOrChangeStreams(t *testing.T) {
	srv := stacktest.NATS(t)
	pgURL := stacktest.PostgresURL(t)
	if r := runBinary(t, nil, "migrate", "--postgres-url", pgURL); r.code != 0 {
		t.Fatalf("migrate: exit %d: %s", r.code, r.stderr)
	}
	js, err := jetstream.New(stacktest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	streamNames := func() []string {
		var names []string
		l := js.StreamNames(ctx)
		for n := range l.Name() {
			names = append(names, n)
		}
		if err := l.Err(); err != nil {
			t.Fatalf("stream names: %v", err)
		}
		return names
	}
	env := []string{"TOKENLEDGER_NATS_URL=" + srv.ClientURL(), "TOKENLEDGER_POSTGRES_URL=" + pgURL}
	workers := [][]string{
		{"serve", "--http-addr", "127.0.0.1:0"},
		{"project", "--health-listen", "off"},
	}

	for _, args := range workers {
		r := runBinary(t, env, args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		last := lines[len(lines)-1]
		if r.code == 0 || !strings.Contains(last, "does not exist") || !strings.Contains(last, "tokenledger streams init") {
			t.Errorf("%s without streams: exit %d, last line %q; want a failure naming the missing stream and `tokenledger streams init`", args[0], r.code, last)
		}
		if names := streamNames(); len(names) != 0 {
			t.Fatalf("%s without streams created %v", args[0], names)
		}
	}

	// Set-up with a usage retention other than the workers' default.
	r := runBinary(t, env, "streams", "init", "--usage-max-age", "48h")
	if r.code != 0 || !strings.Contains(r.stdout, "ready") {
		t.Fatalf("streams init: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	configs := func() map[string]jetstream.StreamConfig {
		out := map[string]jetstream.StreamConfig{}
		for _, name := range []string{eventstore.DefaultStream, eventstore.DefaultUsageStream} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatalf("stream %s: %v", name, err)
			}
			out[name] = s.CachedInfo().Config
		}
		return out
	}
	before := configs()
	if got := before[eventstore.DefaultUsageStream].MaxAge; got != 48*time.Hour {
		t.Fatalf("usage retention after streams init: %v, want 48h", got)
	}

	for _, args := range workers {
		p := startBinary(t, env, args...)
		// Running means connected and past opening the store: serve
		// prints its URL, project logs that it projects.
		want := map[string]string{"serve": "listening on", "project": "projecting"}[args[0]]
		stacktest.Eventually(t, time.Minute, func() bool {
			if strings.Contains(p.stdout.String()+p.stderr.String(), want) {
				return true
			}
			if !p.running() {
				t.Fatalf("%s against existing streams exited (%v): %s %s", args[0], p.waitErr, p.stdout.String(), p.stderr.String())
			}
			return false
		}, "%s against existing streams starts: %v", args[0], stacktest.Lazy(func() string { return p.stdout.String() + p.stderr.String() }))
		p.kill(t)
	}
	after := configs()
	for name, b := range before {
		a := after[name]
		if a.MaxAge != b.MaxAge || a.Replicas != b.Replicas || a.Duplicates != b.Duplicates || a.Description != b.Description {
			t.Errorf("stream %s changed: %+v, was %+v", name, a, b)
		}
	}
}
