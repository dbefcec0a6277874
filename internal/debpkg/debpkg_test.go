//go:build linux

package debpkg

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestDenyServiceStarts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		existing []byte // nil: no policy file before
		mode     os.FileMode
	}{
		{"a policy file that was there is put back with its mode", []byte("#!/bin/sh\nexit 0\n"), 0o644},
		{"a policy file that was not there is removed", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "policy-rc.d")
			if tt.existing != nil {
				if err := os.WriteFile(path, tt.existing, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			restore, err := denyServiceStarts(path)
			if err != nil {
				t.Fatal(err)
			}
			err = exec.Command(path, "some-service", "start").Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 101 {
				t.Errorf("running the policy: %v, want exit status 101 (action forbidden)", err)
			}
			if err := restore(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if tt.existing == nil {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("after restore: read error %v, want the file gone", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.existing) {
				t.Errorf("after restore: %q (%v), want %q", got, err, tt.existing)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tt.mode {
				t.Errorf("after restore: mode %v, want %v", fi.Mode().Perm(), tt.mode)
			}
		})
	}
}
