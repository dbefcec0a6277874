//go:build faults

// The fault tests on make cluster's topology run with -tags faults
// (make test-faults, after make test in .ci/run): each takes about a
// minute of processes being killed and restarted.

package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tokenledger/tokenledger/cluster"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/projectionstest"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
	"github.com/tokenledger/tokenledger/natsconn"
	"github.com/tokenledger/tokenledger/projections"
)

// The topology of make cluster, killed where it hurts most: under a
// steady issue load through both serve nodes, the stream leader's
// nats-server gets SIGKILL and comes back 20 s later. Every issue answers
// 201 (requests wait out the election within their 10 s deadline), every
// acknowledged token is in the stream and, once the projector caught up,
// in the read model, and the restarted server's replicas converge.
func TestClusterSurvivesTheStreamLeaderKilledUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := startCluster(ctx, t)
	if c.AdminToken == "" {
		t.Fatal("a fresh cluster printed no admin token")
	}

	nc, err := natsconn.Connect(strings.Join(c.NATSURLs, ","), c.Operator())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	streamInfo := func(name string) (*jetstream.StreamInfo, error) {
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		s, err := js.Stream(short, name)
		if err != nil {
			return nil, err
		}
		return s.Info(short)
	}
	info, err := streamInfo(eventstore.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("lifecycle stream: %d replicas, cluster %+v; want R3 with a leader", info.Config.Replicas, info.Cluster)
	}
	leader := slices.Index(c.NATSNames(), info.Cluster.Leader)

	load := startLoad(c.APIURLs, c.AdminToken, 100)
	load.waitAcked(t, 200) // steady load before the kill
	t.Logf("killing stream leader %s", info.Cluster.Leader)
	c.KillNATS(leader)
	time.Sleep(20 * time.Second) // the outage's length: part of the scenario
	if err := c.StartNATS(leader); err != nil {
		t.Fatalf("restart %s: %v", info.Cluster.Leader, err)
	}
	load.waitAcked(t, 200) // steady load after the restart
	acked, failures, maxLatency := load.stop()
	t.Logf("%d issues acknowledged, %d failed, max latency %s", len(acked), len(failures), maxLatency)
	if len(failures) > 0 {
		t.Errorf("%d client errors, first: %v", len(failures), failures[:min(5, len(failures))])
	}
	if len(acked) == 0 {
		t.Fatal("no issue was acknowledged")
	}

	// Replicas converged: every peer of both streams current, none behind.
	waitFor(t, time.Minute, "replicas converge", func() string {
		for _, name := range []string{eventstore.DefaultStream, eventstore.DefaultUsageStream} {
			info, err := streamInfo(name)
			if err != nil {
				return err.Error()
			}
			if len(info.Cluster.Replicas) != 2 {
				return fmt.Sprintf("%s: %d replicas besides the leader", name, len(info.Cluster.Replicas))
			}
			for _, r := range info.Cluster.Replicas {
				if !r.Current || r.Offline || r.Lag != 0 {
					return fmt.Sprintf("%s: replica %s current %v offline %v lag %d", name, r.Name, r.Current, r.Offline, r.Lag)
				}
			}
		}
		return ""
	})

	// Every acknowledged issue is in the stream.
	store, err := eventstore.OpenExisting(ctx, js, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	lost := 0
	for _, id := range acked {
		tid, err := domain.ParseTokenID(id)
		if err != nil {
			t.Fatal(err)
		}
		if events, err := store.LoadToken(ctx, tid); err != nil || len(events) == 0 {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged issues are not in the stream", lost, len(acked))
	}

	// And, once the projector caught up, in the read model.
	conn, err := pgx.Connect(ctx, c.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	ids := uuids(t, acked)
	waitFor(t, time.Minute, "every acknowledged issue is projected", func() string {
		var projected int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM tokens WHERE id::text = ANY($1)", ids).Scan(&projected); err != nil {
			return err.Error()
		}
		if projected != len(acked) {
			return fmt.Sprintf("%d of %d in the read model", projected, len(acked))
		}
		return ""
	})
}

// The topology of make cluster losing an API node and the leading
// projector at once, under a steady issue load through the other API node:
// that node keeps answering every request, the standby project process
// takes over, and the read model ends equal to the fold of the stream
// (every event applied exactly once).
func TestClusterSurvivesAnAPINodeAndTheLeadingProjectorKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := startCluster(ctx, t)
	role := func(url string) string {
		client := &http.Client{Timeout: time.Second}
		resp, err := client.Get(url + "/readyz")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		return resp.Header.Get("X-Tokenledger-Role")
	}
	if r1, r2 := role(c.ProjectHealthURLs[0]), role(c.ProjectHealthURLs[1]); r1 != "active" || r2 != "standby" {
		t.Fatalf("project-1 is %q and project-2 %q, want active and standby", r1, r2)
	}

	load := startLoad(c.APIURLs[:1], c.AdminToken, 100)
	load.waitAcked(t, 200) // steady load before the kill
	if !c.KillWorker("serve-2") || !c.KillWorker("project-1") {
		t.Fatal("serve-2 or project-1 was not running")
	}
	killed := time.Now()
	var takeover time.Duration
	waitFor(t, time.Minute, "project-2 leads", func() string {
		if r := role(c.ProjectHealthURLs[1]); r != "active" {
			return "project-2 is " + r
		}
		takeover = time.Since(killed)
		return ""
	})
	// How fast is make bench's to show (its takeover row); here it is
	// only reported.
	t.Logf("project-2 took over %v after project-1's SIGKILL", takeover.Round(time.Millisecond))
	load.waitAcked(t, 500) // steady load after the takeover
	acked, failures, maxLatency := load.stop()
	t.Logf("serve-1: %d issues acknowledged, %d failed, max latency %s", len(acked), len(failures), maxLatency)
	if len(failures) > 0 {
		t.Errorf("%d client errors on the surviving API node, first: %v", len(failures), failures[:min(5, len(failures))])
	}

	nc, err := natsconn.Connect(strings.Join(c.NATSURLs, ","), c.Operator())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := eventstore.OpenExisting(ctx, js, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var stream []domain.Envelope
	last, err := store.Read(ctx, 1, func(e domain.Envelope) error { stream = append(stream, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, c.PostgresURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	read := projections.New(pool)
	waitFor(t, time.Minute, "the projection reaches the stream's end", func() string {
		cp, err := read.Checkpoint(ctx, projections.LifecycleName)
		if err != nil {
			return err.Error()
		}
		if cp != last {
			return fmt.Sprintf("checkpoint %d, stream ends at %d", cp, last)
		}
		return ""
	})
	// The lifecycle columns equal the fold of the lifecycle stream; the
	// usage columns come from the usage stream and are left out.
	got, err := projectionstest.Read(ctx, read, projections.LifecycleName)
	if err != nil {
		t.Fatal(err)
	}
	for id, row := range got.Tokens {
		row.LastUsedAt, row.UseCount = time.Time{}, 0
		got.Tokens[id] = row
	}
	if diffs := projectionstest.CompareState(projectionstest.Fold(stream), got, time.Time{}); len(diffs) > 0 {
		t.Fatalf("the read model differs from the fold of the stream: %d differences, first: %s", len(diffs), diffs[0])
	}
}

// startCluster starts make cluster's topology for t and stops it at the
// end.
func startCluster(ctx context.Context, t *testing.T) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Start(ctx, cluster.Config{
		Dir:         stacktest.TraversableDir(t),
		Tokenledger: stacktest.TokenledgerBinary(t),
		NATSServer:  stacktest.NATSServerBinary(t),
		Store:       eventstore.DefaultConfig(),
	})
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	return c
}

// waitFor polls check until it returns "" or timeout passes, then fails
// the test with what check said last.
func waitFor(t *testing.T, timeout time.Duration, what string, check func() string) {
	t.Helper()
	var problem string
	stacktest.Eventually(t, timeout, func() bool { problem = check(); return problem == "" },
		"%s: %v", what, stacktest.Lazy(func() string { return problem }))
}

// uuids turns ULID strings into the uuid text form of the read model.
func uuids(t *testing.T, ids []string) []string {
	out := make([]string, len(ids))
	for i, s := range ids {
		id, err := domain.ParseTokenID(s)
		if err != nil {
			t.Fatal(err)
		}
		b := id[:]
		out[i] = fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	}
	return out
}

// load issues tokens at a steady rate, each for an owner of its own,
// alternating between the API nodes.
type load struct {
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	mu         sync.Mutex
	acked      []string
	failures   []string
	maxLatency time.Duration
}

func startLoad(apis []string, admin string, perSecond int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel}
	client := &http.Client{Timeout: 30 * time.Second}
	l.wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l.wg.Go(func() { l.issue(client, apis[n%len(apis)], admin, n) })
		}
	})
	return l
}

func (l *load) issue(client *http.Client, api, admin string, n int) {
	body, _ := json.Marshal(map[string]any{"owner": fmt.Sprintf("load-%d", n), "name": "load", "expires_in": "1h"})
	req, _ := http.NewRequest(http.MethodPost, api+"/v1/tokens", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := client.Do(req)
	took := time.Since(start)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maxLatency = max(l.maxLatency, took)
	if err != nil {
		l.failures = append(l.failures, err.Error())
		return
	}
	defer resp.Body.Close()
	var out struct {
		ID    string `json:"id"`
		Error any    `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusCreated {
		l.failures = append(l.failures, fmt.Sprintf("%s: %d %v after %s", api, resp.StatusCode, out.Error, took))
		return
	}
	l.acked = append(l.acked, out.ID)
}

// waitAcked waits until n more issues than now are acknowledged.
func (l *load) waitAcked(t *testing.T, n int) {
	t.Helper()
	acked := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.acked)
	}
	want := acked() + n
	waitFor(t, 2*time.Minute, fmt.Sprintf("%d issues acknowledged", want), func() string {
		if k := acked(); k < want {
			return fmt.Sprintf("%d acknowledged", k)
		}
		return ""
	})
}

// stop ends the load, waits for the requests in flight and returns the
// acknowledged token ids, the failures and the longest request.
func (l *load) stop() ([]string, []string, time.Duration) {
	l.cancel()
	l.wg.Wait()
	return l.acked, l.failures, l.maxLatency
}
