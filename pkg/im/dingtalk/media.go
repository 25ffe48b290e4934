package dingtalk

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
)

// accessToken is the app's access token, kept until shortly before it
// expires (DingTalk hands out several valid ones, so each instance keeps
// its own).
type accessToken struct {
	mu      sync.Mutex
	token   string
	expires time.Time
}

func (a *Adapter) accessToken(ctx context.Context) (string, error) {
	a.token.mu.Lock()
	defer a.token.mu.Unlock()
	if a.token.token != "" && a.o.Now().Before(a.token.expires) {
		return a.token.token, nil
	}
	var out struct {
		AccessToken string `json:"accessToken"`
		ExpireIn    int64  `json:"expireIn"`
		Message     string `json:"message"`
	}
	status, err := im.PostJSON(ctx, a.o.Client, a.o.APIURL+"/v1.0/oauth2/accessToken",
		map[string]string{"appKey": a.o.ClientID, "appSecret": a.o.AppSecret}, &out)
	if err != nil {
		return "", fmt.Errorf("dingtalk: access token: %w", err)
	}
	if status != http.StatusOK || out.AccessToken == "" {
		return "", fmt.Errorf("dingtalk: access token: %d %s (check im.dingtalk.client_id)", status, out.Message)
	}
	a.token.token, a.token.expires = out.AccessToken, a.o.Now().Add(time.Duration(out.ExpireIn)*time.Second*9/10)
	return out.AccessToken, nil
}

// Open downloads a received picture or file ("dingtalk-file:<downloadCode>"):
// POST /v1.0/robot/messageFiles/download with the robot code gives a
// short-lived downloadUrl, which is then fetched.
func (a *Adapter) Open(ctx context.Context, m *im.Message, ref string) (io.ReadCloser, error) {
	code, ok := strings.CutPrefix(ref, "dingtalk-file:")
	if !ok {
		return nil, fmt.Errorf("dingtalk: %q is not a DingTalk download code", ref)
	}
	token, err := a.accessToken(ctx)
	if err != nil {
		return nil, err
	}
	var out struct {
		DownloadURL string `json:"downloadUrl"`
		Message     string `json:"message"`
	}
	status, err := im.PostJSON(ctx, a.o.Client, a.o.APIURL+"/v1.0/robot/messageFiles/download",
		map[string]string{"downloadCode": code, "robotCode": m.Reply["robot_code"]}, &out, "x-acs-dingtalk-access-token", token)
	if err != nil {
		return nil, fmt.Errorf("dingtalk: messageFiles/download: %w", err)
	}
	if status != http.StatusOK || out.DownloadURL == "" {
		return nil, fmt.Errorf("dingtalk: messageFiles/download answered %d: %s", status, out.Message)
	}
	return im.OpenURL(ctx, a.o.Client, out.DownloadURL)
}

var _ im.Downloader = (*Adapter)(nil)
