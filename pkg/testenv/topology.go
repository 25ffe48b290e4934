package testenv

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// Topology is a running Redis deployment: a standalone server (*Redis), a
// Cluster or a Sentinel set.
type Topology interface {
	// Name is "standalone", "cluster" or "sentinel".
	Name() string
	// UniversalClient returns a client of the deployment, closed when the
	// test ends.
	UniversalClient() redis.UniversalClient
	// Env is a bot instance's configuration for the deployment.
	Env() map[string]string
}

// Topologies are the deployments the topology tests run on: a standalone
// server, a 3-master Cluster, and a Sentinel set of a master, a replica
// and three sentinels.
var Topologies = []string{"standalone", "cluster", "sentinel"}

// StartTopology starts the named deployment of Topologies.
func StartTopology(t testing.TB, name string) Topology {
	t.Helper()
	switch name {
	case "standalone":
		return StartRedis(t)
	case "cluster":
		return StartCluster(t, ClusterOptions{})
	case "sentinel":
		return StartSentinel(t, SentinelOptions{})
	}
	t.Fatalf("testenv: unknown topology %q, want one of %v", name, Topologies)
	return nil
}

// EachTopology runs test as a subtest on each of Topologies, each on a
// deployment of its own (see Suite for tests that can share one).
func EachTopology(t *testing.T, test func(t *testing.T, top Topology)) {
	t.Helper()
	for _, name := range Topologies {
		t.Run(name, func(t *testing.T) { test(t, StartTopology(t, name)) })
	}
}

// TopologyTest is one test of a Suite.
type TopologyTest struct {
	Name string
	Run  func(t *testing.T, top Topology)
}

// Suite starts each of Topologies once and runs every test on it as a
// subtest, <topology>/<test>. The tests share the deployment, so each must
// use keys of its own.
func Suite(t *testing.T, tests ...TopologyTest) {
	t.Helper()
	for _, name := range Topologies {
		t.Run(name, func(t *testing.T) {
			top := StartTopology(t, name)
			for _, tc := range tests {
				t.Run(tc.Name, func(t *testing.T) { tc.Run(t, top) })
			}
		})
	}
}
