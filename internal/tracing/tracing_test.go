package tracing_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tokenledger/tokenledger/internal/tracing"
)

// otelVars are the variables these tests set; each test clears them all
// first, so the machine's environment does not leak in.
var otelVars = []string{
	"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
	"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
}

func setEnv(t *testing.T, kv ...string) {
	t.Helper()
	for _, k := range otelVars {
		t.Setenv(k, "")
	}
	for i := 0; i+1 < len(kv); i += 2 {
		t.Setenv(kv[i], kv[i+1])
	}
}

// restoreGlobal puts the global tracer provider back after a test that
// installs one.
func restoreGlobal(t *testing.T) {
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
}

// Without OTEL_* variables Start installs nothing: no provider is
// returned, the global tracer provider is the one it was (OpenTelemetry's
// no-op default in a fresh process: this test runs first), and spans from
// it record nothing.
func TestStartWithoutVariablesInstallsNothing(t *testing.T) {
	setEnv(t)
	before := otel.GetTracerProvider()
	tp, shutdown, err := tracing.Start(context.Background(), tracing.Options{Role: "serve"})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	if tp != nil {
		t.Errorf("provider %T returned with tracing off", tp)
	}
	if otel.GetTracerProvider() != before {
		t.Errorf("global tracer provider changed to %T", otel.GetTracerProvider())
	}
	_, span := otel.Tracer("test").Start(context.Background(), "span")
	defer span.End()
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Errorf("a span of the global provider records (%v) or has a context (%v): a provider is installed", span.IsRecording(), span.SpanContext())
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr string
	}{
		{name: "nothing set: off", want: ""},
		{name: "an endpoint: otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: tracing.ExporterOTLP},
		{name: "a traces endpoint: otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, want: tracing.ExporterOTLP},
		{name: "otlp named, default endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: tracing.ExporterOTLP},
		{name: "console", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, want: tracing.ExporterConsole},
		{name: "none wins over an endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, want: ""},
		{name: "disabled SDK wins over everything", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, want: ""},
		{name: "http/protobuf accepted", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, want: tracing.ExporterOTLP},
		{name: "grpc refused", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\": only http/protobuf"},
		{name: "the traces protocol wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: tracing.ExporterOTLP},
		{name: "unknown exporter refused", env: map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"}, wantErr: "OTEL_TRACES_EXPORTER=\"jaeger\": want otlp, console or none"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := tracing.ConfigFromEnv(func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Exporter != c.want || cfg.Enabled() != (c.want != "") {
				t.Errorf("exporter %q (enabled %v), want %q", cfg.Exporter, cfg.Enabled(), c.want)
			}
			_, endpoint := c.env["OTEL_EXPORTER_OTLP_ENDPOINT"]
			_, tracesEndpoint := c.env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
			if want := c.want == tracing.ExporterOTLP && !endpoint && !tracesEndpoint; cfg.DefaultEndpoint != want {
				t.Errorf("default endpoint %v, want %v", cfg.DefaultEndpoint, want)
			}
		})
	}
}

// With an OTLP endpoint, spans made through the global provider reach a
// real OTLP/HTTP receiver as protobuf at /v1/traces, with the resource the
// variables describe (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
// over the defaults) and the role.
func TestStartExportsOverOTLPHTTP(t *testing.T) {
	var mu sync.Mutex
	var got []*coltracepb.ExportTraceServiceRequest
	var paths, types []string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if err == nil {
			err = proto.Unmarshal(body, req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got, paths, types = append(got, req), append(paths, r.URL.Path), append(types, r.Header.Get("Content-Type"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer receiver.Close()
	setEnv(t, "OTEL_EXPORTER_OTLP_ENDPOINT", receiver.URL,
		"OTEL_SERVICE_NAME", "ledger-test", "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci")
	restoreGlobal(t)
	ctx := context.Background()
	tp, shutdown, err := tracing.Start(ctx, tracing.Options{Role: "project"})
	if err != nil {
		t.Fatal(err)
	}
	if tp == nil || otel.GetTracerProvider() != tp {
		t.Fatalf("provider %T, global %T: want the returned one installed", tp, otel.GetTracerProvider())
	}
	_, span := otel.Tracer("test").Start(ctx, "hello")
	span.End()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("%d export requests, want 1", len(got))
	}
	if paths[0] != "/v1/traces" || types[0] != "application/x-protobuf" {
		t.Errorf("export to %s as %s, want /v1/traces as application/x-protobuf", paths[0], types[0])
	}
	rs := got[0].GetResourceSpans()
	if len(rs) != 1 || len(rs[0].GetScopeSpans()) != 1 || len(rs[0].GetScopeSpans()[0].GetSpans()) != 1 {
		t.Fatalf("export holds %v, want one span", got[0])
	}
	if name := rs[0].GetScopeSpans()[0].GetSpans()[0].GetName(); name != "hello" {
		t.Errorf("span %q, want hello", name)
	}
	res := map[string]string{}
	for _, kv := range rs[0].GetResource().GetAttributes() {
		res[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	for k, v := range map[string]string{"service.name": "ledger-test", "deployment.environment.name": "ci", "tokenledger.role": "project"} {
		if res[k] != v {
			t.Errorf("resource %s = %q, want %q (resource %v)", k, res[k], v, res)
		}
	}
	if res["service.version"] == "" {
		t.Errorf("resource has no service.version: %v", res)
	}
}

// The console exporter writes the spans to the writer given; the sampler
// variables are honoured (always_off records nothing).
func TestStartConsoleAndSampler(t *testing.T) {
	for _, c := range []struct {
		sampler string
		want    bool
	}{{"always_on", true}, {"always_off", false}} {
		t.Run(c.sampler, func(t *testing.T) {
			setEnv(t, "OTEL_TRACES_EXPORTER", "console", "OTEL_TRACES_SAMPLER", c.sampler)
			restoreGlobal(t)
			var buf bytes.Buffer
			ctx := context.Background()
			_, shutdown, err := tracing.Start(ctx, tracing.Options{Role: "dev", Console: &buf})
			if err != nil {
				t.Fatal(err)
			}
			_, span := otel.Tracer("test").Start(ctx, "hello-console")
			span.End()
			if err := shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(buf.String(), `"Name":"hello-console"`); got != c.want {
				t.Errorf("span written: %v, want %v; output:\n%s", got, c.want, buf.String())
			}
		})
	}
}

// A refused setting is an error naming the variable, and installs nothing.
func TestStartRefusesBadSettings(t *testing.T) {
	setEnv(t, "OTEL_TRACES_EXPORTER", "zipkin")
	before := otel.GetTracerProvider()
	_, _, err := tracing.Start(context.Background(), tracing.Options{})
	if err == nil || !strings.Contains(err.Error(), "OTEL_TRACES_EXPORTER") {
		t.Fatalf("error %v, want one naming OTEL_TRACES_EXPORTER", err)
	}
	if otel.GetTracerProvider() != before {
		t.Errorf("global tracer provider changed")
	}
}
