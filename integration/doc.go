// Package integration holds tests that run several of tokenledger's
// components together against a real nats-server and a real PostgreSQL:
// the paths a request, an event and a usage record take from end to end.
// It has no code of its own.
package integration
