package dingtalk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/botfleet/botfleet/pkg/queue"
	"github.com/google/uuid"
)

// DefaultCardContentKey is the AI card template's streamed text variable
// unless Cards is told another.
const DefaultCardContentKey = "content"

// CardEvery is the least time between two streaming updates of one AI
// card. DingTalk meters its card APIs per app (about 20 calls a second,
// shared by every card streaming at once); one update a second per card
// leaves room for a dozen replies streaming together.
const CardEvery = time.Second

// Cards is the adapter whose streamed replies (im.Finisher) are AI cards
// made from a template on DingTalk's card platform: POST
// /v1.0/card/instances/createAndDeliver makes the card in the chat (the
// robot's group or private space) with the first text, PUT
// /v1.0/card/streaming replaces the template's content variable with the
// text so far (isFull), once more with isFinalize at the end, or with
// isError when the turn failed. The card's outTrackId, the message id
// handleStreamed keeps in its draft, is derived from the event, so the
// card of an event is always the same one.
type Cards struct {
	*Adapter
	template, key string
}

// Cards returns the adapter streaming into cards of the AI card template
// (its content variable key; "" is DefaultCardContentKey). The card API
// takes the app's access token: Options.ClientID is required.
func (a *Adapter) Cards(template, key string) *Cards {
	if key == "" {
		key = DefaultCardContentKey
	}
	return &Cards{Adapter: a, template: template, key: key}
}

// OutTrackID is the AI card's id for an event: at most 64 characters of
// what DingTalk allows (letters, digits, -).
func OutTrackID(eventID string) string {
	h := sha256.Sum256([]byte("botfleet:card:" + eventID))
	return "bf-" + hex.EncodeToString(h[:20])
}

// Begin makes and delivers the card, showing text, and returns its outTrackId.
func (c *Cards) Begin(ctx context.Context, m *im.Message, text string) (string, error) {
	id := OutTrackID(m.EventID)
	robot := m.Reply["robot_code"]
	if robot == "" {
		robot = c.o.ClientID
	}
	body := map[string]any{
		"cardTemplateId": c.template, "outTrackId": id, "userIdType": 1,
		"cardData": map[string]any{"cardParamMap": map[string]string{c.key: text}},
	}
	if m.IsGroup() {
		deliver := map[string]any{"robotCode": robot}
		if staff := m.Reply["sender_staff_id"]; staff != "" {
			deliver["atUserIds"] = map[string]string{staff: m.SenderName}
		}
		body["openSpaceId"] = "dtv1.card//IM_GROUP." + m.ChatID
		body["imGroupOpenSpaceModel"] = map[string]bool{"supportForward": true}
		body["imGroupOpenDeliverModel"] = deliver
	} else {
		body["openSpaceId"] = "dtv1.card//IM_ROBOT." + m.Reply["sender_staff_id"]
		body["imRobotOpenSpaceModel"] = map[string]bool{"supportForward": true}
		body["imRobotOpenDeliverModel"] = map[string]string{"spaceType": "IM_ROBOT", "robotCode": robot}
	}
	var out struct {
		Success bool `json:"success"`
		Result  struct {
			DeliverResults []struct {
				Success  bool   `json:"success"`
				ErrorMsg string `json:"errorMsg"`
			} `json:"deliverResults"`
		} `json:"result"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1.0/card/instances/createAndDeliver", body, &out); err != nil {
		// A worker that died between DingTalk making this event's card
		// and its draft being recorded left the card behind, and DingTalk
		// refuses a second card of one outTrackId: a card that takes the
		// text is this reply's; a rate limit on that try is retried.
		if queue.IsPermanent(err) {
			if perr := c.stream(ctx, id, text, false, false); perr == nil {
				return id, nil
			} else if !queue.IsPermanent(perr) {
				return "", perr
			}
		}
		return "", err
	}
	for _, r := range out.Result.DeliverResults {
		if !r.Success {
			return "", im.Permanent(fmt.Errorf("dingtalk: the AI card was not delivered: %s", r.ErrorMsg))
		}
	}
	return id, nil
}

// Edit streams the text so far into the card.
func (c *Cards) Edit(ctx context.Context, _ *im.Message, id, text string) error {
	return c.stream(ctx, id, text, false, false)
}

// Finish streams the whole text and finalizes the card.
func (c *Cards) Finish(ctx context.Context, _ *im.Message, id, text string) error {
	return c.stream(ctx, id, text, true, false)
}

// Fail marks the card failed (DingTalk shows its error state).
func (c *Cards) Fail(ctx context.Context, _ *im.Message, id, text string) error {
	return c.stream(ctx, id, text, false, true)
}

// EditEvery is CardEvery.
func (c *Cards) EditEvery() time.Duration { return CardEvery }

// MaxText is what one card shows.
func (c *Cards) MaxText() int { return im.MaxDingTalk }

// stream is one PUT /v1.0/card/streaming: the full text, each with its own guid.
func (c *Cards) stream(ctx context.Context, id, text string, finalize, failed bool) error {
	return c.call(ctx, http.MethodPut, "/v1.0/card/streaming", map[string]any{
		"outTrackId": id, "guid": uuid.NewString(), "key": c.key, "content": text,
		"isFull": true, "isFinalize": finalize, "isError": failed,
	}, nil)
}

// call is an Open API call with the app's access token; DingTalk answers
// an error with an HTTP status and {"code","message"}, a rate limit as 403
// with a code naming QpsLimit (taken as a 429: retried).
func (c *Cards) call(ctx context.Context, method, path string, body, out any) error {
	token, err := c.accessToken(ctx)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	status, err := im.CallJSON(ctx, c.o.Client, method, c.o.APIURL+path, body, &raw, "x-acs-dingtalk-access-token", token)
	if err != nil {
		return fmt.Errorf("dingtalk: %s: %w", path, err)
	}
	if status < 300 {
		if out != nil && json.Unmarshal(raw, out) != nil {
			return fmt.Errorf("dingtalk: %s gave an undecodable answer %.200q", path, raw)
		}
		return nil
	}
	var fail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(raw, &fail)
	serr := &im.StatusError{Platform: im.DingTalk, Status: status, Code: fail.Code, Message: path + ": " + fail.Message}
	if strings.Contains(fail.Code, "QpsLimit") {
		serr.Status = http.StatusTooManyRequests
	}
	return im.ClassifyStatus(serr)
}

var _ im.Finisher = (*Cards)(nil)
