package stacktest

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// mainCalled records that the test binary runs under Main, which is what
// guarantees that shared servers are stopped.
var mainCalled atomic.Bool

// exitFuncs are run by Main after the tests, last registered first.
var (
	exitMu    sync.Mutex
	exitFuncs []func() error
)

// Main runs the tests of m, then stops the servers shared by the test
// binary (the PostgreSQL cluster) and removes their directories, and exits
// with the tests' status. Call it from the package's TestMain:
//
//	func TestMain(m *testing.M) { stacktest.Main(m) }
//
// A failure to clean up is printed and makes a passing run fail. Main does
// not return.
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	if err := runExitFuncs(); err != nil {
		fmt.Fprintf(os.Stderr, "stacktest: cleanup after tests: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// atExit registers f to run in Main after all tests have finished. Shared
// servers use it to stop themselves.
func atExit(f func() error) {
	exitMu.Lock()
	defer exitMu.Unlock()
	exitFuncs = append(exitFuncs, f)
}

// runExitFuncs runs the registered functions, last registered first, and
// joins their errors.
func runExitFuncs() error {
	exitMu.Lock()
	funcs := slices.Clone(exitFuncs)
	exitFuncs = nil
	exitMu.Unlock()
	var errs []error
	for i := len(funcs) - 1; i >= 0; i-- {
		errs = append(errs, funcs[i]())
	}
	return errors.Join(errs...)
}
