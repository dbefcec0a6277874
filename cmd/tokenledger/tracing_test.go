package main

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tokenledger/tokenledger/internal/testkit/stacktest"
)

// A tracing setting the process cannot honour stops serve, project and dev
// at start, with one line naming the variable.
func TestTracingSettingsRefusedAtStart(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"serve", "project", "dev"} {
		r := runBinary(t, []string{"OTEL_TRACES_EXPORTER=zipkin"}, cmd)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code == 0 || !strings.Contains(lines[len(lines)-1], `OTEL_TRACES_EXPORTER="zipkin"`) {
			t.Errorf("%s with OTEL_TRACES_EXPORTER=zipkin: exit %d, stderr %q", cmd, r.code, r.stderr)
		}
	}
}

// serve with an OTLP endpoint sends its spans to a real OTLP/HTTP receiver:
// the server span of a request that carried a gateway's traceparent, named
// by its route and in the gateway's trace, and the validator's snapshot
// load; the spans still buffered are exported when serve stops.
func TestServeExportsSpansOverOTLP(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	spans := map[string]string{} // span name -> trace id (hex)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, req); err != nil || r.URL.Path != "/v1/traces" {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					spans[sp.GetName()] = hex.EncodeToString(sp.GetTraceId())
				}
			}
		}
	}))
	defer receiver.Close()

	srv := stacktest.NATS(t)
	pgURL := stacktest.PostgresURL(t)
	env := []string{"TOKENLEDGER_NATS_URL=" + srv.ClientURL(), "TOKENLEDGER_POSTGRES_URL=" + pgURL}
	for _, args := range [][]string{{"migrate"}, {"streams", "init"}} {
		if r := runBinary(t, env, args...); r.code != 0 {
			t.Fatalf("%v: exit %d: %s", args, r.code, r.stderr)
		}
	}
	p := startBinary(t, append(env, "OTEL_EXPORTER_OTLP_ENDPOINT="+receiver.URL, "OTEL_SERVICE_NAME=ledger-e2e"),
		"serve", "--http-addr", "127.0.0.1:0")
	urlLine := regexp.MustCompile(`listening on (http://\S+)`)
	var base string
	stacktest.Eventually(t, time.Minute, func() bool {
		if m := urlLine.FindStringSubmatch(p.stdout.String()); m != nil {
			base = m[1]
			return true
		}
		if !p.running() {
			t.Fatalf("serve exited: %s", p.stderr.String())
		}
		return false
	}, "serve did not start")

	const traceID = "0af7651916cd43dd8448eb211c80319c"
	req, _ := http.NewRequest(http.MethodGet, base+"/readyz", nil)
	req.Header.Set("Traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	p.stop(t)

	mu.Lock()
	defer mu.Unlock()
	if got := spans["GET /readyz"]; got != traceID {
		t.Errorf("span GET /readyz in trace %q, want the gateway's %s; spans: %v", got, traceID, spans)
	}
	if _, ok := spans["validator.snapshot"]; !ok {
		t.Errorf("no validator.snapshot span; spans: %v", spans)
	}
}
