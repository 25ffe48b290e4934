package imtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Telegram is a fake Bot API for one bot: getUpdates long polling (a
// second poller while one is polling gets 409 Conflict, as on Telegram,
// and is counted), getMe, sendMessage, editMessageText.
type Telegram struct {
	*record
	URL   string
	token string
	user  string

	mu        sync.Mutex
	files     map[string][]byte
	edited    map[string]time.Time // message_id → its last edit
	tooFast   atomic.Int64
	updates   []pending
	confirmed int64 // every update_id below it is confirmed and dropped
	polling   int
	pushed    chan struct{}
	conflicts atomic.Int64
	nextMsg   atomic.Int64
}

type pending struct {
	id  int64
	raw json.RawMessage
}

// NewTelegram serves the Bot API of the bot with token and username until
// the test ends.
func NewTelegram(t testing.TB, token, username string) *Telegram {
	f := &Telegram{record: newRecord(), token: token, user: username, pushed: make(chan struct{}), files: map[string][]byte{}, edited: map[string]time.Time{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/bot"+token+"/getUpdates", f.getUpdates)
	mux.HandleFunc("/bot"+token+"/getMe", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"ok":true,"result":{"id":4242,"is_bot":true,"first_name":"Fleet","username":%q}}`, username)
	})
	mux.HandleFunc("/bot"+token+"/sendMessage", f.send)
	mux.HandleFunc("/bot"+token+"/getFile", f.getFile)
	mux.HandleFunc("/file/bot"+token+"/", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		data, ok := f.files[strings.TrimPrefix(r.URL.Path, "/file/bot"+token+"/files/")]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(404)
			return
		}
		w.Write(data)
	})
	mux.HandleFunc("/bot"+token+"/editMessageText", f.edit)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		io.WriteString(w, `{"ok":false,"error_code":404,"description":"Not Found"}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Push queues an update for getUpdates; id is its update_id.
func (f *Telegram) Push(id int64, update string) {
	f.mu.Lock()
	f.updates = append(f.updates, pending{id, json.RawMessage(update)})
	close(f.pushed)
	f.pushed = make(chan struct{})
	f.mu.Unlock()
}

// Message returns an update with a private text message from user.
func Message(id int64, user int64, text string) string {
	b, _ := json.Marshal(map[string]any{"update_id": id, "message": map[string]any{
		"message_id": id, "from": map[string]any{"id": user, "is_bot": false, "first_name": "U"},
		"chat": map[string]any{"id": user, "type": "private"}, "date": time.Now().Unix(), "text": text,
	}})
	return string(b)
}

// File stores a file that getFile and the file download serve by its file_id.
func (f *Telegram) File(id string, data []byte) {
	f.mu.Lock()
	f.files[id] = data
	f.mu.Unlock()
}

func (f *Telegram) getFile(w http.ResponseWriter, r *http.Request) {
	var q struct {
		FileID string `json:"file_id"`
	}
	_ = json.NewDecoder(r.Body).Decode(&q)
	f.mu.Lock()
	data, ok := f.files[q.FileID]
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(400)
		io.WriteString(w, `{"ok":false,"error_code":400,"description":"Bad Request: invalid file_id"}`)
		return
	}
	fmt.Fprintf(w, `{"ok":true,"result":{"file_id":%q,"file_unique_id":"u%s","file_size":%d,"file_path":"files/%s"}}`, q.FileID, q.FileID, len(data), q.FileID)
}

// Photo returns an update with a private photo message (and a caption)
// from user; fileIDs are the photo's sizes, largest last.
func Photo(id, user int64, caption string, fileIDs ...string) string {
	var sizes []map[string]any
	for _, fid := range fileIDs {
		sizes = append(sizes, map[string]any{"file_id": fid, "file_unique_id": "u" + fid, "width": 90, "height": 90})
	}
	b, _ := json.Marshal(map[string]any{"update_id": id, "message": map[string]any{
		"message_id": id, "from": map[string]any{"id": user, "is_bot": false, "first_name": "U"},
		"chat": map[string]any{"id": user, "type": "private"}, "date": time.Now().Unix(), "caption": caption, "photo": sizes,
	}})
	return string(b)
}

// Conflicts counts getUpdates calls answered 409 because another poller
// was polling: a bot fleet must never cause one.
func (f *Telegram) Conflicts() int64 { return f.conflicts.Load() }

// Unconfirmed counts the updates no getUpdates offset has confirmed.
func (f *Telegram) Unconfirmed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.updates)
}

func (f *Telegram) getUpdates(w http.ResponseWriter, r *http.Request) {
	var q struct {
		Offset  int64 `json:"offset"`
		Timeout int   `json:"timeout"`
	}
	_ = json.NewDecoder(r.Body).Decode(&q)
	f.mu.Lock()
	if f.polling > 0 {
		f.mu.Unlock()
		f.conflicts.Add(1)
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"ok":false,"error_code":409,"description":"Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"}`)
		return
	}
	f.polling++
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.polling--; f.mu.Unlock() }()
	timeout := time.NewTimer(time.Duration(q.Timeout) * time.Second)
	defer timeout.Stop()
	for {
		f.mu.Lock()
		if q.Offset > f.confirmed { // the offset confirms every update before it
			f.confirmed = q.Offset
			kept := f.updates[:0]
			for _, u := range f.updates {
				if u.id >= q.Offset {
					kept = append(kept, u)
				}
			}
			f.updates = kept
		}
		out, ch := make([]json.RawMessage, 0, len(f.updates)), f.pushed
		for _, u := range f.updates {
			out = append(out, u.raw)
		}
		f.mu.Unlock()
		if len(out) > 0 {
			b, _ := json.Marshal(map[string]any{"ok": true, "result": out})
			w.Write(b)
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			io.WriteString(w, `{"ok":true,"result":[]}`)
			return
		case <-r.Context().Done(): // the poller went away
			return
		}
	}
}

// TooFast counts edits of a message within half a second of its last
// one, answered 429 as Telegram's flood control would.
func (f *Telegram) TooFast() int64 { return f.tooFast.Load() }

func (f *Telegram) edit(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var b struct {
		MessageID json.Number `json:"message_id"`
	}
	_ = json.Unmarshal(raw, &b)
	f.mu.Lock()
	last, seen := f.edited[string(b.MessageID)]
	fast := seen && time.Since(last) < 500*time.Millisecond
	if !fast {
		f.edited[string(b.MessageID)] = time.Now()
	}
	f.mu.Unlock()
	if fast {
		f.tooFast.Add(1)
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}`)
		return
	}
	r.Body = io.NopCloser(strings.NewReader(string(raw)))
	f.send(w, r)
}

func (f *Telegram) send(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var b struct {
		ChatID          json.Number `json:"chat_id"`
		MessageID       json.Number `json:"message_id"`
		Text            string      `json:"text"`
		ParseMode       string      `json:"parse_mode"`
		ReplyParameters struct {
			MessageID json.Number `json:"message_id"`
		} `json:"reply_parameters"`
	}
	if err := json.Unmarshal(raw, &b); err != nil || b.ChatID == "" || b.Text == "" || len([]rune(b.Text)) > 4096 {
		w.WriteHeader(400)
		io.WriteString(w, `{"ok":false,"error_code":400,"description":"Bad Request: message text is empty or too long"}`)
		return
	}
	kind := strings.TrimPrefix(r.URL.Path[strings.LastIndexByte(r.URL.Path, '/'):], "/")
	to := string(b.ReplyParameters.MessageID)
	if kind == "editMessageText" {
		to = "edit:" + string(b.MessageID)
	}
	id := string(b.MessageID) // an edit answers with the edited message
	if kind != "editMessageText" {
		id = strconv.FormatInt(100000+f.nextMsg.Add(1), 10)
	}
	f.add(Sent{To: to, ID: id, Chat: string(b.ChatID), Text: b.Text, Kind: kind, Body: raw})
	fmt.Fprintf(w, `{"ok":true,"result":{"message_id":%s,"chat":{"id":%s},"text":%q}}`, id, b.ChatID, b.Text)
}
