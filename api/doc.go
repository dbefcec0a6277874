// Package api is tokenledger's HTTP API (v1): token management for owners
// and admins, RFC 7009 revocation, RFC 7662 introspection, forward-auth for
// gateways (nginx auth_request, Envoy ext_authz, Traefik ForwardAuth),
// health, metrics and the OpenAPI description of it all.
//
// Requests authenticate with tokenledger's own tokens (Authorization: Bearer)
// through the node's in-memory validator, so authenticating costs no I/O.
// Mutations go through package ledger, which authorizes, decides and appends
// to the event store. Every answer is JSON (errors are
// {"error": {"code", "message"}} with a code from package sdk), carries an
// X-Request-Id, and a bad request is always a 4xx, never a 5xx.
//
// Given a tracer provider (Config.TracerProvider), the server makes an
// OpenTelemetry server span of every request, named by its route and a
// child of the caller's W3C traceparent; without one, requests run no
// tracing code at all.
package api
