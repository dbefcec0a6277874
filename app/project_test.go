package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/api"
	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/internal/testkit/storetest"
	"github.com/tokenledger/tokenledger/ledger"
)

func projectConfig(natsURL, postgresURL string) app.ProjectConfig {
	cfg := app.DefaultProjectConfig()
	cfg.NATSURL = natsURL
	cfg.PostgresURL = postgresURL
	cfg.HealthListen = "127.0.0.1:0"
	return cfg
}

// get fetches an endpoint and decodes its JSON body.
func get(t *testing.T, url string) (int, api.ProjectionHealthBody, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	var body api.ProjectionHealthBody
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("GET %s: body %q is not JSON: %v", url, raw, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: content type %q", url, ct)
	}
	return resp.StatusCode, body, string(raw)
}

// TestStartProject runs the projection workers as `tokenledger project`
// does: both projections follow their streams, /readyz answers 200 once
// both have caught up and 503 naming the event once either halts at a
// corrupt one, and stop ends it all.
func TestStartProject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := stacktest.NATS(t)
	store := storetest.Open(t, srv)
	_, url := stacktest.MigratedPool(t)
	events, _ := projectionstest.LifecycleHistory(41, 300)
	last, err := storetest.AppendAll(ctx, store, events[:300])
	if err != nil {
		t.Fatal(err)
	}

	tok, err := domain.ParseTokenID(events[0].AggregateID)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	used, err := store.AppendUsage(ctx, usedEvent(t, tok, 3, at), usedEvent(t, tok, 4, at.Add(time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	usageLast := used[1].Sequence

	cfg := projectConfig(srv.ClientURL(), url)
	cfg.ReadyMaxLag = 0
	cfg.UsageReadyMaxLag = 0
	p, stop, err := app.StartProject(ctx, cfg, discard)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = stop(context.Background())
		}
	})
	base := "http://" + p.HealthAddr().String()
	if code, _, raw := get(t, base+"/livez"); code != http.StatusOK || !strings.Contains(raw, `"ok"`) {
		t.Errorf("/livez: %d %s", code, raw)
	}
	stacktest.Eventually(t, time.Minute, func() bool {
		code, body, _ := get(t, base+"/readyz")
		return code == http.StatusOK && body.Ready && body.Checkpoint == last && body.LagEvents == 0 &&
			body.Usage != nil && body.Usage.Ready && body.Usage.Checkpoint == usageLast && body.Usage.LagEvents == 0
	}, "/readyz says ready at sequence %d and usage sequence %d", last, usageLast)
	if cp, err := p.Projections.Checkpoint(ctx, cfg.Lifecycle.Name); err != nil || cp != last {
		t.Fatalf("checkpoint %d (%v), want %d", cp, err, last)
	}
	if cp, err := p.Projections.Checkpoint(ctx, cfg.Usage.Name); err != nil || cp != usageLast {
		t.Fatalf("usage checkpoint %d (%v), want %d", cp, err, usageLast)
	}
	if u, err := p.Projections.GetUsage(ctx, tok); err != nil || u.Count != 7 || !u.LastAt.Equal(at.Add(time.Second)) {
		t.Fatalf("usage of %s: %+v (%v), want 7 uses, the last at %s", tok, u, err, at.Add(time.Second))
	}
	// Usage appended while running reaches token_usage too.
	if _, err := store.AppendUsage(ctx, usedEvent(t, tok, 5, at.Add(2*time.Second))); err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, time.Minute, func() bool {
		u, err := p.Projections.GetUsage(ctx, tok)
		return err == nil && u.Count == 12
	}, "12 uses of %s in token_usage", tok)

	// A message on a lifecycle subject that is not an event halts the
	// projector there.
	nc := stacktest.Conn(t, srv)
	id, err := domain.NewTokenID(time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := jetstreamPublish(ctx, nc, fmt.Sprintf("tl.token.%s.issued_v1", id), []byte("not an event"))
	if err != nil {
		t.Fatal(err)
	}
	var body api.ProjectionHealthBody
	stacktest.Eventually(t, time.Minute, func() bool {
		var code int
		code, body, _ = get(t, base+"/readyz")
		return code == http.StatusServiceUnavailable && body.Halted != nil
	}, "/readyz says the projector halted")
	switch {
	case body.Ready || body.Halted.Sequence != ack || body.Checkpoint != last || body.LagEvents != 1:
		t.Errorf("/readyz while halted: %+v, want halted at %d with checkpoint %d", body, ack, last)
	case !strings.Contains(body.Reason, "halted at sequence") || body.Halted.Subject == "" || body.Halted.Reason == "":
		t.Errorf("/readyz while halted does not say why: %+v", body)
	case body.Usage == nil || !body.Usage.Ready || body.Usage.Halted != nil:
		t.Errorf("/readyz while the lifecycle projector halted: usage %+v, want ready", body.Usage)
	}

	// A message on a usage subject that is not an event halts the usage
	// consumer there, and /readyz gives both reasons.
	usageAck, err := jetstreamPublish(ctx, nc, "tl.usage."+tok.String(), []byte("not an event"))
	if err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, time.Minute, func() bool {
		var code int
		code, body, _ = get(t, base+"/readyz")
		return code == http.StatusServiceUnavailable && body.Usage != nil && body.Usage.Halted != nil
	}, "/readyz says the usage consumer halted")
	switch u := body.Usage; {
	case u.Ready || u.Halted.Sequence != usageAck || u.Checkpoint != usageAck-1 || u.LagEvents != 1:
		t.Errorf("/readyz usage while halted: %+v, want halted at %d", u, usageAck)
	case !strings.Contains(u.Reason, "halted at sequence") || !strings.Contains(body.Reason, "; usage projection"):
		t.Errorf("/readyz while both halted does not say why: %+v", body)
	case body.Halted == nil:
		t.Errorf("/readyz lost the lifecycle halt: %+v", body)
	}

	stopped = true
	if err := stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := p.Err(); err != nil {
		t.Errorf("projector error after a clean stop: %v", err)
	}
	select {
	case <-p.Done():
	default:
		t.Error("Done is open after stop")
	}
	if resp, err := http.Get(base + "/livez"); err == nil {
		resp.Body.Close()
		t.Error("the health endpoint still answers after stop")
	}
}

// jetstreamPublish publishes raw data on a stream subject and returns its
// stream sequence.
func jetstreamPublish(ctx context.Context, nc *nats.Conn, subject string, data []byte) (uint64, error) {
	msg, err := nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return 0, err
	}
	var ack struct {
		Seq   uint64 `json:"seq"`
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &ack); err != nil {
		return 0, err
	}
	if ack.Error != nil {
		return 0, errors.New(ack.Error.Description)
	}
	return ack.Seq, nil
}

// usedEvent is a token.used event: count uses of id, the last at last.
func usedEvent(tb testing.TB, id domain.TokenID, count uint64, last time.Time) domain.Envelope {
	tb.Helper()
	eid, err := domain.NewEventID(last, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return domain.Envelope{
		ID: eid, Type: domain.TypeTokenUsed, AggregateKind: domain.AggregateToken, AggregateID: id.String(),
		Actor: "validator:test", Time: last, Schema: 1,
		Data: domain.TokenUsed{Count: count, FirstAt: last, LastAt: last, ClientAddr: "192.0.2.1"},
	}
}

// A worker that stops by itself (a stream deleted by an operator) closes
// Done, so that the process exits to be restarted, and stop reports why.
func TestStartProjectDoneWhenAWorkerStops(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		remove func(context.Context, *eventstore.Store, app.ProjectConfig) error
		want   string
	}{
		{"lifecycle stream deleted", func(ctx context.Context, s *eventstore.Store, c app.ProjectConfig) error {
			return deleteStream(ctx, s, c.Store.Stream)
		}, "lifecycle"},
		{"usage stream deleted", func(ctx context.Context, s *eventstore.Store, c app.ProjectConfig) error {
			return deleteStream(ctx, s, c.Store.UsageStream)
		}, "usage projection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			srv := stacktest.NATS(t)
			store := storetest.Open(t, srv)
			_, url := stacktest.MigratedPool(t)
			cfg := projectConfig(srv.ClientURL(), url)
			cfg.HealthListen = ""
			p, stop, err := app.StartProject(ctx, cfg, discard)
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			stopped := false
			t.Cleanup(func() {
				if !stopped {
					_ = stop(ctx)
				}
			})
			if p.HealthAddr() != nil {
				t.Errorf("health endpoint at %v although disabled", p.HealthAddr())
			}
			stacktest.Eventually(t, time.Minute, func() bool {
				return p.Projector.Ready(ctx, 0) == nil && p.Usage.Ready(ctx, 0) == nil
			}, "both workers consume")
			if err := tc.remove(ctx, store, cfg); err != nil {
				t.Fatalf("remove: %v", err)
			}
			select {
			case <-p.Done():
			case <-time.After(time.Minute):
				t.Fatal("Done not closed after a worker lost its source")
			}
			if p.Err() == nil || !strings.Contains(p.Err().Error(), tc.want) {
				t.Errorf("Err is %v after the worker stopped by itself, want it to name the %s", p.Err(), tc.want)
			}
			stopped = true
			if err := stop(ctx); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("stop returned %v, want the %s's error", err, tc.want)
			}
		})
	}
}

// StartProject refuses a database whose schema is not current, and says
// what to run.
func TestStartProjectNeedsTheSchema(t *testing.T) {
	t.Parallel()
	srv := stacktest.NATS(t)
	storetest.Open(t, srv)
	cfg := projectConfig(srv.ClientURL(), stacktest.PostgresURL(t))
	_, _, err := app.StartProject(context.Background(), cfg, discard)
	if !errors.Is(err, app.ErrSchemaOutdated) || !strings.Contains(err.Error(), "tokenledger migrate") {
		t.Fatalf("start on an empty database: %v, want ErrSchemaOutdated naming tokenledger migrate", err)
	}
}

func TestProjectConfigValidate(t *testing.T) {
	t.Parallel()
	valid := app.DefaultProjectConfig()
	valid.PostgresURL = "postgres://u:secret@127.0.0.1:5432/db"
	for _, tc := range []struct {
		name   string
		change func(*app.ProjectConfig)
		want   []string
	}{
		{"defaults with a database", func(*app.ProjectConfig) {}, nil},
		{"health endpoint off", func(c *app.ProjectConfig) { c.HealthListen = "" }, nil},
		{"every problem at once", func(c *app.ProjectConfig) {
			c.NATSURL = ""
			c.PostgresURL = "postgres://u:secret@h:port/db"
			c.PostgresMaxConns = 1
			c.Store.SubjectPrefix = ""
			c.Lifecycle.Name = "a.b"
			c.Lifecycle.RetryMax = time.Nanosecond
			c.HealthListen = "9091"
			c.Usage.BatchSize = consumers.MaxUsageBatchSize + 1
			c.Usage.MaxWait = -time.Millisecond
		}, []string{"nats url must be set", "postgres url", "max conns 1", "subject prefix", `name "a.b"`, "below retry initial", "health listen address",
			"usage consumer: batch size", "max wait -1ms"}},
		{"usage name is the lifecycle's", func(c *app.ProjectConfig) { c.Usage.Name = c.Lifecycle.Name }, []string{"checkpoints of their own"}},
		{"empty usage name", func(c *app.ProjectConfig) { c.Usage.Name = "" }, []string{"usage projection name must be set"}},
		{"usage rebuild checkpoint name", func(c *app.ProjectConfig) { c.Usage.Name = "usage_rebuild" }, []string{"usage projection name", "_rebuild"}},
		{"usage policy unset", func(c *app.ProjectConfig) { c.Usage.Policy = domain.Policy{} }, []string{"usage consumer: policy must be set"}},
		{"empty name", func(c *app.ProjectConfig) { c.Lifecycle.Name = "" }, []string{"projection name must be set"}},
		{"rebuild checkpoint name", func(c *app.ProjectConfig) { c.Lifecycle.Name = "x_rebuild" }, []string{"_rebuild"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := valid
			tc.change(&c)
			checkValidateError(t, c.Validate(), tc.want)
		})
	}
}

// The dev stack migrates its database and runs the lifecycle projector and
// the usage consumer: the bootstrap token and its uses reach the read
// model.
func TestDevProjectsTheLedger(t *testing.T) {
	dev, _ := startDev(t)
	if dev.Bootstrapped == nil {
		t.Fatal("no bootstrap token")
	}
	id := dev.Bootstrapped.Token.ID()
	stacktest.Eventually(t, time.Minute, func() bool {
		row, err := dev.Projections.Get(context.Background(), id)
		return err == nil && row.Owner == ledger.AdminOwner && row.Status == domain.StatusActive
	}, "the bootstrap token %s in the read model", id)
	if err := dev.Projector.Ready(context.Background(), 0); err != nil {
		t.Errorf("dev projector not ready: %v", err)
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	used, err := dev.Store.AppendUsage(context.Background(), usedEvent(t, id, 2, at))
	if err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, time.Minute, func() bool {
		u, err := dev.Projections.GetUsage(context.Background(), id)
		return err == nil && u.Count == 2 && u.LastAt.Equal(at)
	}, "2 uses of %s in token_usage", id)
	if err := dev.Usage.Ready(context.Background(), 0); err != nil {
		t.Errorf("dev usage consumer not ready: %v", err)
	}
	if st, err := dev.Usage.Progress(context.Background()); err != nil || st.Checkpoint != used[0].Sequence {
		t.Errorf("dev usage status %+v (%v), want checkpoint %d", st, err, used[0].Sequence)
	}
}

// deleteStream deletes the stream name under the store, as an operator
// could.
func deleteStream(ctx context.Context, s *eventstore.Store, name string) error {
	js, err := jetstream.New(s.Conn())
	if err != nil {
		return err
	}
	return js.DeleteStream(ctx, name)
}
