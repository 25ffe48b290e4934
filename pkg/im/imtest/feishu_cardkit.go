package imtest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// The Feishu fake's CardKit: POST /open-apis/cardkit/v1/cards makes a card
// entity from card JSON 2.0; a reply {"type":"card","data":{"card_id"}}
// sends it (once: a card entity is sent at most once); PUT
// …/cards/:card_id/elements/:element_id/content streams a markdown
// element's text while streaming_mode is on; PATCH …/cards/:card_id/settings
// changes the config. Each call's sequence must be above the card's last
// one (else code 300317, counted in OutOfOrder); more than 10 operations a
// second on one card are refused (99991400, counted in TooFast). Bodies
// are checked against the documented fields; what breaks a rule is a
// violation (Problems). Content updates are filed as "edit:<message_id>"
// of the message the card went out as.

// CardKitCard is a CardKit card entity as the fake holds it.
type CardKitCard struct {
	ID, MessageID string
	// Elements are the markdown elements' text by element_id.
	Elements map[string]string
	// Streaming is streaming_mode; Closes counts the settings calls that
	// turned it off; Sequences are the sequences taken, in order.
	Streaming bool
	Closes    int
	Sequences []int64
	ops       []time.Time
}

var elementID = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,19}$`)

// fsAnswer writes Feishu's {"code","msg","data"} answer.
func fsAnswer(w http.ResponseWriter, code int, msg string, data any) {
	b, _ := json.Marshal(map[string]any{"code": code, "msg": msg, "data": data})
	w.Write(b)
}

// refuse records a violation and answers it as Feishu does: 400 with code and msg.
func (f *Feishu) refuse(w http.ResponseWriter, code int, msg, format string, args ...any) {
	f.violation(format, args...)
	w.WriteHeader(400)
	fsAnswer(w, code, msg, nil)
}

// authorized checks the tenant token, answering when it is wrong.
func (f *Feishu) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") == "Bearer t-fake" {
		return true
	}
	w.WriteHeader(400)
	fsAnswer(w, 99991663, "Invalid access token for authorization.", nil)
	return false
}

func (f *Feishu) createCard(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(w, r) {
		return
	}
	var b struct {
		Type string  `json:"type"`
		Data *string `json:"data"`
	}
	var card struct {
		Schema string `json:"schema"`
		Config struct {
			StreamingMode bool  `json:"streaming_mode"`
			UpdateMulti   *bool `json:"update_multi"`
		} `json:"config"`
		Body struct {
			Elements []map[string]any `json:"elements"`
		} `json:"body"`
	}
	bad := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		f.refuse(w, 99992402, "field validation failed: "+msg, "cardkit/v1/cards: %s", msg)
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.Data == nil {
		bad("type and data (a string) are required")
		return
	}
	if b.Type != "card_json" {
		bad("type %q: only card_json is made here", b.Type)
		return
	}
	if err := json.Unmarshal([]byte(*b.Data), &card); err != nil || card.Schema != "2.0" {
		bad("data is not card JSON 2.0 (schema \"2.0\"): %v", err)
		return
	}
	if u := card.Config.UpdateMulti; u != nil && !*u {
		bad("update_multi false (an exclusive card) is not supported")
		return
	}
	c := &CardKitCard{Elements: map[string]string{}, Streaming: card.Config.StreamingMode}
	for _, el := range card.Body.Elements {
		id, _ := el["element_id"].(string)
		if id != "" && !elementID.MatchString(id) {
			bad("element_id %q: letters, digits and _, a letter first, at most 20", id)
			return
		}
		if el["tag"] == "markdown" && id != "" {
			c.Elements[id], _ = el["content"].(string)
		}
	}
	f.mu.Lock()
	c.ID = strconv.FormatInt(7355372766134157000+f.seq.Add(1), 10)
	f.kitCards[c.ID] = c
	f.mu.Unlock()
	fsAnswer(w, 0, "success", map[string]string{"card_id": c.ID})
}

// cardRef is the card_id of a reply that sends a card entity, "" for other content.
func cardRef(content string) string {
	var ref struct {
		Type string `json:"type"`
		Data struct {
			CardID string `json:"card_id"`
		} `json:"data"`
	}
	if json.Unmarshal([]byte(content), &ref) != nil || ref.Type != "card" {
		return ""
	}
	return ref.Data.CardID
}

// sendCard files the card entity cardID as sent in message id, returning
// its text; ok is false (and a violation recorded) when it cannot be.
func (f *Feishu) sendCard(cardID, messageID string) (text string, ok bool) {
	f.mu.Lock()
	c := f.kitCards[cardID]
	problem := ""
	switch {
	case c == nil:
		problem = "reply with card_id " + cardID + ": no such card entity"
	case c.MessageID != "":
		problem = "card entity " + cardID + " sent a second time"
	default:
		c.MessageID = messageID
		for _, t := range c.Elements {
			text = t
		}
	}
	f.mu.Unlock()
	if problem != "" {
		f.violation("%s", problem)
		return "", false
	}
	return text, true
}

// cardOp checks one operation on a card: that it exists, its sequence
// grows and the card's rate limit holds, answering when it does not; it
// returns the card, under f.mu (the caller unlocks).
func (f *Feishu) cardOp(w http.ResponseWriter, id string, seq int64) *CardKitCard {
	f.mu.Lock()
	c := f.kitCards[id]
	now := time.Now()
	switch {
	case c == nil:
		f.mu.Unlock()
		f.refuse(w, 300301, "card not found", "an operation on card %s, which does not exist", id)
		return nil
	case len(c.Sequences) > 0 && seq <= c.Sequences[len(c.Sequences)-1]:
		last := c.Sequences[len(c.Sequences)-1]
		f.mu.Unlock()
		f.outOfOrder.Add(1)
		f.refuse(w, 300317, "sequence number compare failed", "card %s: sequence %d after %d", id, seq, last)
		return nil
	}
	kept := c.ops[:0]
	for _, t := range c.ops {
		if now.Sub(t) < time.Second {
			kept = append(kept, t)
		}
	}
	if c.ops = kept; len(c.ops) >= 10 {
		f.mu.Unlock()
		f.tooFast.Add(1)
		fsAnswer(w, 99991400, "request trigger frequency limit", nil)
		return nil
	}
	c.ops = append(c.ops, now)
	c.Sequences = append(c.Sequences, seq)
	return c
}

// cardBody is the body of an update of a card: its element's content or
// its settings, and the operation's sequence.
type cardBody struct {
	Content  *string `json:"content"`
	Settings *string `json:"settings"`
	Sequence *int64  `json:"sequence"`
}

// cardUpdate takes an authorized update of card card_id whose body has
// a sequence and what ok checks — else it is refused, required naming
// what must be there — and checks the operation (cardOp). It returns the
// raw body, the body and the card, under f.mu; a nil card when it
// answered the call.
func (f *Feishu) cardUpdate(w http.ResponseWriter, r *http.Request, required string, ok func(*cardBody) bool) ([]byte, *cardBody, *CardKitCard) {
	if !f.authorized(w, r) {
		return nil, nil, nil
	}
	raw, _ := io.ReadAll(r.Body)
	var b cardBody
	if json.Unmarshal(raw, &b) != nil || b.Sequence == nil || !ok(&b) {
		f.refuse(w, 99992402, "field validation failed", "%s and sequence (an int) are required: %s", required, raw)
		return nil, nil, nil
	}
	return raw, &b, f.cardOp(w, r.PathValue("card_id"), *b.Sequence)
}

func (f *Feishu) elementContent(w http.ResponseWriter, r *http.Request) {
	raw, b, c := f.cardUpdate(w, r, "elements/content: content (a string)", func(b *cardBody) bool { return b.Content != nil })
	if c == nil {
		return
	}
	el := r.PathValue("element_id")
	_, exists := c.Elements[el]
	streaming, msg := c.Streaming, c.MessageID
	if exists && streaming {
		c.Elements[el] = *b.Content
	}
	f.mu.Unlock()
	switch {
	case !exists:
		f.refuse(w, 300302, "element not found", "elements/content: card %s has no markdown element %s", r.PathValue("card_id"), el)
		return
	case !streaming:
		f.refuse(w, 300309, "streaming mode is closed", "elements/content: card %s is not in streaming mode", r.PathValue("card_id"))
		return
	}
	f.add(Sent{To: "edit:" + msg, ID: msg, Chat: r.PathValue("card_id"), Text: *b.Content, Kind: "content", Body: raw})
	fsAnswer(w, 0, "success", map[string]any{})
}

func (f *Feishu) cardSettings(w http.ResponseWriter, r *http.Request) {
	var settings struct {
		Config *struct {
			StreamingMode *bool `json:"streaming_mode"`
		} `json:"config"`
	}
	raw, _, c := f.cardUpdate(w, r, "cards/settings: settings (a JSON string)", func(b *cardBody) bool {
		return b.Settings != nil && json.Unmarshal([]byte(*b.Settings), &settings) == nil
	})
	if c == nil {
		return
	}
	closes := settings.Config != nil && settings.Config.StreamingMode != nil && !*settings.Config.StreamingMode
	if closes {
		c.Streaming = false
		c.Closes++
	}
	msg := c.MessageID
	f.mu.Unlock()
	f.add(Sent{To: "settings:" + msg, ID: msg, Chat: r.PathValue("card_id"), Kind: "settings", Body: raw})
	fsAnswer(w, 0, "success", map[string]any{})
}

// CardKitCards returns the card entities made so far.
func (f *Feishu) CardKitCards() []CardKitCard {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []CardKitCard
	for _, c := range f.kitCards {
		cp := *c
		cp.Sequences, cp.ops, cp.Elements = append([]int64(nil), c.Sequences...), nil, maps.Clone(c.Elements)
		out = append(out, cp)
	}
	return out
}

// OutOfOrder counts card operations refused for a sequence not above the card's last.
func (f *Feishu) OutOfOrder() int64 { return f.outOfOrder.Load() }
