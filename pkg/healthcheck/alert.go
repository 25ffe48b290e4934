package healthcheck

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// AlertEvent is what an alert tells: a target was marked failed.
type AlertEvent struct {
	// Target is the target's name.
	Target string `json:"target"`
	// State is its new state (failed).
	State State `json:"state"`
	// Message is a human-readable summary.
	Message string `json:"message"`
	// Restarts is how many restarts happened within Window.
	Restarts int `json:"restarts"`
	// Window is the budget window.
	Window string `json:"window"`
	// Time is when the target was marked failed.
	Time time.Time `json:"time"`
}

// alerter logs alerts at Error and posts them to the webhook.
type alerter struct {
	logger *slog.Logger
	client *http.Client
	mu     sync.Mutex
	cfg    Alert
	wg     sync.WaitGroup
}

func newAlerter(cfg Alert, logger *slog.Logger, client *http.Client) *alerter {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &alerter{cfg: cfg, logger: logger, client: client}
}

func (a *alerter) setConfig(cfg Alert) {
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
}

// fire logs ev and posts it to the webhook in the background (up to three
// attempts); wait waits for the posts under way.
func (a *alerter) fire(ev AlertEvent) {
	a.logger.Error("ALERT: "+ev.Message, "target", ev.Target, "state", string(ev.State),
		"restarts_in_window", ev.Restarts, "window", ev.Window)
	a.mu.Lock()
	cfg := a.cfg
	a.mu.Unlock()
	if cfg.Webhook == "" {
		return
	}
	a.wg.Go(func() {
		// Three attempts, 500ms then 1s apart.
		b := &backoff.ExponentialBackOff{InitialInterval: 500 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second}
		_, err := backoff.Retry(context.Background(), func() (struct{}, error) { return struct{}{}, a.post(cfg, ev) },
			backoff.WithBackOff(b), backoff.WithMaxTries(3))
		if err != nil {
			a.logger.Error("alert webhook failed", "target", ev.Target, "kind", cfg.Kind, "err", err)
			return
		}
		a.logger.Info("alert sent", "target", ev.Target, "kind", cfg.Kind)
	})
}

func (a *alerter) wait() { a.wg.Wait() }

func (a *alerter) post(cfg Alert, ev AlertEvent) error {
	u, body, err := alertRequest(cfg, ev, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alert: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("alert: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return fmt.Errorf("alert: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	// The robots answer 200 with an error code in the body.
	var r struct {
		ErrCode *int   `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
		Code    *int   `json:"code"`
		Msg     string `json:"msg"`
	}
	if json.Unmarshal(b, &r) == nil {
		if r.ErrCode != nil && *r.ErrCode != 0 {
			return fmt.Errorf("alert: robot errcode %d: %s", *r.ErrCode, r.ErrMsg)
		}
		if r.Code != nil && *r.Code != 0 {
			return fmt.Errorf("alert: robot code %d: %s", *r.Code, r.Msg)
		}
	}
	return nil
}

// alertRequest returns the URL and JSON body of ev in cfg.Kind's format,
// signed at now when cfg.Secret is set.
func alertRequest(cfg Alert, ev AlertEvent, now time.Time) (string, []byte, error) {
	text := fmt.Sprintf("[botfleet healthchecker] %s", ev.Message)
	var body any
	target := cfg.Webhook
	switch cfg.Kind {
	case AlertDingTalk:
		if cfg.Secret != "" {
			ts := now.UnixMilli()
			u, err := url.Parse(cfg.Webhook)
			if err != nil {
				return "", nil, fmt.Errorf("alert: webhook: %w", err)
			}
			q := u.Query()
			q.Set("timestamp", strconv.FormatInt(ts, 10))
			q.Set("sign", DingTalkSign(cfg.Secret, ts))
			u.RawQuery = q.Encode()
			target = u.String()
		}
		body = map[string]any{"msgtype": "text", "text": map[string]string{"content": text}}
	case AlertFeishu:
		m := map[string]any{"msg_type": "text", "content": map[string]string{"text": text}}
		if cfg.Secret != "" {
			ts := now.Unix()
			m["timestamp"] = strconv.FormatInt(ts, 10)
			m["sign"] = FeishuSign(cfg.Secret, ts)
		}
		body = m
	default:
		body = ev
	}
	b, err := json.Marshal(body)
	if err != nil {
		return "", nil, fmt.Errorf("alert: %w", err)
	}
	return target, b, nil
}

// DingTalkSign returns the DingTalk robot signature of timestamp tsMillis:
// base64(HMAC-SHA256(key=secret, message=tsMillis+"\n"+secret)), to be sent
// URL-encoded as &sign= beside &timestamp=.
func DingTalkSign(secret string, tsMillis int64) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(tsMillis, 10) + "\n" + secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// FeishuSign returns the Feishu robot signature of timestamp tsSeconds:
// base64(HMAC-SHA256(key=tsSeconds+"\n"+secret, empty message)), sent as
// the body's "sign" beside "timestamp".
func FeishuSign(secret string, tsSeconds int64) string {
	mac := hmac.New(sha256.New, []byte(strconv.FormatInt(tsSeconds, 10)+"\n"+secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
