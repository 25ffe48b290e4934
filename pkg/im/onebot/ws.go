package onebot

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/coder/websocket"
)

// Forward is OneBot v11's forward WebSocket as an im.Link: the bot dials
// the implementation's WebSocket server — the universal endpoint (events
// and API calls on one socket) or the split /event and /api endpoints —
// with the access token. Every connected client gets every event, so with
// the im.Every policy each instance holds its own socket and the fleet's
// dedup answers each event once; a reply goes out over the instance's own
// socket, or is relayed (see Adapter.Send).
type Forward struct {
	a     *Adapter
	url   string
	split bool
}

// Forward returns the adapter's forward WebSocket link to url (ws:// or
// wss://); split dials url/event and url/api.
func (a *Adapter) Forward(url string, split bool) *Forward {
	return &Forward{a: a, url: strings.TrimRight(url, "/"), split: split}
}

// Platform is "onebot".
func (f *Forward) Platform() string { return im.OneBot }

func (f *Forward) dial(ctx context.Context, path string) (*websocket.Conn, error) {
	h := http.Header{}
	if f.a.o.AccessToken != "" {
		h.Set("Authorization", "Bearer "+f.a.o.AccessToken)
	}
	c, resp, err := websocket.Dial(ctx, f.url+path, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return nil, fmt.Errorf("onebot: %s%s refused the access token (%d): set im.onebot.access_token to the implementation's", f.url, path, resp.StatusCode)
		}
		return nil, fmt.Errorf("onebot: dial %s%s: %w", f.url, path, err)
	}
	return c, nil
}

// Run holds the socket(s) until ctx ends or one breaks.
func (f *Forward) Run(ctx context.Context, c *im.Conn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	apiPath, eventPath := "", ""
	if f.split {
		apiPath, eventPath = "/api", "/event"
	}
	apiConn, err := f.dial(ctx, apiPath)
	if err != nil {
		return err
	}
	api := newSocket(apiConn)
	defer apiConn.CloseNow()
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	run := func(s *socket) {
		wg.Go(func() { errs <- s.read(ctx, c); cancel() })
	}
	run(api)
	if f.split {
		evConn, err := f.dial(ctx, eventPath)
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		defer evConn.CloseNow()
		run(newSocket(evConn))
	}
	self, err := f.a.selfID(ctx, api)
	if err != nil {
		cancel()
		wg.Wait()
		return err
	}
	f.a.hold(ctx, self, api, c)
	c.Connected()
	wg.Wait()
	err = <-errs
	if ctx.Err() != nil && err == nil {
		apiConn.Close(websocket.StatusNormalClosure, "bot stopping")
	}
	return err
}

// selfID asks the implementation for the bot account (get_login_info).
func (a *Adapter) selfID(ctx context.Context, s *socket) (string, error) {
	r, err := s.call(ctx, "get_login_info", map[string]any{})
	if err != nil {
		return "", err
	}
	var info struct {
		UserID json.Number `json:"user_id"`
	}
	if err := im.DecodeNumbers(r.Data, &info); err != nil || r.RetCode != 0 {
		return "", fmt.Errorf("onebot: get_login_info answered retcode %d: %s", r.RetCode, r.Message)
	}
	id, err := im.IntID(info.UserID)
	if err != nil || id == "" {
		return "", fmt.Errorf("onebot: get_login_info gave no user_id: %s", r.Data)
	}
	return id, nil
}

// hold makes s this instance's API socket for self until ctx ends, and
// serves calls relayed from other instances over it.
func (a *Adapter) hold(ctx context.Context, self string, s *socket, c *im.Conn) {
	a.socks.add(self, s)
	context.AfterFunc(ctx, func() { a.socks.remove(self, s) })
	if a.o.Redis != nil {
		go a.serveRelay(ctx, self, s, c.Logger())
	}
}

// Reverse returns the handler of OneBot v11's reverse WebSocket
// (/onebot/v11/ws): the implementation dials the fleet with its access
// token (Authorization: Bearer or Token, or ?access_token=), its account in
// X-Self-ID and X-Client-Role Universal, Event or API. Its events go to the
// pipeline through c; its API socket serves this instance's replies and
// those relayed from the others. Close ends every reverse socket.
func (a *Adapter) Reverse(c *im.Conn) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.reverseTokenOK(r) {
			httpError(w, http.StatusUnauthorized, "invalid_token", "the access token is missing or wrong (im.onebot.access_token)")
			return
		}
		self, err := im.IntID(json.Number(r.Header.Get("X-Self-ID")))
		if err != nil || self == "" {
			httpError(w, http.StatusBadRequest, "invalid_request", "X-Self-ID must be the bot account's QQ number")
			return
		}
		role := strings.ToLower(r.Header.Get("X-Client-Role"))
		if role == "" {
			role = "universal"
		}
		if role != "universal" && role != "event" && role != "api" {
			httpError(w, http.StatusBadRequest, "invalid_request", "X-Client-Role must be Universal, Event or API")
			return
		}
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			c.Logger().Warn("onebot: reverse WebSocket upgrade failed", "err", err)
			return
		}
		defer conn.CloseNow()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		// A drain ends the read (which first collects the answers of the
		// calls in flight), and then the socket, so that the implementation
		// reconnects to another instance.
		stop := context.AfterFunc(a.closing, cancel)
		defer stop()
		s := newSocket(conn)
		if role != "event" {
			a.hold(ctx, self, s, c)
		}
		c.Connected()
		c.Logger().Info("onebot: reverse WebSocket connected", "self_id", self, "role", role, "remote", r.RemoteAddr)
		if err := s.read(ctx, c); err != nil {
			c.Logger().Warn("onebot: reverse WebSocket ended", "self_id", self, "err", err)
		}
		if a.closing.Err() != nil {
			conn.Close(websocket.StatusGoingAway, "bot instance draining")
		}
		c.Disconnected()
	})
}

func (a *Adapter) reverseTokenOK(r *http.Request) bool {
	got := r.URL.Query().Get("access_token")
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "Token") {
			got = strings.TrimSpace(tok)
		}
	}
	return a.o.AccessToken != "" && subtle.ConstantTimeCompare([]byte(got), []byte(a.o.AccessToken)) == 1
}

func httpError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	w.Write(b)
}

var _ im.Link = (*Forward)(nil)
