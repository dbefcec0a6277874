package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenledger/tokenledger/cluster"
	"github.com/tokenledger/tokenledger/domain"
	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/natsconn"
	"github.com/tokenledger/tokenledger/projections"
)

// workerRestart is one SIGKILL of the active `project` process under
// load, and what followed. Times are in seconds.
type workerRestart struct {
	// Progress is the time from the restart (the new process started)
	// or, for a takeover, from the kill, until the lifecycle checkpoint
	// moved again.
	Progress float64
}

// electionRun is one SIGKILL of the lifecycle stream's leader under a
// steady issue load.
type electionRun struct {
	// Rate is the issues per second started.
	Rate float64
	// Election is the time from the kill until the stream reported a new
	// leader, in seconds.
	Election float64
	// Requests, Errors and Slow (over 1 s) count the issue calls of the
	// whole run; MaxLatency is the longest, in microseconds; FirstErrors
	// quotes a few failures.
	Requests, Errors, Slow int
	MaxLatency             float64
	P99                    float64
	FirstErrors            []string
}

// clusterParams are the cluster scenarios' sizes.
type clusterParams struct {
	loadRate      int           // issues per second during kills
	restarts      int           // SIGKILL and restart of project
	takeovers     int           // SIGKILL of the active project with a standby
	electionLead  time.Duration // steady load before the leader's kill
	electionAfter time.Duration // load after the kill, before the restart
}

// clusterScenarios starts make cluster's topology (3 nats-servers with R3
// streams, PostgreSQL, serve and project processes) under the work
// directory and measures on it: revocation across three serve nodes, a
// SIGKILLed projector's restart, the standby's takeover, and the stream
// leader's election under load.
func (b *bench) clusterScenarios(ctx context.Context) error {
	if _, err := os.Stat(b.cfg.natsServer); err != nil {
		b.res.ClusterMissing = fmt.Sprintf("no nats-server binary at %s (make nats-server)", b.cfg.natsServer)
		logf("cluster: not measured: %s", b.res.ClusterMissing)
		return nil
	}
	dir := filepath.Join(b.work, "cluster")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logf("starting the 3-node cluster (tokenledger cluster's topology) in %s", dir)
	c, err := cluster.Start(ctx, cluster.Config{
		Dir: dir, Tokenledger: b.cfg.tokenledger, NATSServer: b.cfg.natsServer,
		Ports: cluster.Ports{}, Store: eventstore.DefaultConfig(),
	})
	if err != nil {
		return fmt.Errorf("start the cluster: %w (logs in %s)", err, filepath.Join(dir, "logs"))
	}
	defer func() {
		if err := c.Stop(context.WithoutCancel(ctx)); err != nil {
			logf("stop the cluster: %v", err)
		}
	}()
	pool, err := pgxpool.New(ctx, c.PostgresURL)
	if err != nil {
		return fmt.Errorf("connect to the cluster's PostgreSQL: %w", err)
	}
	defer pool.Close()

	// Revocation across three serve nodes on the R3 cluster.
	third, err := c.StartServe(ctx, "serve-3")
	if err != nil {
		return fmt.Errorf("a third serve node: %w", err)
	}
	nodes := append(slices.Clone(c.APIURLs[:2]), third)
	logf("cluster revocation: 3 serve nodes %v, %d run(s) of %d revocations", nodes, b.cfg.runs, b.cfg.revocations)
	if b.res.ClusterRevocation, err = revokeRounds(ctx, nodes, c.AdminToken, b.cfg.runs, b.cfg.revocations); err != nil {
		return fmt.Errorf("cluster revocation: %w", err)
	}

	// The projector killed under load: restarted alone, then taken over
	// by a standby.
	p := b.cfg.cluster
	load := startIssueLoad(ctx, c.APIURLs[:2], c.AdminToken, p.loadRate, "worker")
	restarts, takeovers, err := killProjectors(ctx, c, pool, p.restarts, p.takeovers)
	if res := load.stop(); res.Errors > 0 {
		logf("worker restarts: %d of %d issues failed meanwhile, the first: %s", res.Errors, res.Requests, strings.Join(res.FirstErrors, "; "))
	}
	if err != nil {
		return err
	}
	b.res.Restarts, b.res.Takeovers = restarts, takeovers

	// The stream leader killed under load.
	e, err := b.electionWindow(ctx, c)
	if err != nil {
		return fmt.Errorf("election window: %w", err)
	}
	b.res.Election = append(b.res.Election, e)
	return nil
}

// readCheckpoint reads the lifecycle projection's checkpoint.
func readCheckpoint(ctx context.Context, pool *pgxpool.Pool) (uint64, error) {
	var seq int64
	err := pool.QueryRow(ctx, `/* `+snapshotTag+` */ SELECT coalesce(max(last_seq), 0) FROM projection_checkpoints WHERE name = $1`,
		projections.LifecycleName).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("read the lifecycle checkpoint: %w", err)
	}
	return uint64(seq), nil
}

// waitProgress polls the lifecycle checkpoint every 5 ms until it is
// above from, and returns when it saw that.
func waitProgress(ctx context.Context, pool *pgxpool.Pool, from uint64, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		cp, err := readCheckpoint(ctx, pool)
		if err == nil && cp > from {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("the lifecycle checkpoint stayed at %d for %s", from, timeout)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

// killProjectors measures the projector's recovery under the load
// running, on `project` processes of its own (the cluster's are killed
// first): restarts times it kills the only one with SIGKILL, starts it
// again and measures from the restart to the checkpoint's next move; then
// it starts a standby and, takeovers times, kills whichever process is
// active and measures from the kill to the checkpoint's next move (the
// standby's first batch), restarting the killed one as the next standby.
func killProjectors(ctx context.Context, c *cluster.Cluster, pool *pgxpool.Pool, restarts, takeovers int) ([]workerRestart, []workerRestart, error) {
	// The bench runs project processes of its own, so that it knows
	// which is which: the cluster's own are killed first.
	for _, name := range []string{"project-1", "project-2"} {
		c.KillWorker(name)
	}
	const first, second = "bench-project-a", "bench-project-b"
	health := map[string]string{}
	var err error
	if health[first], err = c.StartProject(ctx, first); err != nil {
		return nil, nil, fmt.Errorf("project: %w", err)
	}
	var rs, ts []workerRestart
	for i := range restarts {
		if _, err := waitProgress(ctx, pool, mustCheckpoint(ctx, pool), 30*time.Second); err != nil {
			return nil, nil, fmt.Errorf("before restart %d: %w", i+1, err)
		}
		if !c.KillWorker(first) {
			return nil, nil, fmt.Errorf("restart %d: %s is not running", i+1, first)
		}
		cp, err := settledCheckpoint(ctx, pool)
		if err != nil {
			return nil, nil, err
		}
		restarted := time.Now()
		progressed := make(chan error, 1)
		var at time.Time
		go func() {
			var err error
			at, err = waitProgress(ctx, pool, cp, time.Minute)
			progressed <- err
		}()
		if health[first], err = c.StartProject(ctx, first); err != nil {
			return nil, nil, fmt.Errorf("restart project: %w", err)
		}
		if err := <-progressed; err != nil {
			return nil, nil, fmt.Errorf("after restart %d: %w", i+1, err)
		}
		rs = append(rs, workerRestart{Progress: at.Sub(restarted).Seconds()})
		logf("project SIGKILLed and restarted (%d): progress %.3f s after the restart", i+1, at.Sub(restarted).Seconds())
	}
	if takeovers == 0 {
		return rs, ts, nil
	}
	if health[second], err = c.StartProject(ctx, second); err != nil {
		return nil, nil, fmt.Errorf("standby project: %w", err)
	}
	for i := range takeovers {
		active := ""
		for name, u := range health {
			if role, _ := projectRole(ctx, u); role == "active" {
				active = name
			}
		}
		if active == "" {
			return nil, nil, fmt.Errorf("takeover %d: no project process says it is active", i+1)
		}
		if _, err := waitProgress(ctx, pool, mustCheckpoint(ctx, pool), 30*time.Second); err != nil {
			return nil, nil, fmt.Errorf("before takeover %d: %w", i+1, err)
		}
		if !c.KillWorker(active) {
			return nil, nil, fmt.Errorf("takeover %d: %s is not running", i+1, active)
		}
		killed := time.Now()
		cp, err := settledCheckpoint(ctx, pool)
		if err != nil {
			return nil, nil, err
		}
		at, err := waitProgress(ctx, pool, cp, time.Minute)
		if err != nil {
			return nil, nil, fmt.Errorf("takeover %d: %w", i+1, err)
		}
		ts = append(ts, workerRestart{Progress: at.Sub(killed).Seconds()})
		logf("active project (%s) SIGKILLed (%d): the standby progressed %.3f s after the kill", active, i+1, at.Sub(killed).Seconds())
		if health[active], err = c.StartProject(ctx, active); err != nil {
			return nil, nil, fmt.Errorf("restart %s as the standby: %w", active, err)
		}
	}
	return rs, ts, nil
}

// settledCheckpoint reads the checkpoint once a killed projector's last
// commit, which PostgreSQL may still be finishing when the process is
// gone, has landed: it must not count as the next process's progress. No
// successor can commit that soon (a standby asks for the leadership every
// 250 ms; a restarted process has to start first).
func settledCheckpoint(ctx context.Context, pool *pgxpool.Pool) (uint64, error) {
	if err := sleep(ctx, 20*time.Millisecond); err != nil {
		return 0, err
	}
	return readCheckpoint(ctx, pool)
}

func mustCheckpoint(ctx context.Context, pool *pgxpool.Pool) uint64 {
	cp, _ := readCheckpoint(ctx, pool)
	return cp
}

// projectRole asks a project process's /readyz which role it has.
func projectRole(ctx context.Context, base string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return "", err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return resp.Header.Get("X-Tokenledger-Role"), nil
}

// electionWindow kills the lifecycle stream's leader with SIGKILL under a
// steady issue load through both serve nodes, notes when the stream has a
// new leader, restarts the killed server after a while, and reports what
// the clients saw.
func (b *bench) electionWindow(ctx context.Context, c *cluster.Cluster) (electionRun, error) {
	p := b.cfg.cluster
	leaderOf, closeAll, err := streamLeader(ctx, c.NATSURLs, c)
	if err != nil {
		return electionRun{}, err
	}
	old := leaderOf()
	closeAll()
	idx := slices.Index(c.NATSNames(), old)
	if idx < 0 {
		return electionRun{}, fmt.Errorf("no leader of the lifecycle stream (%q)", old)
	}
	// Watch the election from the servers that stay up, so that the
	// watcher's own reconnection does not delay what it sees.
	var others []string
	for i, u := range c.NATSURLs {
		if i != idx {
			others = append(others, u)
		}
	}
	if leaderOf, closeAll, err = streamLeader(ctx, others, c); err != nil {
		return electionRun{}, err
	}
	defer closeAll()
	logf("election window: %d issues/s through 2 serve nodes; SIGKILL of the stream leader %s after %s, restart %s later",
		p.loadRate, old, p.electionLead, p.electionAfter)
	load := startIssueLoad(ctx, c.APIURLs[:2], c.AdminToken, p.loadRate, "election")
	if err := sleep(ctx, p.electionLead); err != nil {
		load.stop()
		return electionRun{}, err
	}
	killed := time.Now()
	c.KillNATS(idx)
	var election time.Duration
	for time.Since(killed) < p.electionAfter {
		if l := leaderOf(); election == 0 && l != "" && l != old {
			election = time.Since(killed)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			load.stop()
			return electionRun{}, err
		}
	}
	if err := c.StartNATS(idx); err != nil {
		load.stop()
		return electionRun{}, fmt.Errorf("restart %s: %w", old, err)
	}
	_ = sleep(ctx, 2*time.Second)
	res := load.stop()
	res.Election = election.Seconds()
	logf("election window: new leader after %.2f s; %d issues, %d errors, %d over 1 s, max %s",
		res.Election, res.Requests, res.Errors, res.Slow, fmtUS(res.MaxLatency))
	return res, ctx.Err()
}

// streamLeader connects to urls as the cluster's operator and returns a
// function naming the lifecycle stream's leader ("" when none answers),
// and one that closes the connection.
func streamLeader(ctx context.Context, urls []string, c *cluster.Cluster) (func() string, func(), error) {
	nc, err := natsconn.Connect(strings.Join(urls, ","), c.Operator())
	if err != nil {
		return nil, nil, err
	}
	store, err := eventstore.OpenExisting(ctx, nc, domain.NewDefaultRegistry(), eventstore.DefaultConfig())
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return func() string {
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		leader, err := store.Leader(short, eventstore.Lifecycle)
		if err != nil {
			return ""
		}
		return leader
	}, func() { _ = store.Close(); nc.Close() }, nil
}

// issueLoad issues tokens at a steady rate, open loop, alternating
// between API nodes, each request timed from its scheduled instant.
type issueLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	start  time.Time

	mu      sync.Mutex
	started int
	lat     []float64
	errs    []string
}

func startIssueLoad(ctx context.Context, nodes []string, admin string, rate int, tag string) *issueLoad {
	ctx, cancel := context.WithCancel(ctx)
	l := &issueLoad{cancel: cancel, start: time.Now()}
	interval := time.Second / time.Duration(rate)
	l.wg.Go(func() {
		for i := 0; ; i++ {
			sched := l.start.Add(time.Duration(i) * interval)
			if wait := time.Until(sched); wait > 0 {
				if sleep(ctx, wait) != nil {
					return
				}
			}
			l.mu.Lock()
			l.started++
			l.mu.Unlock()
			node := nodes[i%len(nodes)]
			body := fmt.Appendf(nil, `{"owner":"%s-%d","name":"load","scopes":["read"],"expires_in":"1h"}`, tag, i%100)
			l.wg.Go(func() {
				err := issueWithin(node, admin, body)
				took := float64(time.Since(sched).Microseconds())
				l.mu.Lock()
				defer l.mu.Unlock()
				l.lat = append(l.lat, took)
				if err != nil {
					l.errs = append(l.errs, err.Error())
				}
			})
		}
	})
	return l
}

// issueWithin makes one issue call with a client deadline of 15 s, past
// any election: a request that hangs longer counts as an error.
func issueWithin(node, admin string, body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, node+"/v1/tokens", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("%s: %s: %s", node, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// stop ends the load, waits for the calls in flight and summarises them.
func (l *issueLoad) stop() electionRun {
	l.cancel()
	elapsed := time.Since(l.start)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.lat)
	r := electionRun{Rate: float64(l.started) / elapsed.Seconds(), Requests: len(l.lat), Errors: len(l.errs)}
	for _, v := range l.lat {
		if v > 1e6 {
			r.Slow++
		}
	}
	if len(l.lat) > 0 {
		r.MaxLatency = l.lat[len(l.lat)-1]
		r.P99 = percentile(l.lat, 99)
	}
	r.FirstErrors = l.errs[:min(3, len(l.errs))]
	return r
}

// String renders the parameters for the results.
func (p clusterParams) String() string {
	return fmt.Sprintf("%d issues/s during kills; %d restart(s), %d takeover(s); leader killed after %s of load, restarted %s later",
		p.loadRate, p.restarts, p.takeovers, p.electionLead, p.electionAfter)
}
