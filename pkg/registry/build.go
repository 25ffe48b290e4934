package registry

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// Build is what the binary says of itself (runtime/debug's build info).
type Build struct {
	// Version is the main module's version, "(devel)" for a local build.
	Version string `json:"version"`
	// Commit is the VCS revision it was built from, "" when the build
	// recorded none (go build -buildvcs=false, a copy without .git);
	// Modified tells uncommitted changes.
	Commit   string `json:"commit,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	// Time is the commit's time (RFC 3339), Go the toolchain.
	Time string `json:"commit_time,omitempty"`
	Go   string `json:"go"`
}

// CurrentBuild returns this binary's build information.
var CurrentBuild = sync.OnceValue(func() Build {
	b := Build{Version: "(unknown)", Go: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Version = info.Main.Version
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
})
