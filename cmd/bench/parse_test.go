package main

import (
	"bytes"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestParseGoBench(t *testing.T) {
	t.Parallel()
	out := `goos: linux
BenchmarkValidate/system-clock/serial    	 1253269	       287.2 ns/op	       310.0 p50-ns	       351.0 p99-ns	   3482379 validations/s	       0 B/op	       0 allocs/op
BenchmarkValidate/system-clock/parallel-2         	 2327307	       151.8 ns/op	   6589272 validations/s	       0 B/op	       0 allocs/op
BenchmarkAppend/R1/concurrent-16-2      	   14498	     25138 ns/op	     39780 events/s	       220.0 p50-µs	      4300 p99-µs
BenchmarkAppend/R1/concurrent-64      	   14914	     21928 ns/op
PASS
ok  	github.com/tokenledger/tokenledger/validator	2.513s
`
	got, err := parseGoBench(out, []int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		procs int
		unit  string
		want  float64
	}{
		{"BenchmarkValidate/system-clock/serial", 1, "p99-ns", 351},
		{"BenchmarkValidate/system-clock/serial", 1, "allocs/op", 0},
		{"BenchmarkValidate/system-clock/parallel", 2, "validations/s", 6589272},
		{"BenchmarkAppend/R1/concurrent-16", 2, "p99-µs", 4300},
		{"BenchmarkAppend/R1/concurrent-64", 1, "ns/op", 21928},
	}
	for _, tc := range tests {
		t.Run(tc.name+"/"+tc.unit, func(t *testing.T) {
			s := metricSeries(got, tc.name, tc.procs, tc.unit)
			if len(s) != 1 || s[0] != tc.want {
				t.Errorf("%s at %d procs, %s = %v, want [%v]", tc.name, tc.procs, tc.unit, s, tc.want)
			}
		})
	}
	if len(got) != 4 {
		t.Errorf("%d results, want 4: %+v", len(got), got)
	}
}

// A sub-benchmark whose name ends in a number keeps it when that number is
// not one of the run's -cpu values.
func TestParseGoBenchKeepsNumberedNames(t *testing.T) {
	t.Parallel()
	got, err := parseGoBench("BenchmarkAppend/R1/concurrent-16 \t 10 \t 5 ns/op\n", []int{1})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "BenchmarkAppend/R1/concurrent-16" || got[0].Procs != 1 {
		t.Fatalf("got %+v", got)
	}
}

const wrkTokenledger = `Running 2s test @ http://127.0.0.1:35219/v1/auth
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    11.27ms   23.44ms 258.51ms   93.06%
    Req/Sec    13.00k     9.79k   39.79k    71.88%
  Latency Distribution
     50%    3.72ms
     75%   12.05ms
     90%   27.34ms
     99%  145.20ms
  166984 requests in 2.02s, 33.58MB read
Requests/sec:  82520.81
Transfer/sec:     16.60MB
BENCH-RESULT requests=166984 duration_us=2023538 p50_us=3723 p90_us=27345 p99_us=145198 p999_us=211063 max_us=258507 status=0 connect=0 read=0 write=0 timeout=0
`

const wrkDRF = `Running 2s test @ http://127.0.0.1:18080/api/whoami/
  2 threads and 32 connections
  Latency Distribution
     50%   14.48ms
     75%   20.00ms
     90%   30.00ms
     99%    1.20s
  4052 requests in 2.00s, 1.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   2025.60
Transfer/sec:    500.00KB
`

func TestParseWrk(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		out  string
		want wrkResult
	}{
		{"with the script's result line", wrkTokenledger, wrkResult{RPS: 82520.81, Requests: 166984, P50: 3723, P90: 27345, P99: 145198, P999: 211063, Max: 258507, HasP999: true}},
		{"the peer's plain output", wrkDRF, wrkResult{RPS: 2025.60, Requests: 4052, P50: 14480, P90: 30000, P99: 1.2e6, Non2xx: 7, SocketErrors: 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseWrk(tc.out)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got.P50-tc.want.P50) > 0.01 || math.Abs(got.P99-tc.want.P99) > 0.01 || math.Abs(got.P90-tc.want.P90) > 0.01 {
				t.Errorf("latencies %v/%v/%v, want %v/%v/%v", got.P50, got.P90, got.P99, tc.want.P50, tc.want.P90, tc.want.P99)
			}
			got.P50, got.P90, got.P99 = tc.want.P50, tc.want.P90, tc.want.P99
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseWrkRefusesOutputWithoutFigures(t *testing.T) {
	t.Parallel()
	for name, out := range map[string]string{
		"no rate":         "unable to connect to 127.0.0.1:1 Connection refused\n",
		"no distribution": "Requests/sec: 10.0\n",
	} {
		if _, err := parseWrk(out); err == nil {
			t.Errorf("%s: parsed %q", name, out)
		}
	}
}

func TestParseBanner(t *testing.T) {
	t.Parallel()
	first := strings.Split(`tokenledger dev

  NATS (JetStream)  nats://127.0.0.1:4222
  PostgreSQL        postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
  event stream      TOKENLEDGER: 1 event
  API               http://127.0.0.1:45113  (OpenAPI: http://127.0.0.1:45113/v1/openapi.json)

First start: an admin token was issued. It is shown once, now, and never again:

  tlk_01M81CC0H90ZGC0BC1JY6Y5MHG_qUtuvo4cLepbovur8x1yaG1b4x3dNrY9CNccPQMLLhV0Z6oHL

  id 01M81CC0H90ZGC0BC1JY6Y5MHG, owner admin, scopes [ledger:admin]

  export TOKENLEDGER_TOKEN=tlk_01M81CC0H90ZGC0BC1JY6Y5MHG_qUtuvo4cLepbovur8x1yaG1b4x3dNrY9CNccPQMLLhV0Z6oHL

Ready. Ctrl-C stops it.`, "\n")
	tests := []struct {
		name    string
		lines   []string
		want    devBanner
		wantErr bool
	}{
		{"first start", first, devBanner{
			NATSURL:     "nats://127.0.0.1:4222",
			PostgresURL: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
			APIURL:      "http://127.0.0.1:45113",
			Admin:       "tlk_01M81CC0H90ZGC0BC1JY6Y5MHG_qUtuvo4cLepbovur8x1yaG1b4x3dNrY9CNccPQMLLhV0Z6oHL",
		}, false},
		{"restart: no admin token", first[:6], devBanner{
			NATSURL:     "nats://127.0.0.1:4222",
			PostgresURL: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
			APIURL:      "http://127.0.0.1:45113",
		}, false},
		{"no API line", append(first[:5:5], first[9]), devBanner{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseBanner(tc.lines)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsed %+v", got)
				}
				if strings.Contains(err.Error(), "qUtuvo4cLepbovur8x1yaG1b4x3dNrY9CNccPQMLLhV0Z6oHL") {
					t.Errorf("the error quotes the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestReplaceBetweenMarkers(t *testing.T) {
	t.Parallel()
	doc := "# B\n\n" + beginMarker + "\nold table\n" + endMarker + "\n\n## Notes\nkept\n"
	got, err := replaceBetweenMarkers(doc, "new table\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# B\n\n" + beginMarker + "\nnew table\n" + endMarker + "\n\n## Notes\nkept\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for name, bad := range map[string]string{
		"no markers":  "# B\n",
		"reversed":    endMarker + "\n" + beginMarker + "\n",
		"two begins":  beginMarker + beginMarker + endMarker,
		"no end mark": beginMarker + "\n",
	} {
		if _, err := replaceBetweenMarkers(bad, "x"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLoadBetween(t *testing.T) {
	t.Parallel()
	upsert := "INSERT INTO token_usage AS cur (token_id) SELECT * FROM unnest($1::uuid[])"
	a := pgSnap{usageLast: 100, usageApplied: 100, stmts: map[string]stmtStat{
		upsert:  {calls: 1, rows: 10},
		"BEGIN": {calls: 5},
	}}
	b := pgSnap{usageLast: 2150, usageApplied: 2100, stmts: map[string]stmtStat{
		upsert:  {calls: 3, rows: 2010},
		"BEGIN": {calls: 7},
		"INSERT INTO projection_checkpoints (name, last_seq) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING": {calls: 2},
		"UPDATE projection_checkpoints SET last_seq = $2, updated_at = now() WHERE name = $1":               {calls: 2, rows: 2},
		"SELECT last_seq FROM projection_checkpoints WHERE name = $1 FOR UPDATE":                            {calls: 2, rows: 2},
		"  update tokens set x = 1": {calls: 1, rows: 4},
	}}
	got := loadBetween(a, b, 2, 1000)
	want := pgLoad{Seconds: 2, Requests: 1000, Statements: 2 + 2 + 2 + 2 + 2 + 1, Writes: 2 + 2 + 2 + 1, RowsWritten: 2000 + 2 + 4,
		UsageUpserts: 2, UsageRows: 2000, Batches: 2, CheckpointWrites: 4, OtherWrites: 1, UsageEvents: 2050,
		UsageApplied: 2000, UsageBehind: 50}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestSeries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		s                series
		median, min, max float64
	}{
		{"odd", series{3, 1, 2}, 2, 1, 3},
		{"even", series{4, 1, 3, 2}, 2.5, 1, 4},
		{"one", series{7}, 7, 7, 7},
	}
	for _, tc := range tests {
		if m := tc.s.median(); m != tc.median || tc.s.min() != tc.min || tc.s.max() != tc.max {
			t.Errorf("%s: median %v min %v max %v", tc.name, m, tc.s.min(), tc.s.max())
		}
	}
	if !math.IsNaN(series{}.median()) {
		t.Error("the median of nothing is a number")
	}
	sorted := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for p, want := range map[float64]float64{50: 5, 99: 10, 100: 10, 10: 1} {
		if got := percentile(sorted, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for got, want := range map[string]string{
		fmtInt(22961.4):  "22,961",
		fmtInt(999):      "999",
		fmtInt(1000000):  "1,000,000",
		fmtRate(3482379): "3.48 M/s",
		fmtRate(22961):   "22,961/s",
		fmtUS(0.351):     "351 ns",
		fmtUS(633):       "633 µs",
		fmtUS(19180):     "19.18 ms",
		fmtUS(2.5e6):     "2.50 s",
		spread(series{3.52e6, 3.47e6, 3.54e6}, fmtRate): "3.52 M/s (3.47–3.54)",
		spread(series{0, 0, 0}, fmtInt):                 "0",
		spread(series{829, 852, 1090}, fmtUS):           "852 µs (829 µs–1.09 ms)",
		spread(series{68389, 66185, 68747}, fmtInt):     "68,389 (66,185–68,747)",
		spread(nil, fmtInt):                             "—",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestParseCommandSummaries(t *testing.T) {
	t.Parallel()
	r, err := parseRebuild(`rebuilt from 1,003,041 events in 37.88 s: 26,482 events/s (1,003,021 tokens, 0 owner revocations; projection "lifecycle" at sequence 1003041)`)
	if err != nil || r.Events != 1003041 || r.Seconds != 37.88 || r.Rate != 26482 {
		t.Errorf("rebuild: %+v, %v", r, err)
	}
	e, err := parseExport(`exported 1,000,016 records to /tmp/x.jsonl (1,000,016 events read in 4.20 s: 238,099 events/s); manifest /tmp/x.jsonl.manifest.json, signed with key 0123456789abcdef`)
	if err != nil || e.Records != 1000016 || e.Seconds != 4.2 || e.Rate != 238099 {
		t.Errorf("export: %+v, %v", e, err)
	}
	v, err := parseVerify("OK: /tmp/x.jsonl, 1,000,016 records, chain head ab, signed by key 01\n", 2e9)
	if err != nil || v.Records != 1000016 || v.Rate != 500008 {
		t.Errorf("verify: %+v, %v", v, err)
	}
	for name, out := range map[string]string{"rebuild": "error: boom", "export": "nothing", "verify": "FAILED"} {
		var err error
		switch name {
		case "rebuild":
			_, err = parseRebuild(out)
		case "export":
			_, err = parseExport(out)
		case "verify":
			_, err = parseVerify(out, 1)
		}
		if err == nil {
			t.Errorf("%s: parsed %q", name, out)
		}
	}
}

func TestBareHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(bareHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/auth")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %s", resp.Status)
	}
	for _, h := range []string{"X-Request-Id", "X-Token-Id", "X-Token-Owner", "X-Token-Scopes"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s", h)
		}
	}
	if id := resp.Header.Get("X-Request-Id"); len(id) != 26 {
		t.Errorf("request id %q is not 26 characters long, as a ULID", id)
	}
	resp, err = http.Post(srv.URL+"/v1/auth", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s, want 405", resp.Status)
	}
}

// The logs of the processes the bench starts never hold a secret, even
// when a process prints one (the dev banner's admin token).
func TestLineWriterRedactsSecrets(t *testing.T) {
	t.Parallel()
	secret := "tlk_01M81CC0H90ZGC0BC1JY6Y5MHG_qUtuvo4cLepbovur8x1yaG1b4x3dNrY9CNccPQMLLhV0Z6oHL"
	var log bytes.Buffer
	lines := make(chan string, 4)
	w := &lineWriter{log: &log, lines: lines}
	for _, part := range []string{"first line\n  " + secret[:20], secret[20:] + "\n", "last"} {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	w.close()
	if strings.Contains(log.String(), secret[4:]) {
		t.Errorf("the log holds the secret:\n%s", log.String())
	}
	var got []string
	for l := range lines {
		got = append(got, l)
	}
	if want := []string{"first line", "  " + secret, "last"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q, want %q", got, want)
	}
}

func TestQuickValue(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{"": false, "0": false, "false": false, "no": false, "1": true, "yes": true, "true": true} {
		if got := quickValue(in); got != want {
			t.Errorf("quickValue(%q) = %t, want %t", in, got, want)
		}
	}
}

// A run that measured nothing renders every figure as not measured, and
// no number.
func TestMarkdownOfNothing(t *testing.T) {
	t.Parallel()
	md := results{Runs: 1, Wrk: wrkParams{Threads: 2, Conns: 32, Duration: "2s", Warmup: "1s"}}.markdown()
	for _, bad := range []string{"NaN", "Inf", "misses"} {
		if strings.Contains(md, bad) {
			t.Errorf("the table says %q:\n%s", bad, md)
		}
	}
	rows := results{}.rows()
	for _, r := range rows {
		if r.Measured != notMeasured {
			t.Errorf("%s: %q, want %q", r.Figure, r.Measured, notMeasured)
		}
	}
}

// Figures short of their target say so; figures within it do not.
func TestMarkdownMisses(t *testing.T) {
	t.Parallel()
	run := func(rps float64) wrkResult {
		return wrkResult{RPS: rps, P50: 400, P99: 8000, P999: 13000, HasP999: true}
	}
	r := results{
		Runs:           1,
		SeedTokens:     1000,
		Tokens:         1_000_000,
		DRF:            drfResult{Runs: []wrkResult{run(2000)}},
		Bare:           []wrkResult{run(75000)},
		TL1k:           []wrkResult{run(68000)},
		TLLarge:        []wrkResult{run(32000)},
		Rebuild:        []rebuildResult{{Events: 1_000_000, Seconds: 11.2, Rate: 89000}},
		Issue:          []issueRun{{Latencies: []float64{1000, 1100, 4000}, Rate: 1000}},
		PGLarge:        []pgLoad{{UsageBehindLater: 0}, {UsageBehindLater: 120}},
		LagRate:        5000,
		Lag:            []lagRun{{Target: 5000, Rate: 2000, Lags: []float64{20_000, 40_000, 90_000}}},
		LiveProjection: []liveProjection{{Events: 1_000_000, Seconds: 20, Rate: 50_000, PublishRate: 60_000}},
		Restarts:       []workerRestart{{Progress: 0.3}, {Progress: 1.4}},
		Takeovers:      []workerRestart{{Progress: 0.6}},
		Election:       []electionRun{{Rate: 200, Election: 5.6, Requests: 5000, Errors: 2, MaxLatency: 7_800_000}},
		Append: []goBench{
			{Name: "BenchmarkAppend/R1/sequential", Procs: 2, Metrics: map[string]float64{"events/s": 15_000}},
			{Name: "BenchmarkAppend/R1/raw-publish", Procs: 2, Metrics: map[string]float64{"events/s": 20_000}},
		},
		Memory: []goBench{
			{Name: "BenchmarkMemoryPerToken", Procs: 2, Metrics: map[string]float64{"bytes/token": 122.5}},
			{Name: "BenchmarkMemoryPerToken/10M", Procs: 2, Metrics: map[string]float64{"bytes/token": 60}},
		},
	}
	byFigure := map[string]row{}
	for _, row := range r.rows() {
		byFigure[row.Figure] = row
	}
	tests := []struct {
		prefix string
		misses string // "" when it meets its target
	}{
		{"forward-auth over HTTP, `GET /v1/auth` on `tokenledger dev`, 1,000 live", ""},
		{"forward-auth over HTTP, `GET /v1/auth` on `tokenledger dev`, 1,000,000 live", "16.0× DRF < 20×; 43% of bare < 90%"},
		{"projection rebuild", "89,000 events/s < 300,000"},
		{"issue call latency", ""},
		{"usage projection lag 5 s after", "120 messages behind after 5 s in the worst run"},
		{"live lifecycle projection", ""},
		{"projection lag at 5,000", "the API answered 2,000 mutations/s, not 5,000"},
		{"worker restart", "worst 1.40 s > 1 s"},
		{"projector takeover", ""},
		{"stream-leader loss", "2 client errors; max 7.80 s > election 5.60 s + 1 s"},
		{"lifecycle append, one writer", "75% of the raw publish < 80%"},
		{"validator memory, 1,000,000 tokens", "122.5 B/token > 64"},
		{"validator memory, `BenchmarkMemoryPerToken/10M`", ""},
	}
	for _, tc := range tests {
		var found *row
		for f, row := range byFigure {
			if strings.HasPrefix(f, tc.prefix) {
				found = &row
				break
			}
		}
		if found == nil {
			t.Errorf("no figure starts with %q", tc.prefix)
			continue
		}
		if got := strings.Join(found.Misses, "; "); got != tc.misses {
			t.Errorf("%s: misses %q, want %q", found.Figure, got, tc.misses)
		}
	}
	for _, row := range r.httpRows() {
		if strings.Contains(row.Figure, "1,000,000 live tokens") && row.Ratio != "16.0× DRF; 43% of bare" {
			t.Errorf("1M tokens: ratio %q", row.Ratio)
		}
	}
}

// The CPU watch counts the CPU time of the bench's children as the
// bench's own, after they ended too.
func TestCPUWatchOwnsDescendants(t *testing.T) {
	t.Parallel()
	busy := exec.Command("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
	w := &cpuWatch{self: os.Getpid(), workDir: t.TempDir()}
	before := w.ownTimes()
	if err := busy.Run(); err != nil {
		t.Fatalf("sh: %v", err)
	}
	after := w.ownTimes()
	used := busy.ProcessState.UserTime() + busy.ProcessState.SystemTime()
	if got := time.Duration(ownDelta(before, after) / clockTicks * float64(time.Second)); got < used-20*time.Millisecond {
		t.Errorf("a child that used %v of CPU added %v to the bench's time", used, got)
	}
	if machineBusy() <= 0 {
		t.Error("no busy time read from /proc/stat")
	}
}

func TestOwnDelta(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		prev, cur map[int]ownProc
		want      float64
	}{
		{"running processes", map[int]ownProc{10: {1, 100}, 11: {10, 50}}, map[int]ownProc{10: {1, 110}, 11: {10, 70}}, 30},
		{"a new process", map[int]ownProc{10: {1, 100}}, map[int]ownProc{10: {1, 100}, 12: {10, 5}}, 5},
		// The child had used 50 by the last sample and 65 when it ended;
		// its parent's time grew by those 65.
		{"a child waited for", map[int]ownProc{10: {1, 100}, 11: {10, 50}}, map[int]ownProc{10: {1, 165}}, 15},
		{"a detached process ending", map[int]ownProc{10: {1, 100}, 20: {1, 900}}, map[int]ownProc{10: {1, 100}}, 0},
	}
	for _, tc := range tests {
		if got := ownDelta(tc.prev, tc.cur); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
