// Package stacktest is the shared test infrastructure of tokenledger: real
// servers for tests, never mocks of them. Import it only from _test.go
// files.
//
// # PostgreSQL
//
// Each test binary gets one PostgreSQL cluster (package stack), started on
// first use in a fresh temporary directory, non-durable (fsync off) for
// speed, and stopped when the binary's tests are done. Every test gets its
// own database, created from template0 and dropped when the test ends:
//
//	func TestMain(m *testing.M) { stacktest.Main(m) }
//
//	func TestProjection(t *testing.T) {
//		t.Parallel()
//		pool := stacktest.PostgresPool(t) // empty database, closed and dropped at cleanup
//		...
//	}
//
// A package whose tests use the PostgreSQL helpers must have that TestMain:
// it is what stops the cluster. Without it the helpers fail the test and
// say so. If the binary dies before Main's cleanup (a panic, a test
// timeout, SIGKILL), the kernel stops the server on Linux (see package
// stack) and the next test binary removes the directory left behind.
//
// The cluster lives under /dev/shm when that is a directory with at least
// 2 GiB free (memory-backed, several times faster for database creation),
// otherwise under os.TempDir(). If the PostgreSQL binaries are missing the
// helpers fail the test with the install instruction; they never skip.
//
// # Waiting
//
// Tests wait for asynchronous effects with Eventually, which polls a
// condition until a deadline, never with a fixed sleep.
package stacktest
