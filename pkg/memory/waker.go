package memory

import (
	"sync"

	"github.com/redis/go-redis/v9"
)

// waker delivers the scripts' PUBLISHed wake-ups (a ticket that became the
// head, or a request key that finished) to the goroutines waiting on them
// in this process. A lost wake-up only costs a poll interval: waiters
// always wait with a timeout and then ask Redis again.
type waker struct {
	mu      sync.Mutex
	waiting map[string]chan struct{}
	ps      *redis.PubSub
}

func newWaker(ps *redis.PubSub) *waker {
	w := &waker{waiting: make(map[string]chan struct{}), ps: ps}
	go w.run(ps.Channel())
	return w
}

func (w *waker) run(msgs <-chan *redis.Message) {
	for m := range msgs {
		w.mu.Lock()
		c := w.waiting[m.Payload]
		w.mu.Unlock()
		if c != nil {
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}
}

// register returns the channel that is signalled when key is published.
func (w *waker) register(key string) chan struct{} {
	c := make(chan struct{}, 1)
	w.mu.Lock()
	w.waiting[key] = c
	w.mu.Unlock()
	return c
}

func (w *waker) unregister(key string) {
	w.mu.Lock()
	delete(w.waiting, key)
	w.mu.Unlock()
}

func (w *waker) close() error { return w.ps.Close() }
