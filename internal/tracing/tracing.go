// Package tracing sets up OpenTelemetry tracing for the long-running
// commands (serve, project, dev) from the standard OTEL_* environment
// variables, and does nothing at all when they ask for none.
//
// Tracing is on when OTEL_TRACES_EXPORTER names an exporter (otlp or
// console), or when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and OTEL_TRACES_EXPORTER is not
// "none"; OTEL_SDK_DISABLED=true turns it off whatever else is set. When it
// is off, Start installs nothing: the global tracer provider stays
// OpenTelemetry's no-op one and the HTTP API gets no tracing middleware.
//
// The OTLP exporter speaks HTTP/protobuf (OTEL_EXPORTER_OTLP_PROTOCOL
// http/protobuf, the default; grpc is refused). The SDK and the exporter
// read their own variables: OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS,
// _TIMEOUT, _COMPRESSION, _CERTIFICATE, OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG, OTEL_BSP_*, OTEL_SPAN_*_LIMIT,
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (both win over the
// defaults service.name=tokenledger and service.version).
//
// The packages that make spans (api, eventstore, consumers, validator)
// take their tracer from the global provider, which Start sets; none of
// them makes a span or any tracing call on the validator's in-memory path.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokenledger/tokenledger/version"
)

// The exporters OTEL_TRACES_EXPORTER may name.
const (
	ExporterOTLP    = "otlp"
	ExporterConsole = "console"
	ExporterNone    = "none"
)

// ServiceName is the service.name of every span unless OTEL_SERVICE_NAME
// or OTEL_RESOURCE_ATTRIBUTES names another.
const ServiceName = "tokenledger"

// RoleKey is the resource attribute naming the command that made a span
// (serve, project, dev), so the API nodes and the workers of one
// deployment can share a service name and still be told apart.
const RoleKey = attribute.Key("tokenledger.role")

// Config is what the environment asks of tracing.
type Config struct {
	// Exporter is ExporterOTLP, ExporterConsole, or "" when tracing is
	// off.
	Exporter string
	// DefaultEndpoint reports that no OTLP endpoint variable is set: the
	// exporter then sends to DefaultEndpoint, as the specification says
	// (the exporter's own default would be https).
	DefaultEndpoint bool
}

// DefaultEndpoint is where OTLP spans go when no endpoint is set: a
// collector on this host.
const DefaultEndpoint = "http://localhost:4318/v1/traces"

// Enabled reports whether c asks for traces.
func (c Config) Enabled() bool { return c.Exporter != "" }

// ConfigFromEnv reads the variables that decide whether and where to
// export, through lookup (os.LookupEnv in a process). It reports every
// problem at once.
func ConfigFromEnv(lookup func(string) (string, bool)) (Config, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	var errs []error
	if v := strings.ToLower(get("OTEL_SDK_DISABLED")); v == "true" {
		return Config{}, nil
	}
	var c Config
	endpoint := get("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	switch v := strings.ToLower(get("OTEL_TRACES_EXPORTER")); v {
	case "":
		if endpoint {
			c.Exporter = ExporterOTLP
		}
	case ExporterOTLP, ExporterConsole:
		c.Exporter = v
	case ExporterNone:
	default:
		errs = append(errs, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: want otlp, console or none", v))
	}
	if c.Exporter == ExporterOTLP {
		c.DefaultEndpoint = !endpoint
		for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
			if v := get(k); v != "" {
				if v != "http/protobuf" {
					errs = append(errs, fmt.Errorf("%s=%q: only http/protobuf is supported", k, v))
				}
				break
			}
		}
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// Options are what Start needs besides the environment.
type Options struct {
	// Role names the command (serve, project, dev): resource attribute
	// RoleKey.
	Role string
	// Log receives the exporter's errors (an unreachable collector).
	Log *slog.Logger
	// Console is where the console exporter writes (the process's stderr).
	Console io.Writer
}

// Start sets tracing up as the process environment asks (ConfigFromEnv on
// os.LookupEnv). When tracing is off it changes nothing and returns a nil
// provider and a shutdown that does nothing. Otherwise it installs an SDK
// tracer provider and the W3C trace-context propagator as OpenTelemetry's
// globals and returns the provider; shutdown exports the spans still
// buffered and stops the exporter, within ctx.
func Start(ctx context.Context, o Options) (trace.TracerProvider, func(context.Context) error, error) {
	noop := func(context.Context) error { return nil }
	cfg, err := ConfigFromEnv(os.LookupEnv)
	if err != nil {
		return nil, noop, fmt.Errorf("tracing: %w", err)
	}
	if !cfg.Enabled() {
		return nil, noop, nil
	}
	var exp sdktrace.SpanExporter
	switch cfg.Exporter {
	case ExporterConsole:
		w := o.Console
		if w == nil {
			w = os.Stderr
		}
		exp, err = stdouttrace.New(stdouttrace.WithWriter(w))
	default:
		// Endpoint, headers, timeout, compression and TLS come from the
		// OTEL_EXPORTER_OTLP_* variables, read by the exporter itself.
		var opts []otlptracehttp.Option
		if cfg.DefaultEndpoint {
			opts = append(opts, otlptracehttp.WithEndpointURL(DefaultEndpoint))
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, noop, fmt.Errorf("tracing: %s exporter: %w", cfg.Exporter, err)
	}
	res, err := newResource(ctx, o.Role)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, noop, fmt.Errorf("tracing: resource: %w", err)
	}
	// The sampler comes from OTEL_TRACES_SAMPLER(_ARG), the batching from
	// OTEL_BSP_*: the SDK reads them.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	if o.Log != nil {
		log := o.Log
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Warn("tracing", "error", err)
		}))
	}
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return tp, tp.Shutdown, nil
}

// newResource describes the process: service.name and service.version by
// default, the role, and what OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES say, which win.
func newResource(ctx context.Context, role string) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{
		semconv.ServiceName(ServiceName),
		semconv.ServiceVersion(version.Get().Version),
	}
	if role != "" {
		attrs = append(attrs, RoleKey.String(role))
	}
	return resource.New(ctx,
		resource.WithAttributes(attrs...),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
}
