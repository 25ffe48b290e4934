package fleet

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/mockllm"
)

// trapLLM is the OpenAI-compatible mock backend (pkg/mockllm) in the test
// process, with a trap: the first chat completion whose messages contain
// Trigger is held, and the pid of the bot process that sent it is reported
// on Caught, until Release is closed or the caller goes away. So a test can
// kill the very instance that is in the middle of a turn.
type trapLLM struct {
	URL     string // base URL for MODEL_ENDPOINT, ".../v1"
	Trigger string
	Pids    func() []int // the candidate callers
	Caught  chan int
	Release chan struct{}

	mock  *mockllm.Server
	armed chan struct{} // holds one token while the trap is armed
	port  int
}

func startTrapLLM(t *testing.T, latency time.Duration, trigger string) *trapLLM {
	t.Helper()
	l := &trapLLM{
		Trigger: trigger, Caught: make(chan int, 1), Release: make(chan struct{}),
		mock:  mockllm.New(mockllm.Options{Faults: mockllm.Faults{Latency: latency}, Seed: 1}),
		armed: make(chan struct{}, 1),
	}
	l.armed <- struct{}{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.port = ln.Addr().(*net.TCPAddr).Port
	l.URL = fmt.Sprintf("http://127.0.0.1:%d/v1", l.port)
	srv := &http.Server{Handler: l}
	go srv.Serve(ln)
	t.Cleanup(func() {
		select {
		case <-l.Release:
		default:
			close(l.Release)
		}
		srv.Close()
	})
	return l
}

func (l *trapLLM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if bytes.Contains(body, []byte(l.Trigger)) {
		select {
		case <-l.armed:
			pid := l.caller(r.RemoteAddr)
			l.Caught <- pid
			select {
			case <-l.Release:
			case <-r.Context().Done(): // the caller died
				return
			}
		default:
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	l.mock.ServeHTTP(w, r)
}

// caller finds which of l.Pids() owns the client end of the connection
// from remote (127.0.0.1:port): the socket's inode from /proc/net/tcp, then
// the process holding that inode among its file descriptors.
func (l *trapLLM) caller(remote string) int {
	_, p, _ := net.SplitHostPort(remote)
	port, _ := strconv.Atoi(p)
	want := fmt.Sprintf("0100007F:%04X", port)
	peer := fmt.Sprintf("0100007F:%04X", l.port)
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0
	}
	defer f.Close()
	inode := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 9 && fs[1] == want && fs[2] == peer {
			inode = fs[9]
			break
		}
	}
	if inode == "" {
		return 0
	}
	target := "socket:[" + inode + "]"
	for _, pid := range l.Pids() {
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
		for _, fd := range fds {
			if link, err := os.Readlink(fd); err == nil && link == target {
				return pid
			}
		}
	}
	return 0
}
