package imtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The DingTalk fake's AI cards: POST /v1.0/oauth2/accessToken hands out
// the app's access token; POST /v1.0/card/instances/createAndDeliver makes
// a card of CardTemplate in a robot's private or group space, its sends
// filed under the outTrackId (To, and "edit:<outTrackId>" for updates); PUT
// /v1.0/card/streaming streams the template's CardKey variable. Payloads
// are checked against DingTalk's documented fields and types; a second
// card of one outTrackId is refused and counted (Recreated); an update
// after the card ended, or a call without the access token, is a
// violation (Problems). Streaming updates of one
// card closer than CardGap, or more than 20 a second for the app, are
// refused with DingTalk's QpsLimit 403 and counted (TooFast).

const dtToken = "dt-access-token"

// CardGap is the least time the fake accepts between two streaming
// updates of one AI card.
const CardGap = 800 * time.Millisecond

// Card is an AI card as the fake holds it.
type Card struct {
	OutTrackID, Space string
	// Text is what its content variable shows.
	Text string
	// Updates counts the streaming calls taken; Finalized and Errored
	// those that ended the card.
	Updates, Finalized, Errored int
	last                        time.Time
}

func (f *DingTalk) token(w http.ResponseWriter, r *http.Request) {
	var b struct{ AppKey, AppSecret string }
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.AppKey != f.id || b.AppSecret != f.sec {
		w.WriteHeader(400)
		io.WriteString(w, `{"code":"invalidClientIdOrSecret","message":"appKey or appSecret is wrong"}`)
		return
	}
	fmt.Fprintf(w, `{"accessToken":%q,"expireIn":7200}`, dtToken)
}

// dtFail answers a card call with DingTalk's error shape.
func dtFail(w http.ResponseWriter, status int, code, msg string) {
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"code": code, "message": msg, "requestid": "req-fake"})
	w.Write(b)
}

// cardBody decodes a card call's body after checking its access token;
// a problem is answered (and recorded) and ok is false.
func (f *DingTalk) cardBody(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	if r.Header.Get("x-acs-dingtalk-access-token") != dtToken {
		f.violation("%s %s without the access token", r.Method, r.URL.Path)
		dtFail(w, 401, "InvalidAuthentication", "不合法的access_token")
		return nil, false
	}
	var b map[string]any
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		f.violation("%s %s: body is not a JSON object: %v", r.Method, r.URL.Path, err)
		dtFail(w, 400, "InvalidParameter", "body")
		return nil, false
	}
	return b, true
}

// fields checks that body's fields have their documented JSON types
// (string, bool, number, object); a missing one is an error when required.
func fields(body map[string]any, required bool, types map[string]string) error {
	for name, want := range types {
		v, ok := body[name]
		if !ok {
			if required {
				return fmt.Errorf("%s is required", name)
			}
			continue
		}
		got := "object"
		switch v.(type) {
		case string:
			got = "string"
		case bool:
			got = "bool"
		case float64:
			got = "number"
		case []any:
			got = "array"
		}
		if got != want {
			return fmt.Errorf("%s is a %s, want a %s", name, got, want)
		}
	}
	return nil
}

func (f *DingTalk) createAndDeliver(w http.ResponseWriter, r *http.Request) {
	b, ok := f.cardBody(w, r)
	if !ok {
		return
	}
	bad := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		f.violation("createAndDeliver: %s", msg)
		dtFail(w, 400, "InvalidParameter", msg)
	}
	if err := fields(b, true, map[string]string{"cardTemplateId": "string", "outTrackId": "string", "cardData": "object", "openSpaceId": "string"}); err != nil {
		bad("%v", err)
		return
	}
	if err := fields(b, false, map[string]string{"userIdType": "number", "callbackType": "string",
		"imGroupOpenSpaceModel": "object", "imRobotOpenSpaceModel": "object", "imGroupOpenDeliverModel": "object", "imRobotOpenDeliverModel": "object"}); err != nil {
		bad("%v", err)
		return
	}
	if b["cardTemplateId"] != f.CardTemplate {
		dtFail(w, 400, "param.cardTemplateId.notExist", "the card template does not exist")
		f.violation("createAndDeliver: unknown template %v", b["cardTemplateId"])
		return
	}
	params, _ := b["cardData"].(map[string]any)["cardParamMap"].(map[string]any)
	for k, v := range params {
		if _, ok := v.(string); !ok {
			bad("cardData.cardParamMap.%s is not a string", k)
			return
		}
	}
	space := b["openSpaceId"].(string)
	kind, _, _ := strings.Cut(strings.TrimPrefix(space, "dtv1.card//"), ".")
	switch {
	case !strings.HasPrefix(space, "dtv1.card//"):
		bad("openSpaceId %q is not dtv1.card//<spaceType>.<spaceId>", space)
		return
	case kind == "IM_ROBOT":
		model, _ := b["imRobotOpenDeliverModel"].(map[string]any)
		if model["spaceType"] != "IM_ROBOT" {
			bad("an IM_ROBOT space needs imRobotOpenDeliverModel.spaceType IM_ROBOT")
			return
		}
	case kind == "IM_GROUP":
		model, _ := b["imGroupOpenDeliverModel"].(map[string]any)
		if robot, _ := model["robotCode"].(string); robot == "" {
			bad("an IM_GROUP space needs imGroupOpenDeliverModel.robotCode")
			return
		}
	default:
		bad("openSpaceId space type %q is neither IM_ROBOT nor IM_GROUP", kind)
		return
	}
	id := b["outTrackId"].(string)
	text, _ := params[f.CardKey].(string)
	f.mu.Lock()
	_, dup := f.cards[id]
	if !dup {
		f.cards[id] = &Card{OutTrackID: id, Space: space, Text: text}
	}
	f.mu.Unlock()
	if dup {
		f.recreated.Add(1)
		dtFail(w, 400, "param.outTrackIdExists", "outTrackId "+id+" already has a card")
		return
	}
	raw, _ := json.Marshal(b)
	f.add(Sent{To: id, ID: id, Chat: space, Text: text, Kind: "card", Body: raw})
	fmt.Fprintf(w, `{"success":true,"result":{"outTrackId":%q,"deliverResults":[{"spaceType":%q,"spaceId":"s","success":true,"carrierId":"c-%s"}]}}`, id, kind, id)
}

func (f *DingTalk) streaming(w http.ResponseWriter, r *http.Request) {
	b, ok := f.cardBody(w, r)
	if !ok {
		return
	}
	if err := fields(b, true, map[string]string{"outTrackId": "string", "guid": "string", "key": "string", "content": "string",
		"isFull": "bool", "isFinalize": "bool", "isError": "bool"}); err != nil {
		f.violation("card/streaming: %v", err)
		dtFail(w, 400, "InvalidParameter", err.Error())
		return
	}
	id, text := b["outTrackId"].(string), b["content"].(string)
	final, failed := b["isFinalize"].(bool), b["isError"].(bool)
	now := time.Now()
	f.mu.Lock()
	c := f.cards[id]
	var problem string
	switch {
	case c == nil:
		problem = "no card " + id
	case b["key"] != f.CardKey:
		problem = fmt.Sprintf("key %v is not the template's streamed variable %s", b["key"], f.CardKey)
	case f.guids[b["guid"].(string)]:
		problem = "guid repeated"
	case c.Finalized+c.Errored > 0:
		problem = "an update of card " + id + " after it ended"
	}
	fast := problem == "" && (now.Sub(c.last) < CardGap || !f.appQuota(now))
	if problem == "" && !fast {
		f.guids[b["guid"].(string)] = true
		c.last, c.Updates = now, c.Updates+1
		if b["isFull"].(bool) {
			c.Text = text
		} else {
			c.Text += text
		}
		if final {
			c.Finalized++
		}
		if failed {
			c.Errored++
		}
	}
	if c != nil {
		text = c.Text
	}
	f.mu.Unlock()
	switch {
	case problem != "":
		f.violation("card/streaming: %s", problem)
		dtFail(w, 400, "InvalidParameter", problem)
		return
	case fast:
		f.tooFast.Add(1)
		dtFail(w, 403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", "Throttled by QPS limit")
		return
	}
	kind := "streaming"
	if final {
		kind = "finalize"
	} else if failed {
		kind = "error"
	}
	raw, _ := json.Marshal(b)
	f.add(Sent{To: "edit:" + id, ID: id, Chat: c.Space, Text: text, Kind: kind, Body: raw})
	io.WriteString(w, `{"success":true,"result":true}`)
}

// appQuota takes one of the app's 20 card calls a second, under f.mu.
func (f *DingTalk) appQuota(now time.Time) bool {
	kept := f.calls[:0]
	for _, t := range f.calls {
		if now.Sub(t) < time.Second {
			kept = append(kept, t)
		}
	}
	f.calls = kept
	if len(f.calls) >= 20 {
		return false
	}
	f.calls = append(f.calls, now)
	return true
}

// Cards returns the AI cards made so far.
func (f *DingTalk) Cards() []Card {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Card
	for _, c := range f.cards {
		out = append(out, *c)
	}
	return out
}

// TooFast counts streaming updates refused for coming too fast.
func (f *DingTalk) TooFast() int64 { return f.tooFast.Load() }

// Recreated counts the createAndDeliver calls refused because their
// outTrackId already had a card.
func (f *DingTalk) Recreated() int64 { return f.recreated.Load() }
