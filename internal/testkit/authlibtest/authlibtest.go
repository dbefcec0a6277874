//go:build linux

// Package authlibtest gives tests a Python interpreter that can run Authlib
// (https://authlib.org), a widely used third-party OAuth 2 client, so that
// tokenledger's RFC 7009 and RFC 7662 endpoints are tested with what real
// clients send rather than with forms written by hand.
//
//	python := authlibtest.Python(t)
//	out, err := exec.Command(python, "testdata/client.py", ...).Output()
//
// The interpreter is Debian's /usr/bin/python3 with Debian's python3-authlib
// and python3-requests (Authlib's requests client needs the latter, which
// the former does not depend on). When they are missing, Python installs
// them with apt-get (package debpkg); when that is impossible it fails the
// test naming the packages. It never skips. A Python of another
// distribution (pyenv, a virtualenv) first in PATH is not used: it cannot
// see Debian's packages.
//
// The package is for tests only.
package authlibtest

import (
	"os/exec"
	"sync"
	"testing"

	"github.com/tokenledger/tokenledger/internal/debpkg"
)

// Interpreter is the Python that Debian's python3-* packages install for.
const Interpreter = "/usr/bin/python3"

// packages are the Debian packages Python installs when Authlib's requests
// client cannot be imported.
var packages = []string{"python3-authlib", "python3-requests"}

// importCheck is the Python that must run for the client to be usable.
const importCheck = "import authlib, requests\nfrom authlib.integrations.requests_client import OAuth2Session"

var found struct {
	once sync.Once
	err  error
}

// Python returns Interpreter once it can import Authlib's requests client,
// installing python3-authlib and python3-requests first if needed (once per test process). It fails tb
// when they cannot be installed.
func Python(tb testing.TB) string {
	tb.Helper()
	found.once.Do(func() {
		if importable() {
			return
		}
		found.err = debpkg.Install(importable, packages...)
	})
	if found.err != nil {
		tb.Fatalf("authlibtest: Authlib's OAuth 2 client for %s is missing: %v", Interpreter, found.err)
	}
	return Interpreter
}

// importable reports whether Interpreter imports Authlib's requests client.
func importable() bool {
	return exec.Command(Interpreter, "-c", importCheck).Run() == nil
}
