package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tokenledger/tokenledger/app"
	"github.com/tokenledger/tokenledger/consumers"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/stacktest"
)

func projectConfig(natsURL, postgresURL string) app.ProjectConfig {
	cfg := app.DefaultProjectConfig()
	cfg.NATSURL = natsURL
	cfg.PostgresURL = postgresURL
	cfg.HealthListen = "127.0.0.1:0"
	return cfg
}

// get fetches an endpoint and decodes its JSON body.
func get(t *testing.T, url string) (int, app.HealthStatus, string) {
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
	var body app.HealthStatus
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("GET %s: body %q is not JSON: %v", url, raw, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: content type %q", url, ct)
	}
	return resp.StatusCode, body, string(raw)
}

// TestStartProject runs the projection workers as `tokenledger project`
// does: the projection follows the stream, /readyz answers 200 once it has
// caught up and 503 naming the event once the projector halts at a corrupt
// one, and stop ends it all.
func TestStartProject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := stacktest.NATS(t)
	store := openStore(t, srv)
	_, url := migratedPool(t)
	events, _ := lifecycleHistory(41, 300)
	last, err := appendAll(ctx, store, events[:300])
	if err != nil {
		t.Fatal(err)
	}

	cfg := projectConfig(srv.ClientURL(), url)
	cfg.ReadyMaxLag = 0
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
		return code == http.StatusOK && body.Ready && body.Checkpoint == last && body.LagEvents == 0
	}, "/readyz says ready at sequence %d", last)
	if cp, err := p.Projections.Checkpoint(ctx, cfg.Lifecycle.Name); err != nil || cp != last {
		t.Fatalf("checkpoint %d (%v), want %d", cp, err, last)
	}

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
	var body app.HealthStatus
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

// A projector that stops by itself (its durable consumer deleted by an
// operator) closes Done, so that the process exits to be restarted, and
// stop reports why.
func TestStartProjectDoneWhenTheProjectorStops(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := stacktest.NATS(t)
	store := openStore(t, srv)
	_, url := migratedPool(t)
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
	stacktest.Eventually(t, time.Minute, func() bool { return p.Projector.Ready(ctx, 0) == nil }, "the projector consumes")
	if err := store.JetStream().DeleteConsumer(ctx, cfg.Store.Stream, cfg.Lifecycle.Name); err != nil {
		t.Fatalf("delete the durable consumer: %v", err)
	}
	select {
	case <-p.Done():
	case <-time.After(time.Minute):
		t.Fatal("Done not closed after the durable consumer was deleted")
	}
	if p.Err() == nil {
		t.Error("Err is nil after the projector stopped by itself")
	}
	stopped = true
	if err := stop(ctx); err == nil || !errors.Is(err, p.Err()) {
		t.Errorf("stop returned %v, want the projector's error %v", err, p.Err())
	}
}

// StartProject refuses a database whose schema is not current, and says
// what to run.
func TestStartProjectNeedsTheSchema(t *testing.T) {
	t.Parallel()
	srv := stacktest.NATS(t)
	cfg := projectConfig(srv.ClientURL(), stacktest.PostgresURL(t))
	_, _, err := app.StartProject(context.Background(), cfg, discard)
	if !errors.Is(err, app.ErrSchemaOutdated) || !strings.Contains(err.Error(), "tokenledger migrate") {
		t.Fatalf("start on an empty database: %v, want ErrSchemaOutdated naming tokenledger migrate", err)
	}
}

// stubReadiness answers the health handler with fixed values; when
// readyErrs is set, Ready answers them in turn.
type stubReadiness struct {
	status    consumers.Status
	statusErr error
	readyErr  error
	readyErrs []error
}

func (s *stubReadiness) Status(context.Context) (consumers.Status, error) {
	return s.status, s.statusErr
}

func (s *stubReadiness) Ready(context.Context, uint64) error {
	if len(s.readyErrs) > 0 {
		err := s.readyErrs[0]
		s.readyErrs = s.readyErrs[1:]
		return err
	}
	return s.readyErr
}

func TestHealthHandler(t *testing.T) {
	t.Parallel()
	since := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		stub     *stubReadiness
		path     string
		code     int
		contains []string
	}{
		{"live whatever the projector says", &stubReadiness{readyErr: consumers.ErrNotRunning, statusErr: errors.New("down")},
			"/livez", 200, []string{`"status":"ok"`}},
		{"ready", &stubReadiness{status: consumers.Status{Name: "lifecycle", Checkpoint: 7, StreamLast: 7}},
			"/readyz", 200, []string{`"ready":true`, `"checkpoint":7`, `"stream_last":7`, `"lag_events":0`, `"max_lag_events":5`}},
		{"lagging", &stubReadiness{
			status:   consumers.Status{Name: "lifecycle", Checkpoint: 3, StreamLast: 10, LagEvents: 7, LagSeconds: 1.5},
			readyErr: fmt.Errorf("%w: 7 events behind", consumers.ErrLagging),
		}, "/readyz", 503, []string{`"ready":false`, `"reason":"projection lagging: 7 events behind"`, `"lag_events":7`, `"lag_seconds":1.5`}},
		{"halted between the readiness check and the status", &stubReadiness{
			status: consumers.Status{Name: "lifecycle", Checkpoint: 3, StreamLast: 4, LagEvents: 1,
				Halted: &consumers.Halt{Sequence: 4, Subject: "tl.token.X.issued_v1", Reason: "corrupt", Since: since}},
			readyErrs: []error{fmt.Errorf("%w: 1 events behind", consumers.ErrLagging), fmt.Errorf("%w at sequence 4", consumers.ErrHalted)},
		}, "/readyz", 503, []string{`"reason":"projection halted at sequence 4"`, `"halted":{"sequence":4`}},
		{"halted", &stubReadiness{
			status: consumers.Status{Name: "lifecycle", Checkpoint: 3, StreamLast: 4, LagEvents: 1,
				Halted: &consumers.Halt{Sequence: 4, Subject: "tl.token.X.issued_v1", Reason: "corrupt", Since: since}},
			readyErr: fmt.Errorf("%w at sequence 4", consumers.ErrHalted),
		}, "/readyz", 503, []string{`"halted":{"sequence":4,"subject":"tl.token.X.issued_v1","reason":"corrupt","since":"2030-01-01T00:00:00Z"}`}},
		{"status unreadable", &stubReadiness{statusErr: errors.New("stream unreachable")},
			"/readyz", 503, []string{`"ready":false`, `"reason":"stream unreachable"`}},
		{"not running", &stubReadiness{readyErr: consumers.ErrNotRunning, status: consumers.Status{Name: "lifecycle"}},
			"/readyz", 503, []string{`"reason":"projector not running"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			app.HealthHandler(tc.stub, 5).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if rec.Code != tc.code {
				t.Errorf("status %d, want %d; body %s", rec.Code, tc.code, rec.Body)
			}
			for _, want := range tc.contains {
				if !strings.Contains(rec.Body.String(), want) {
					t.Errorf("body %s lacks %s", rec.Body, want)
				}
			}
		})
	}
	rec := httptest.NewRecorder()
	app.HealthHandler(&stubReadiness{}, 0).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/readyz", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz: %d, want 405", rec.Code)
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
			c.Lifecycle.AckWait = time.Second
			c.HealthListen = "9091"
		}, []string{"nats url must be set", "postgres url", "max conns 1", "subject prefix", `name "a.b"`, "ack wait", "health listen address"}},
		{"empty name", func(c *app.ProjectConfig) { c.Lifecycle.Name = "" }, []string{"projection name must be set"}},
		{"rebuild checkpoint name", func(c *app.ProjectConfig) { c.Lifecycle.Name = "x_rebuild" }, []string{"_rebuild"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := valid
			tc.change(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted an invalid configuration")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// The dev stack migrates its database and runs the lifecycle projector:
// the bootstrap token reaches the read model.
func TestDevProjectsTheLedger(t *testing.T) {
	dev, _ := startDev(t)
	if dev.Bootstrapped == nil {
		t.Fatal("no bootstrap token")
	}
	id := dev.Bootstrapped.Token.ID()
	stacktest.Eventually(t, time.Minute, func() bool {
		row, err := dev.Projections.Get(context.Background(), id)
		return err == nil && row.Owner == app.AdminOwner && row.Status == domain.StatusActive
	}, "the bootstrap token %s in the read model", id)
	if err := dev.Projector.Ready(context.Background(), 0); err != nil {
		t.Errorf("dev projector not ready: %v", err)
	}
}
