package bench

import (
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// tcpProxy forwards loopback TCP connections to an upstream (an instance's
// way to Redis) and injects network faults into them: a delay on every
// chunk each way, a share of chunks delayed further as a lost segment's
// retransmission would be, or a partition (nothing goes through; new
// connections are accepted and held, as packets that are dropped).
type tcpProxy struct {
	l        net.Listener
	upstream string

	mu        sync.Mutex
	delay     time.Duration
	loss      float64 // share of chunks that wait an extra retransmit
	partition bool
	conns     map[net.Conn]struct{}
	changed   chan struct{} // closed when the faults change
}

// retransmit is what a lost segment costs: Linux's minimum RTO.
const retransmit = 200 * time.Millisecond

// startProxy listens on a free loopback port and forwards to upstream.
func startProxy(upstream string) (*tcpProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &tcpProxy{l: l, upstream: upstream, conns: map[net.Conn]struct{}{}, changed: make(chan struct{})}
	go p.serve()
	return p, nil
}

// port is the proxy's port.
func (p *tcpProxy) port() int { return p.l.Addr().(*net.TCPAddr).Port }

// set changes the faults; zero values are a healthy network.
func (p *tcpProxy) set(delay time.Duration, loss float64, partition bool) {
	p.mu.Lock()
	p.delay, p.loss, p.partition = delay, loss, partition
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// faults returns the current faults and a channel closed when they change.
func (p *tcpProxy) faults() (time.Duration, float64, bool, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay, p.loss, p.partition, p.changed
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *tcpProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	p.mu.Unlock()
}

func (p *tcpProxy) handle(c net.Conn) {
	p.track(c, true)
	defer p.track(c, false)
	defer c.Close()
	// A partition holds a new connection until it heals.
	for {
		_, _, part, changed := p.faults()
		if !part {
			break
		}
		<-changed
	}
	up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		return
	}
	p.track(up, true)
	defer p.track(up, false)
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, c); done <- struct{}{} }()
	go func() { p.pipe(c, up); done <- struct{}{} }()
	<-done
}

// pipe copies src to dst chunk by chunk, in order, each chunk held for the
// current delay (plus a retransmit with probability loss) and not at all
// while partitioned.
func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			for {
				delay, loss, part, changed := p.faults()
				if part {
					<-changed
					continue
				}
				if loss > 0 && rand.Float64() < loss {
					delay += retransmit
				}
				time.Sleep(delay) // the injected network delay itself
				break
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or a closed connection: the other side's close follows
		}
	}
}

// stop closes the listener and every connection.
func (p *tcpProxy) stop() {
	p.l.Close()
	p.set(0, 0, false) // release held connections
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}
