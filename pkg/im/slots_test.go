package im

import (
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// The pipeline's script (the owner-checked release of a send mark) runs on
// a real Cluster and keeps to one slot, beside a whole job's other
// commands: the queue, the chat turn, the send mark.
func TestScriptsStayOnOneSlot(t *testing.T) {
	c := testenv.StartCluster(t, testenv.ClusterOptions{})
	rdb := c.Client()
	check := testenv.CheckSlots(t, rdb)
	testReRunAfterAFailedSend(t, rdb)
	if !check.Ran(releaseScript.Hash()) {
		t.Error("the release script never ran on the Cluster")
	}
}
