// Package stack runs the infrastructure tokenledger needs on one machine: a
// PostgreSQL cluster for the read model and a NATS server for the event
// streams. The test helpers in package stacktest and the dev mode of the
// tokenledger command both build on it; production deployments run these
// servers themselves and do not use this package.
//
// # PostgreSQL
//
// StartPostgres runs the PostgreSQL server binaries already installed on the
// machine (initdb and postgres, version 13 or newer, 15 recommended; Debian:
// apt-get install postgresql-15). It initialises the data directory on first use, starts the
// server listening on TCP only (no Unix socket), waits until it accepts
// connections and returns a *Postgres that creates and drops databases and
// stops the server.
//
// PostgreSQL refuses to run as root. When the calling process is root,
// StartPostgres runs initdb and postgres as the unprivileged OS user
// "postgres" if it exists, otherwise as "nobody", and hands the data directory
// to that user. Every directory above the data directory must then be
// traversable (search permission) by that user: a directory made by
// os.MkdirTemp or testing.T.TempDir is mode 0700 and owned by root, so put the
// data directory inside a directory made world-traversable (0755 or 0711)
// instead. StartPostgres creates missing parent directories with mode 0755
// and reports an untraversable one as an error rather than changing the
// permissions of directories it did not create.
//
// On Linux the server processes are tied to the process that started them:
// if that process dies, even by SIGKILL, the kernel sends the postmaster
// SIGQUIT (immediate shutdown), so a killed test binary does not leave a
// server running. On other systems there is no such guarantee; call
// (*Postgres).Stop.
//
// Ports are chosen by FreePort and PortOrFree. Between choosing a free port
// and the server binding it another process may take it; StartPostgres
// detects that case and retries with another port.
package stack
