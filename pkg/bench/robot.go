package bench

import (
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/botfleet/botfleet/pkg/healthcheck"
)

// robotSecret signs the health checker's alerts to the fake robot.
const robotSecret = "chaos-robot-secret"

// fakeRobot is a DingTalk custom robot webhook (POST /robot/send?
// access_token=…&timestamp=…&sign=…, a {"msgtype":"text"} body) that
// checks the signature as DingTalk does — HMAC-SHA256 of "timestamp\n
// secret", at most an hour old — and records every text message it
// accepts; a bad signature gets DingTalk's errcode 310000.
type fakeRobot struct {
	*loopbackServer
	mu       sync.Mutex
	messages []robotMessage
	refused  int
}

// robotMessage is one accepted alert.
type robotMessage struct {
	At   time.Time
	Text string
}

func startFakeRobot() (*fakeRobot, error) {
	f := &fakeRobot{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /robot/send", f.send)
	var err error
	f.loopbackServer, err = serveLoopback(mux)
	return f, err
}

// webhook is the URL the health checker posts to.
func (f *fakeRobot) webhook() string { return f.url + "/robot/send?access_token=chaos" }

func (f *fakeRobot) send(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ts, err := strconv.ParseInt(q.Get("timestamp"), 10, 64)
	age := time.Since(time.UnixMilli(ts))
	var b struct {
		MsgType string `json:"msgtype"`
		Text    struct {
			Content string `json:"content"`
		} `json:"text"`
	}
	derr := json.NewDecoder(r.Body).Decode(&b)
	if err != nil || age > time.Hour || age < -time.Hour ||
		!hmac.Equal([]byte(q.Get("sign")), []byte(healthcheck.DingTalkSign(robotSecret, ts))) || derr != nil || b.MsgType != "text" {
		f.mu.Lock()
		f.refused++
		f.mu.Unlock()
		io.WriteString(w, `{"errcode":310000,"errmsg":"sign not match"}`)
		return
	}
	f.mu.Lock()
	f.messages = append(f.messages, robotMessage{At: time.Now(), Text: b.Text.Content})
	f.mu.Unlock()
	io.WriteString(w, `{"errcode":0,"errmsg":"ok"}`)
}

// received returns the alerts accepted so far and the refused count.
func (f *fakeRobot) received() ([]robotMessage, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]robotMessage(nil), f.messages...), f.refused
}
