//go:build !linux

package stacktest

import "os"

// clusterBaseDir returns the directory that holds the shared cluster's
// directory.
func clusterBaseDir() string { return os.TempDir() }
