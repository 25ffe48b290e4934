package feishu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/redis/go-redis/v9"
)

// ElementID is the markdown element of a CardKit card that the reply streams into.
const ElementID = "reply"

// cardTTL is how long the fleet keeps a CardKit card's id per event and
// its sequence: longer than any one reply streams (a job's retries end
// within the dedup window's first hours).
const cardTTL = 24 * time.Hour

// CardKit is the adapter whose streamed replies (im.Finisher) are CardKit
// streaming cards, Feishu's typewriter cards for AI replies:
//
//  1. POST /open-apis/cardkit/v1/cards makes a card entity (JSON 2.0,
//     streaming_mode on, one markdown element ElementID); its card_id is
//     kept in Redis per event (<prefix>:im:feishu:card:<uuid>) before the
//     card is sent, so a job reclaimed after the reply went out streams
//     into that card, not a new one nobody sees.
//  2. The reply POSTs {"type":"card","data":{"card_id":…}} as an
//     interactive message, with the event's uuid as Begin does for PATCH
//     cards; the card_id is the draft's message id.
//  3. PUT …/cards/:card_id/elements/reply/content sends the full text so
//     far; Feishu types out what was added.
//  4. Finish sends the whole text and PATCHes …/cards/:card_id/settings to
//     turn streaming_mode off.
//
// Every operation on a card carries a sequence Feishu requires to grow:
// it is INCR of <prefix>:im:feishu:seq:<card_id> in Redis, so it goes on
// growing when another instance takes the reply over (the send lease lets
// one worker stream at a time; a late call of a worker that lost it is
// refused by Feishu as out of order, and harmless).
type CardKit struct{ *Adapter }

// CardKit returns the adapter streaming into CardKit cards.
func (a *Adapter) CardKit() *CardKit { return &CardKit{a} }

// Begin makes the card entity (or takes the event's, made before),
// sends it as the reply and returns its card_id.
func (c *CardKit) Begin(ctx context.Context, m *im.Message, text string) (string, error) {
	uuid := UUID(m.EventID + "#stream")
	key := c.o.Prefix + ":im:feishu:card:" + uuid
	id, err := c.o.Redis.Get(ctx, key).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("%w: %w", im.ErrUnavailable, err)
	}
	if id == "" {
		if id, err = c.create(ctx, text, mentionOf(m)); err != nil {
			return "", err
		}
		if err := c.o.Redis.Set(ctx, key, id, cardTTL).Err(); err != nil {
			return "", fmt.Errorf("%w: %w", im.ErrUnavailable, err)
		}
	}
	content, _ := json.Marshal(map[string]any{"type": "card", "data": map[string]string{"card_id": id}})
	_, err = c.api(ctx, http.MethodPost, "/open-apis/im/v1/messages/"+url.PathEscape(m.Reply["message_id"])+"/reply",
		map[string]string{"msg_type": "interactive", "content": string(content), "uuid": uuid})
	return id, err
}

// create makes a streaming card entity showing text.
func (c *CardKit) create(ctx context.Context, text, mention string) (string, error) {
	card, _ := json.Marshal(map[string]any{
		"schema": "2.0",
		"config": map[string]any{"streaming_mode": true, "update_multi": true},
		"body": map[string]any{"elements": []map[string]string{
			{"tag": "markdown", "element_id": ElementID, "content": withMention(text, mention)},
		}},
	})
	return c.apiID(ctx, http.MethodPost, "/open-apis/cardkit/v1/cards", map[string]string{"type": "card_json", "data": string(card)}, "card_id")
}

// Edit streams the full text so far into the card's element.
func (c *CardKit) Edit(ctx context.Context, m *im.Message, id, text string) error {
	seq, err := c.sequence(ctx, id)
	if err != nil {
		return err
	}
	_, err = c.api(ctx, http.MethodPut, "/open-apis/cardkit/v1/cards/"+url.PathEscape(id)+"/elements/"+ElementID+"/content",
		map[string]any{"content": withMention(text, mentionOf(m)), "sequence": seq})
	return err
}

// Finish streams the whole text, then turns the card's streaming mode off.
func (c *CardKit) Finish(ctx context.Context, m *im.Message, id, text string) error {
	if err := c.Edit(ctx, m, id, text); err != nil {
		return err
	}
	return c.Fail(ctx, m, id, text)
}

// Fail turns the card's streaming mode off, leaving what it shows.
func (c *CardKit) Fail(ctx context.Context, _ *im.Message, id, _ string) error {
	seq, err := c.sequence(ctx, id)
	if err != nil {
		return err
	}
	settings, _ := json.Marshal(map[string]any{"config": map[string]bool{"streaming_mode": false}})
	_, err = c.api(ctx, http.MethodPatch, "/open-apis/cardkit/v1/cards/"+url.PathEscape(id)+"/settings",
		map[string]any{"settings": string(settings), "sequence": seq})
	return err
}

// sequence is the card's next operation number, fleet-wide.
func (c *CardKit) sequence(ctx context.Context, id string) (int64, error) {
	key := c.o.Prefix + ":im:feishu:seq:" + id
	var incr *redis.IntCmd
	_, err := c.o.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, key)
		p.Expire(ctx, key, cardTTL)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("%w: the card's sequence: %w", im.ErrUnavailable, err)
	}
	return incr.Val(), nil
}

// EditEvery keeps well under CardKit's 10 operations a second on one card
// (Finish makes two).
func (c *CardKit) EditEvery() time.Duration { return 250 * time.Millisecond }

var _ im.Finisher = (*CardKit)(nil)
