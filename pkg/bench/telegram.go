package bench

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// Telegram settings of the chaos fleet's instances: the webhook's secret
// token, the bot's token (in the Bot API's paths) and its username (so no
// instance asks getMe).
const (
	telegramSecret = "chaos-secret"
	telegramToken  = "4242:chaos"
	telegramUser   = "chaos_bot"
)

// fakeTelegram is the Bot API the chaos fleet's Telegram adapter sends its
// replies to (im.telegram.api_url): sendMessage is answered as Telegram
// does and counted by the message it quotes (reply_parameters.message_id,
// the update's message_id), which is how the checker tells whether an
// event was answered once. Every other method answers ok.
type fakeTelegram struct {
	*loopbackServer

	mu      sync.Mutex
	answers map[string]int // message_id quoted -> sendMessage calls accepted
	refused map[string]int // message_id quoted -> sendMessage calls failed on purpose
	failFor int            // the first failFor sends of each message fail
	next    int64
}

// startFakeTelegram serves the fake Bot API on a free loopback port.
func startFakeTelegram() (*fakeTelegram, error) {
	f := &fakeTelegram{answers: map[string]int{}, refused: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/bot"+telegramToken+"/sendMessage", f.send)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"ok":true,"result":true}`)
	})
	var err error
	f.loopbackServer, err = serveLoopback(mux)
	return f, err
}

func (f *fakeTelegram) send(w http.ResponseWriter, r *http.Request) {
	var b struct {
		ChatID          json.Number `json:"chat_id"`
		ReplyParameters struct {
			MessageID json.Number `json:"message_id"`
		} `json:"reply_parameters"`
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.ChatID == "" {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"ok":false,"error_code":400,"description":"Bad Request: chat_id is empty"}`)
		return
	}
	msg := b.ReplyParameters.MessageID.String()
	f.mu.Lock()
	if f.refused[msg] < f.failFor {
		f.refused[msg]++
		f.mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"ok":false,"error_code":500,"description":"Internal Server Error"}`)
		return
	}
	f.answers[msg]++
	f.next++
	id := f.next
	f.mu.Unlock()
	io.WriteString(w, `{"ok":true,"result":{"message_id":`+strconv.FormatInt(id, 10)+`,"date":0,"chat":{"id":`+b.ChatID.String()+`,"type":"private"},"text":""}}`)
}

// failSends makes the first n sendMessage calls answering each message
// fail with 500 (a platform that fails the reply twice before accepting
// it: n = 2); 0 accepts every call.
func (f *fakeTelegram) failSends(n int) {
	f.mu.Lock()
	f.failFor = n
	f.mu.Unlock()
}

// refusedTotal is the number of sendMessage calls failed on purpose.
func (f *fakeTelegram) refusedTotal() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, v := range f.refused {
		n += v
	}
	return n
}

// answered returns a copy of the answers so far, by message_id.
func (f *fakeTelegram) answered() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.answers))
	for k, v := range f.answers {
		out[k] = v
	}
	return out
}

// total is the number of sendMessage calls accepted so far.
func (f *fakeTelegram) total() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.next
}

// env is the instances' Telegram settings for the fake.
func (f *fakeTelegram) env() []string {
	return []string{"BOT_IM_TELEGRAM_MODE=webhook", "BOT_IM_TELEGRAM_SECRET_TOKEN=" + telegramSecret,
		"BOT_IM_TELEGRAM_BOT_TOKEN=" + telegramToken, "BOT_IM_TELEGRAM_API_URL=" + f.url,
		"BOT_IM_TELEGRAM_BOT_USERNAME=" + telegramUser}
}
