package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/botfleet/botfleet/pkg/keyspace"
	"github.com/redis/go-redis/v9"
)

// DefaultPollTimeout is getUpdates' long-poll timeout.
const DefaultPollTimeout = 25 * time.Second

// Poller is long polling (im.telegram.mode: stream) as an im.Link:
// getUpdates with the offset kept in Redis, so that a poller on another
// instance continues where a dead one stopped. Telegram serves one
// getUpdates poller per bot (a second gets 409 Conflict), so run it with
// the im.One policy; its context ends before its lease can lapse, so two
// instances never poll at once.
//
// An update is confirmed to Telegram (the next getUpdates' offset passes
// it) only after the pipeline queued it: a poller that dies first leaves
// the offset behind, the next one gets the update again and the fleet-wide
// dedup drops what was already queued.
//
// Key: <prefix>:im:telegram:offset:<bot id> = the next update_id to ask for.
type Poller struct {
	a       *Adapter
	rdb     redis.UniversalClient
	key     string
	timeout time.Duration
	client  *http.Client
}

// Poller returns the adapter's long-polling link. timeout 0 is
// DefaultPollTimeout.
func (a *Adapter) Poller(rdb redis.UniversalClient, prefix string, timeout time.Duration) *Poller {
	if timeout <= 0 {
		timeout = DefaultPollTimeout
	}
	if prefix == "" {
		prefix = keyspace.DefaultPrefix
	}
	bot, _, _ := strings.Cut(a.o.BotToken, ":")
	return &Poller{a: a, rdb: rdb, key: prefix + ":im:telegram:offset:" + bot, timeout: timeout,
		client: &http.Client{Timeout: timeout + 15*time.Second}}
}

// Platform is "telegram".
func (p *Poller) Platform() string { return im.Telegram }

// advanceScript: KEYS offset; ARGV next. Moves the offset forward only.
var advanceScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
`)

// Offset returns the next update_id the fleet asks for (0 before any).
func (p *Poller) Offset(ctx context.Context) (int64, error) {
	v, err := p.rdb.Get(ctx, p.key).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

// Run polls until ctx ends or a call fails.
func (p *Poller) Run(ctx context.Context, c *im.Conn) error {
	connected := false
	for {
		offset, err := p.Offset(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("telegram: read the offset: %w", err)
		}
		updates, err := p.getUpdates(ctx, offset)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if !connected {
			connected = true
			c.Connected()
		}
		next := offset
		for _, raw := range updates {
			var u struct {
				UpdateID json.Number `json:"update_id"`
			}
			id, ierr := "", json.Unmarshal(raw, &u)
			if ierr == nil {
				id, ierr = im.IntID(u.UpdateID)
			}
			n, _ := strconv.ParseInt(id, 10, 64)
			if ierr != nil || id == "" {
				c.Logger().Warn("telegram: an update without an integer update_id; skipped", "update", string(raw))
				continue
			}
			if _, err := c.Accept(ctx, raw); im.IsTemporary(err) {
				break // not queued: leave it unconfirmed, Telegram sends it again
			}
			next = max(next, n+1)
		}
		if next > offset {
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			err := advanceScript.Run(wctx, p.rdb, []string{p.key}, next).Err()
			cancel()
			if err != nil {
				return fmt.Errorf("telegram: store the offset: %w", err)
			}
		}
	}
}

// getUpdates is one long poll from offset.
func (p *Poller) getUpdates(ctx context.Context, offset int64) ([]json.RawMessage, error) {
	body, _ := json.Marshal(map[string]any{"offset": offset, "timeout": int(p.timeout.Seconds()), "allowed_updates": []string{"message"}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.a.o.APIURL+"/bot"+p.a.o.BotToken+"/getUpdates", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("telegram: getUpdates: %s", strings.ReplaceAll(err.Error(), p.a.o.BotToken, "<token>"))
	}
	defer resp.Body.Close()
	var out struct {
		OK          bool              `json:"ok"`
		Result      []json.RawMessage `json:"result"`
		ErrorCode   int               `json:"error_code"`
		Description string            `json:"description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("telegram: getUpdates answered %d with no JSON: %w", resp.StatusCode, err)
	}
	if resp.StatusCode == http.StatusConflict {
		return nil, fmt.Errorf("telegram: getUpdates: 409 %s (another poller runs for this bot, or a webhook is set: deleteWebhook first)", out.Description)
	}
	if resp.StatusCode != http.StatusOK || !out.OK {
		return nil, &im.StatusError{Platform: im.Telegram, Status: resp.StatusCode, Code: strconv.Itoa(out.ErrorCode), Message: out.Description}
	}
	return out.Result, nil
}

var _ im.Link = (*Poller)(nil)
