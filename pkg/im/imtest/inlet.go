package imtest

import (
	"context"
	"sync"

	"github.com/botfleet/botfleet/pkg/im"
)

// Inlet stands where the pipeline stands behind a link's im.Conn, for tests
// of a link's frame handling alone: it records every event body handed to
// it and answers with Fail — nil queues it, an *im.Error refuses it (to be
// acknowledged and dropped), any other error is a pipeline that could not
// queue it (Redis down: left unacknowledged).
type Inlet struct {
	Fail error

	mu     sync.Mutex
	bodies [][]byte
}

// Accept records body.
func (i *Inlet) Accept(_ context.Context, _ string, body []byte) (string, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.bodies = append(i.bodies, append([]byte(nil), body...))
	if i.Fail != nil {
		return "", i.Fail
	}
	return im.OutcomeQueued, nil
}

// Bodies returns the bodies accepted so far and forgets them.
func (i *Inlet) Bodies() [][]byte {
	i.mu.Lock()
	defer i.mu.Unlock()
	b := i.bodies
	i.bodies = nil
	return b
}

// Conn returns the im.Conn a link of platform works with, feeding i.
func (i *Inlet) Conn(platform string) *im.Conn {
	return im.NewLinks(nil, i, im.LinksOptions{}).Incoming(platform)
}
