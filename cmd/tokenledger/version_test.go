package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A binary built from a git checkout, as `go install …/cmd/tokenledger@<commit>`
// or `go build` there builds it, prints the commit it was built from in
// `tokenledger version` and `--version`. The test needs the repository to
// be a git checkout and fails, saying so, when it is not.
func TestVersionPrintsTheCommit(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	git := func(dir string, args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("the repository at %s must be a git checkout for this test: git %s: %v: %s", root, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	head := git(root, "rev-parse", "HEAD")
	dir := root
	if fi, err := os.Stat(filepath.Join(root, ".git")); err != nil || !fi.IsDir() {
		// A linked worktree (git worktree add) has a .git file, which the
		// go command does not take for a checkout: it stamps no revision.
		// Build the same commit from a clone, as go install @commit would.
		dir = filepath.Join(t.TempDir(), "src")
		git(root, "clone", "--quiet", "--no-checkout", root, dir)
		git(dir, "checkout", "--quiet", head)
	}
	bin := filepath.Join(t.TempDir(), "tokenledger")
	build := exec.Command("go", "build", "-o", bin, "./cmd/tokenledger")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=true")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in %s: %v: %s", dir, err, out)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "tokenledger ") || !strings.Contains(string(out), "revision "+head) {
			t.Errorf("tokenledger %s: %v, %q; want the revision %s", args[0], err, out, head)
		}
	}
	// make build stamps the version, as git describe tells it.
	stamped := exec.Command("go", "build", "-ldflags", "-X github.com/tokenledger/tokenledger/version.stamped=v9.8.7-test", "-o", bin, "./cmd/tokenledger")
	stamped.Dir = dir
	if out, err := stamped.CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags: %v: %s", err, out)
	}
	if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "tokenledger v9.8.7-test (") {
		t.Errorf("a stamped binary: %v, %q", err, out)
	}
}
