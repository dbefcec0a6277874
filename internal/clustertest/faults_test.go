//go:build cluster

package clustertest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/tokenledger/tokenledger/eventstore"
	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

const (
	// faultHold is how long a node stays killed or cut off.
	faultHold = 20 * time.Second
	// steadyBefore and steadyAfter frame the fault with undisturbed load:
	// the fault comes once every loaded node has acknowledged steadyBefore
	// issues, and the load stops once every loaded node has acknowledged
	// steadyAfter issues sent after the heal (the cut-off node among them:
	// it must serve again).
	steadyBefore = 10
	steadyAfter  = 20
	// steadyWait bounds each of those waits.
	steadyWait = 2 * time.Minute
	// issueInterval paces each load worker: 4 workers on each of the two
	// majority-side API nodes make about 40 issues/s, what this 2-core
	// machine sustains next to eight containers and PostgreSQL.
	issueInterval  = 200 * time.Millisecond
	workersPerNode = 4
	// hangLimit is the longest a request may wait for its answer: the
	// API's mutation timeout (10 s) and a margin. An answer later than that,
	// or none, is a hang.
	hangLimit = 15 * time.Second
	// catchUp bounds the projectors catching up with the stream.
	catchUp = 2 * time.Minute
)

// majority are the API nodes on the side that keeps a quorum.
var majority = []string{"serve-1", "serve-2"}

// TestFaults runs every fault on one cluster, one after the other, each
// under a steady issue load, and checks after each that nothing
// acknowledged was lost and the replicas converged.
func TestFaults(t *testing.T) {
	c := startCluster(t)

	t.Run("kill -9 of the stream leader", func(t *testing.T) {
		c := c.on(t)
		// A leader the API nodes are connected to: its death closes their
		// connections too.
		leader := c.moveLeader(func(l string) bool { return l != cutNode })
		res := c.underLoad(t, majority, func() {
			t.Logf("docker kill %s (stream leader)", leader)
			c.kill(leader)
		}, func() {
			c.start(leader)
		})
		c.check(t, res, nil)
	})

	t.Run("partition of a follower", func(t *testing.T) {
		c := c.on(t)
		c.moveLeader(func(l string) bool { return l != cutNode })
		var cut, healed time.Time
		res := c.underLoad(t, append(slices.Clone(majority), edgeService), func() {
			t.Logf("docker network disconnect %s (follower; leader %s)", cutNode, c.leader())
			c.disconnect(cutNode)
			cut = time.Now()
		}, func() {
			c.connect(cutNode)
			healed = time.Now()
		})
		c.check(t, res, &window{cut, healed})
	})

	t.Run("partition of the stream leader", func(t *testing.T) {
		c := c.on(t)
		c.moveLeader(func(l string) bool { return l == cutNode })
		var cut, healed time.Time
		res := c.underLoad(t, append(slices.Clone(majority), edgeService), func() {
			t.Logf("docker network disconnect %s (stream leader)", cutNode)
			c.disconnect(cutNode)
			cut = time.Now()
		}, func() {
			c.connect(cutNode)
			healed = time.Now()
		})
		c.check(t, res, &window{cut, healed})
	})

	t.Run("rolling restart of the three NATS nodes", func(t *testing.T) {
		c := c.on(t)
		l := c.startLoad(majority)
		defer l.stop()
		c.acknowledged(l, majority, time.Time{}, steadyBefore)
		for _, n := range natsNodes {
			t.Logf("docker restart %s (leader %s)", n, c.leader())
			c.restart(n)
			c.waitConverged()
		}
		c.acknowledged(l, majority, time.Now(), steadyAfter)
		c.check(t, l.stop(), nil)
	})
}

// window is when cutNode was cut off.
type window struct{ from, to time.Time }

// underLoad puts the issue load on nodes, breaks the cluster with fault
// once every node has acknowledged steadyBefore issues, heals it faultHold
// later, keeps the load on until every node has acknowledged steadyAfter
// issues sent after the heal, and returns every request's result once the
// replicas have converged.
func (c *cluster) underLoad(t *testing.T, nodes []string, fault, heal func()) []result {
	t.Helper()
	l := c.startLoad(nodes)
	defer l.stop() // a failed fault or heal ends the load too
	c.acknowledged(l, nodes, time.Time{}, steadyBefore)
	fault()
	time.Sleep(faultHold) // the fault's length: part of the scenario, not a wait for a condition
	heal()
	c.acknowledged(l, nodes, time.Now(), steadyAfter)
	res := l.stop()
	c.waitConverged()
	return res
}

// acknowledged waits until each of nodes has acknowledged (201) at least n
// issues sent at or after since.
func (c *cluster) acknowledged(l *load, nodes []string, since time.Time, n int) {
	c.t.Helper()
	count := func(node string) int {
		l.mu.Lock()
		defer l.mu.Unlock()
		var k int
		for _, r := range l.res {
			if r.node == node && r.status == http.StatusCreated && !r.start.Before(since) {
				k++
			}
		}
		return k
	}
	for _, node := range nodes {
		stacktest.Eventually(c.t, steadyWait, func() bool { return count(node) >= n },
			"%s acknowledges %d issues sent since %s (has %s)", node, n, since.Format("15:04:05.000"),
			stringer(func() string { return fmt.Sprint(count(node)) }))
	}
}

// check asserts what every fault must leave: on the majority side no
// client error and no request slower than hangLimit; on the cut-off side
// (cut non-nil) only 201s and 503s, at least one 503 while cut off, and no
// hang; and every acknowledged issue, on either side, in the stream and in
// the read model.
func (c *cluster) check(t *testing.T, res []result, cut *window) {
	t.Helper()
	c.waitConverged()
	byNode := map[string][]result{}
	for _, r := range res {
		byNode[r.node] = append(byNode[r.node], r)
	}
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		t.Logf("%s: %s", node, summarize(byNode[node]))
	}
	for _, node := range majority {
		rs := byNode[node]
		if len(rs) == 0 {
			t.Errorf("%s: no request finished", node)
		}
		for _, r := range rs {
			if r.status != http.StatusCreated {
				t.Errorf("%s: a client error while a quorum stood: %s", node, r)
			}
		}
	}
	if cut != nil {
		var during int
		for _, r := range byNode[edgeService] {
			switch {
			case r.status != http.StatusCreated && r.status != http.StatusServiceUnavailable:
				t.Errorf("%s (cut off): want 201 or 503, got %s", edgeService, r)
			case r.latency > hangLimit:
				t.Errorf("%s (cut off): answered after %s, more than %s: %s", edgeService, r.latency, hangLimit, r)
			case r.status == http.StatusServiceUnavailable && !r.start.Before(cut.from) && r.start.Before(cut.to):
				during++
			}
		}
		if during == 0 {
			t.Errorf("%s (cut off): no 503 while cut off", edgeService)
		}
	}
	c.checkAcknowledged(t, res)
}

// checkAcknowledged asserts that every issue answered 201 is in the
// lifecycle stream and, once the projectors catch up, in the read model.
func (c *cluster) checkAcknowledged(t *testing.T, res []result) {
	t.Helper()
	var ids []string
	for _, r := range res {
		if r.status == http.StatusCreated {
			ids = append(ids, r.id)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), catchUp)
	defer cancel()
	stream, err := c.js.Stream(ctx, eventstore.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	var lost []string
	for _, id := range ids {
		if _, err := stream.GetLastMsgForSubject(ctx, eventstore.DefaultSubjectPrefix+".token."+id+".*"); err != nil {
			lost = append(lost, id+" ("+err.Error()+")")
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged issues are not in the stream, e.g. %s", len(lost), len(ids), lost[0])
	}

	uuids := make([]string, len(ids))
	for i, id := range ids {
		u, err := ulid.Parse(id)
		if err != nil {
			t.Fatalf("token id %q: %v", id, err)
		}
		uuids[i] = uuidString(u)
	}
	conn, err := pgx.Connect(ctx, c.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var projected int
	stacktest.Eventually(t, catchUp, func() bool {
		err := conn.QueryRow(ctx, "SELECT count(*) FROM tokens WHERE id = ANY($1::uuid[])", uuids).Scan(&projected)
		return err == nil && projected == len(uuids)
	}, "every acknowledged issue in the read model: %s", stringer(func() string {
		return fmt.Sprintf("%d of %d", projected, len(uuids))
	}))
	t.Logf("%d acknowledged issues: all in the stream and the read model", len(ids))
}

// result is one issue request's outcome.
type result struct {
	node    string
	start   time.Time
	latency time.Duration
	status  int // 0: no answer within the client's timeout, or a transport error
	detail  string
	id      string
}

func (r result) String() string {
	return fmt.Sprintf("%d after %s at %s: %s", r.status, r.latency.Round(time.Millisecond), r.start.Format("15:04:05.000"), r.detail)
}

// load is a steady issue load on some API nodes.
type load struct {
	done     chan struct{}
	stopping sync.Once
	wg       sync.WaitGroup
	mu       sync.Mutex
	res      []result
}

// startLoad starts workersPerNode workers on each node (one on the
// cut-off side's edgeService), each issuing a token every issueInterval.
func (c *cluster) startLoad(nodes []string) *load {
	l := &load{done: make(chan struct{})}
	client := &http.Client{Timeout: 2 * hangLimit}
	for _, node := range nodes {
		workers := workersPerNode
		if node == edgeService {
			workers = 1
		}
		for range workers {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				tick := time.NewTicker(issueInterval)
				defer tick.Stop()
				for {
					r := c.issue(client, node)
					l.mu.Lock()
					l.res = append(l.res, r)
					l.mu.Unlock()
					select {
					case <-l.done:
						return
					case <-tick.C:
					}
				}
			}()
		}
	}
	return l
}

// stop ends the load and returns every result; calling it again returns
// the same results.
func (l *load) stop() []result {
	l.stopping.Do(func() { close(l.done) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res
}

// issue issues one token through node.
func (c *cluster) issue(client *http.Client, node string) result {
	r := result{node: node, start: time.Now()}
	req, err := http.NewRequest(http.MethodPost, c.serve[node]+"/v1/tokens",
		strings.NewReader(`{"owner":"load","name":"fault test"}`))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	r.latency = time.Since(r.start)
	if err != nil {
		r.detail = err.Error()
		return r
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	r.status = resp.StatusCode
	if r.status != http.StatusCreated {
		r.detail = strings.TrimSpace(string(body))
		return r
	}
	var issued struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &issued); err != nil || issued.ID == "" {
		r.status, r.detail = 0, fmt.Sprintf("201 without a token id: %s", body)
	}
	r.id = issued.ID
	return r
}

// summarize counts the results by status and gives the latencies.
func summarize(rs []result) string {
	counts := map[int]int{}
	var lat []time.Duration
	over := 0
	for _, r := range rs {
		counts[r.status]++
		lat = append(lat, r.latency)
		if r.latency > time.Second {
			over++
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%d×%d", counts[s], s))
	}
	if len(lat) == 0 {
		return "no requests"
	}
	return fmt.Sprintf("%d requests (%s), p50 %s, max %s, %d over 1 s", len(rs), strings.Join(parts, " "),
		lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond), over)
}

// uuidString writes a ULID's 16 bytes in the uuid text form.
func uuidString(u ulid.ULID) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
