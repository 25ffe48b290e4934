package onebot

import (
	"context"
	"fmt"
	"io"
	"net/url"

	"github.com/botfleet/botfleet/pkg/im"
)

// Open downloads a message's image or file by the URL its segment gave
// (QQ's media server); a segment without one ("onebot-file:<name>") cannot
// be fetched.
func (a *Adapter) Open(ctx context.Context, _ *im.Message, ref string) (io.ReadCloser, error) {
	u, err := url.Parse(ref)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("onebot: %q has no http(s) URL to download", ref)
	}
	return im.OpenURL(ctx, a.o.Client, ref)
}

var _ im.Downloader = (*Adapter)(nil)
