// Package version tells which build of tokenledger is running: its
// version, the commit it was built from and the Go release that built it.
//
// The version comes from the Go toolchain's build information (the module
// version of `go install github.com/tokenledger/tokenledger/cmd/tokenledger@v1.2.3`,
// the VCS revision of a build in a git checkout), unless the build stamps
// it with
//
//	go build -ldflags "-X github.com/tokenledger/tokenledger/version.stamped=v1.2.3-4-gabcdef0"
//
// as `make build` does with `git describe --always --dirty`.
package version

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// modulePath is tokenledger's module, found in the build information of
// a program that embeds it as a library.
const modulePath = "github.com/tokenledger/tokenledger"

// stamped and stampedRevision are set with -ldflags -X; empty means "read
// the build information".
var (
	stamped         string
	stampedRevision string
)

// Info describes the running build.
type Info struct {
	// Version is the stamped version, else the module's version, else
	// "devel" for a build from a checkout without a module version.
	Version string `json:"version"`
	// Revision is the commit the binary was built from ("" if unknown).
	Revision string `json:"revision,omitempty"`
	// Modified reports that the checkout had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the Go release that built the binary ("go1.26.0").
	GoVersion string `json:"go_version"`
}

// String is "v1.2.3 (revision abcdef…, modified, go1.26.0)".
func (i Info) String() string {
	s := i.Version + " ("
	if i.Revision != "" {
		s += "revision " + i.Revision + ", "
		if i.Modified {
			s += "modified, "
		}
	}
	return s + i.GoVersion + ")"
}

// Get returns the running build's Info. It is safe for concurrent use and
// cheap after the first call.
func Get() Info { return get() }

var get = sync.OnceValue(func() Info {
	bi, ok := debug.ReadBuildInfo()
	return fromBuildInfo(bi, ok, stamped, stampedRevision)
})

// fromBuildInfo makes the Info of a build from its build information and
// what -ldflags stamped.
func fromBuildInfo(bi *debug.BuildInfo, ok bool, stamp, stampRev string) Info {
	info := Info{Version: "devel", GoVersion: runtime.Version()}
	if ok {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		mod := bi.Main
		if mod.Path != modulePath {
			for _, dep := range bi.Deps {
				if dep.Path == modulePath {
					mod = *dep
				}
			}
		}
		if mod.Path == modulePath && mod.Version != "" && mod.Version != "(devel)" {
			info.Version = mod.Version
		}
		if mod.Path == bi.Main.Path {
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					info.Revision = s.Value
				case "vcs.modified":
					info.Modified = s.Value == "true"
				}
			}
		}
	}
	if stamp != "" {
		info.Version = stamp
	}
	if stampRev != "" {
		info.Revision = stampRev
	}
	return info
}
