//go:build linux

package chromiumtest_test

import (
	"os/exec"
	"testing"

	"github.com/tokenledger/tokenledger/internal/testkit/chromiumtest"
)

// TestFindReturnsARunnableBrowser: Find gives a binary that answers
// --version, installing the package when it is missing.
func TestFindReturnsARunnableBrowser(t *testing.T) {
	p := chromiumtest.Find(t)
	out, err := exec.Command(p, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v: %s", p, err, out)
	}
	t.Logf("%s: %s", p, out)
}
