package version

import (
	"runtime/debug"
	"testing"
)

// The version comes from the build information, a stamp overrides it, and
// a program embedding tokenledger reports tokenledger's module version.
func TestFromBuildInfo(t *testing.T) {
	t.Parallel()
	built := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: modulePath, Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}}
	installed := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: modulePath, Version: "v1.2.3"}}
	embedded := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "example.com/app", Version: "(devel)"},
		Deps:     []*debug.Module{{Path: modulePath, Version: "v1.4.0"}},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "the app's"}}}
	for _, tt := range []struct {
		name       string
		bi         *debug.BuildInfo
		stamp, rev string
		want       Info
		wantString string
	}{
		{"a build in a checkout", built, "", "", Info{Version: "devel", Revision: "abc123", Modified: true, GoVersion: "go1.26.0"}, "devel (revision abc123, modified, go1.26.0)"},
		{"go install @version", installed, "", "", Info{Version: "v1.2.3", GoVersion: "go1.26.0"}, "v1.2.3 (go1.26.0)"},
		{"stamped by make", built, "v1.2.3-4-gabc123-dirty", "", Info{Version: "v1.2.3-4-gabc123-dirty", Revision: "abc123", Modified: true, GoVersion: "go1.26.0"}, ""},
		{"embedded as a library", embedded, "", "", Info{Version: "v1.4.0", GoVersion: "go1.26.0"}, ""},
	} {
		got := fromBuildInfo(tt.bi, true, tt.stamp, tt.rev)
		if got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
		if tt.wantString != "" && got.String() != tt.wantString {
			t.Errorf("%s: %q, want %q", tt.name, got.String(), tt.wantString)
		}
	}
	if got := fromBuildInfo(nil, false, "", ""); got.Version != "devel" || got.GoVersion == "" {
		t.Errorf("without build information: %+v", got)
	}
}
