//go:build linux

// Package chromiumtest finds Debian's chromium for browser tests, which
// drive it headless with chromedp. When the binary is missing, Find
// installs the package with apt-get once per machine (serialised between
// test processes, like every harness under internal); when that is
// impossible it fails the test saying what to install. It never skips.
//
// The package is for tests only.
package chromiumtest

import (
	"os/exec"
	"sync"
	"testing"

	"github.com/tokenledger/tokenledger/internal/debpkg"
)

// aptPackage is Debian's package of the browser; it installs
// /usr/bin/chromium.
const aptPackage = "chromium"

// names are the binaries looked up in PATH, in order.
var names = []string{"chromium", "chromium-browser", "google-chrome"}

var (
	once sync.Once
	path string
	err  error
)

// Find returns the path of the chromium binary, installing Debian's
// chromium package first if it is missing. It fails t if it cannot.
func Find(t testing.TB) string {
	t.Helper()
	once.Do(func() { path, err = findOrInstall() })
	if err != nil {
		t.Fatalf("chromium for the browser tests: %v", err)
	}
	return path
}

func findOrInstall() (string, error) {
	if p, ok := look(); ok {
		return p, nil
	}
	present := func() bool { _, ok := look(); return ok }
	if err := debpkg.Install(present, aptPackage); err != nil {
		return "", err
	}
	p, _ := look()
	return p, nil
}

func look() (string, bool) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, true
		}
	}
	return "", false
}
