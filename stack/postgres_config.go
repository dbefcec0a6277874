package stack

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Defaults applied to a zero PostgresConfig field.
const (
	// DefaultPostgresHost is the address the server listens on when
	// PostgresConfig.Host is empty.
	DefaultPostgresHost = "127.0.0.1"
	// DefaultPostgresUser is the superuser role created by initdb when
	// PostgresConfig.User is empty.
	DefaultPostgresUser = "postgres"
	// PostgresLogFile is the file inside the data directory that receives
	// the server's output when PostgresConfig.Log is nil.
	PostgresLogFile = "postgres.log"
)

// managedSettings are server settings StartPostgres sets itself and that
// PostgresConfig.Settings may not override, because the returned URL and
// the TCP-only contract depend on them.
var managedSettings = map[string]bool{
	"port":                    true,
	"listen_addresses":        true,
	"unix_socket_directories": true,
	"data_directory":          true,
}

// PostgresConfig describes a local PostgreSQL cluster for StartPostgres. The
// zero value of every field except DataDir has a usable default.
type PostgresConfig struct {
	// DataDir is the cluster's data directory (required). A missing or empty
	// directory is initialised with initdb; an existing cluster is reused.
	// Relative paths are resolved against the working directory.
	DataDir string
	// Host is the one address the server listens on (default
	// DefaultPostgresHost). The server never opens a Unix socket.
	Host string
	// Port is the preferred TCP port. 0 means any free port; a preferred
	// port that is taken is replaced by a free one. (*Postgres).Port reports
	// the port actually used.
	Port int
	// BinDir is the directory holding initdb and postgres. Empty means: the
	// directory of initdb found on PATH (also after resolving symlinks),
	// then /usr/lib/postgresql/<version>/bin, newest version first.
	BinDir string
	// Durable selects crash-safe settings. False (for tests) turns off
	// fsync, synchronous_commit and full_page_writes, and initdb skips its
	// final sync: fast, but an OS crash or power loss may corrupt the
	// cluster. True (for dev) keeps PostgreSQL's durable defaults.
	Durable bool
	// Settings are extra server settings passed as -c name=value after the
	// ones StartPostgres sets (shared_preload_libraries=pg_stat_statements,
	// max_connections=200 and, unless Durable, the settings above), so they
	// override them. port, listen_addresses, unix_socket_directories and
	// data_directory are refused.
	Settings map[string]string
	// Log receives the output of initdb and of the server. Write errors are
	// ignored so a failing writer never blocks the server. Nil means the
	// file PostgresLogFile inside the data directory, appended to across
	// restarts and never rotated.
	Log io.Writer
	// User is the superuser role created by initdb and used in URLs
	// (default DefaultPostgresUser). Authentication is "trust": anyone who
	// can reach the port may connect as any role, so keep Host on loopback.
	// Only ASCII letters, digits and underscores are accepted.
	User string
}

// withDefaults returns c with every empty optional field set to its default.
func (c PostgresConfig) withDefaults() PostgresConfig {
	if c.Host == "" {
		c.Host = DefaultPostgresHost
	}
	if c.User == "" {
		c.User = DefaultPostgresUser
	}
	return c
}

// Validate reports every problem of c, after defaults are applied, joined
// with errors.Join; nil means StartPostgres will accept c.
func (c PostgresConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("DataDir is required"))
	}
	if c.Host == "*" || strings.ContainsAny(c.Host, ", \t\r\n") {
		errs = append(errs, fmt.Errorf("Host %q must be a single host name or IP address", c.Host))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("Port %d is outside 0..65535", c.Port))
	}
	if !validRoleName(c.User) {
		errs = append(errs, fmt.Errorf("User %q must be 1..%d ASCII letters, digits or underscores, not starting with a digit", c.User, maxIdentifierLen))
	}
	for _, name := range slices.Sorted(maps.Keys(c.Settings)) {
		switch {
		case !validSettingName(name):
			errs = append(errs, fmt.Errorf("Settings: %q is not a setting name", name))
		case managedSettings[strings.ToLower(name)]:
			errs = append(errs, fmt.Errorf("Settings: %s is set by StartPostgres and cannot be overridden", name))
		case strings.ContainsRune(c.Settings[name], 0):
			errs = append(errs, fmt.Errorf("Settings: value of %s contains a NUL byte", name))
		}
	}
	return errors.Join(errs...)
}

// validRoleName reports whether s is a role name this package accepts.
func validRoleName(s string) bool {
	if s == "" || len(s) > maxIdentifierLen || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// validSettingName reports whether s looks like a server setting name,
// including extension settings such as pg_stat_statements.track.
func validSettingName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// validateDatabaseName rejects names the server would truncate or refuse.
func validateDatabaseName(name string) error {
	if name == "" || len(name) > maxIdentifierLen || strings.ContainsRune(name, 0) {
		return fmt.Errorf("database name %q must be 1..%d bytes without NUL", name, maxIdentifierLen)
	}
	return nil
}
