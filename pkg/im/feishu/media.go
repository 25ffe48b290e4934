package feishu

import (
	"context"
	"io"
	"net/url"

	"github.com/botfleet/botfleet/pkg/im"
)

// Open downloads a message's image ("feishu-file:<image_key>") with GET
// /open-apis/im/v1/messages/:message_id/resources/:file_key?type=image.
func (a *Adapter) Open(ctx context.Context, m *im.Message, ref string) (io.ReadCloser, error) {
	key, err := im.FileKey("feishu", ref)
	if err != nil {
		return nil, err
	}
	token, err := a.token(ctx, false)
	if err != nil {
		return nil, err
	}
	u := a.o.BaseURL + "/open-apis/im/v1/messages/" + url.PathEscape(m.Reply["message_id"]) + "/resources/" + url.PathEscape(key) + "?type=image"
	return im.OpenURL(ctx, a.o.Client, u, "Authorization", "Bearer "+token)
}

var _ im.Downloader = (*Adapter)(nil)
