package im

import (
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// A whole job — the queue, the chat turn, the send mark's lease (pkg/lease)
// — runs on a real Cluster with every script and multi-key command on one
// slot (CheckSlots fails the test otherwise).
func TestScriptsStayOnOneSlot(t *testing.T) {
	c := testenv.StartCluster(t, testenv.ClusterOptions{})
	rdb := c.Client()
	testenv.CheckSlots(t, rdb)
	testReRunAfterAFailedSend(t, rdb)
}
