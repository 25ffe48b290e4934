package telegram

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/botfleet/botfleet/pkg/im"
)

// Open downloads a message's photo or document ("telegram-file:<file_id>"):
// getFile for its file_path, then GET /file/bot<token>/<file_path>.
func (a *Adapter) Open(ctx context.Context, _ *im.Message, ref string) (io.ReadCloser, error) {
	id, err := im.FileKey("telegram", ref)
	if err != nil {
		return nil, err
	}
	var out struct {
		OK     bool `json:"ok"`
		Result struct {
			FilePath string `json:"file_path"`
		} `json:"result"`
		Description string `json:"description"`
	}
	status, err := im.PostJSON(ctx, a.o.Client, a.o.APIURL+"/bot"+a.o.BotToken+"/getFile", map[string]string{"file_id": id}, &out)
	if err != nil {
		return nil, a.scrub("getFile", err)
	}
	if status != http.StatusOK || !out.OK || out.Result.FilePath == "" {
		return nil, fmt.Errorf("telegram: getFile answered %d: %s", status, out.Description)
	}
	body, err := im.OpenURL(ctx, a.o.Client, a.o.APIURL+"/file/bot"+a.o.BotToken+"/"+out.Result.FilePath)
	if err != nil {
		return nil, a.scrub("file download", err)
	}
	return body, nil
}

// scrub keeps the bot token (part of every URL) out of errors and logs.
func (a *Adapter) scrub(what string, err error) error {
	return errors.New("telegram: " + what + ": " + strings.ReplaceAll(err.Error(), a.o.BotToken, "<token>"))
}

var _ im.Downloader = (*Adapter)(nil)
