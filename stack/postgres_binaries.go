package stack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// installHint tells the reader of ErrPostgresNotFound what to do.
const installHint = "install them (Debian: apt-get install postgresql-15)"

// ErrPostgresNotFound is returned (wrapped) by StartPostgres when the
// PostgreSQL server binaries cannot be found. The error's text names where
// they were looked for and what to install.
var ErrPostgresNotFound = errors.New("PostgreSQL server binaries (initdb, postgres) not found")

// pgBinaries are the paths of the server programs, taken from one directory
// so that their versions match.
type pgBinaries struct {
	initdb   string
	postgres string
}

// findPostgresBinaries locates initdb and postgres as PostgresConfig.BinDir
// describes.
func findPostgresBinaries(binDir string) (pgBinaries, error) {
	if binDir != "" {
		if b, ok := binariesIn(binDir); ok {
			return b, nil
		}
		return pgBinaries{}, fmt.Errorf("%w in %s: %s", ErrPostgresNotFound, binDir, installHint)
	}
	var dirs []string
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
		if r, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(r))
		}
	}
	dirs = append(dirs, versionedBinDirs("/usr/lib/postgresql")...)
	for _, d := range dirs {
		if b, ok := binariesIn(d); ok {
			return b, nil
		}
	}
	return pgBinaries{}, fmt.Errorf("%w on PATH or in /usr/lib/postgresql/*/bin: %s", ErrPostgresNotFound, installHint)
}

// versionedBinDirs returns root/<version>/bin directories, newest version
// first (Debian's layout).
func versionedBinDirs(root string) []string {
	matches, _ := filepath.Glob(filepath.Join(root, "*", "bin"))
	version := func(dir string) []int {
		var v []int
		for _, part := range strings.Split(filepath.Base(filepath.Dir(dir)), ".") {
			n, err := strconv.Atoi(part)
			if err != nil {
				return nil
			}
			v = append(v, n)
		}
		return v
	}
	slices.SortFunc(matches, func(a, b string) int { return slices.Compare(version(b), version(a)) })
	return matches
}

// binariesIn returns the server programs in dir if both are there and
// executable.
func binariesIn(dir string) (pgBinaries, bool) {
	b := pgBinaries{initdb: filepath.Join(dir, "initdb"), postgres: filepath.Join(dir, "postgres")}
	for _, p := range []string{b.initdb, b.postgres} {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return pgBinaries{}, false
		}
	}
	return b, true
}
