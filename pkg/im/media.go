package im

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/botfleet/botfleet/pkg/llm"
)

// Attachment is an image or file received with a message, downloaded
// through the platform's API by the worker that answers it.
type Attachment struct {
	// Ref is the media reference of Message.MediaURLs it came from.
	Ref string `json:"ref"`
	// Kind is "image" or "file"; MIME its sniffed content type.
	Kind string `json:"kind"`
	MIME string `json:"mime,omitempty"`
	// Size is its length in bytes, SHA256 its digest.
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Data are the bytes, for the model's input; never queued or logged.
	Data []byte `json:"-"`
	// Error is why it was not taken: too large, a type not accepted, the
	// platform's API failed.
	Error string `json:"error,omitempty"`
}

// Downloader is an adapter that fetches a message's media through its
// platform's API. Open returns the body of the media ref names (one of
// m.MediaURLs); the pipeline bounds how much it reads.
type Downloader interface {
	Open(ctx context.Context, m *Message, ref string) (io.ReadCloser, error)
}

// MediaOptions bound what is downloaded.
type MediaOptions struct {
	// MaxBytes is the largest attachment taken. Default 10 MiB.
	MaxBytes int64
	// Types are the accepted content types (sniffed from the bytes, never
	// taken from the platform's word). Default DefaultMediaTypes.
	Types []string
}

// DefaultMediaTypes are the images a model may take as input and the
// documents it may read.
var DefaultMediaTypes = []string{"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"}

func (o *MediaOptions) setDefaults() {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 10 << 20
	}
	if len(o.Types) == 0 {
		o.Types = DefaultMediaTypes
	}
}

// fetchMedia downloads m's media into m.Attachments, size-limited and
// type-checked; a medium that cannot be taken is recorded with its reason
// and logged, and the turn goes on without it.
func (p *Pipeline) fetchMedia(ctx context.Context, m *Message, a Adapter) {
	d, ok := a.(Downloader)
	if !ok || len(m.MediaURLs) == 0 {
		return
	}
	o := p.opts.Media
	for _, ref := range m.MediaURLs {
		att := Attachment{Ref: ref, Kind: "file"}
		outcome := "refused"
		data, err := readMedia(ctx, d, m, ref, o.MaxBytes)
		if err == nil {
			att.MIME, _, _ = strings.Cut(http.DetectContentType(data), ";")
			if !slices.Contains(o.Types, att.MIME) {
				err = fmt.Errorf("type %s is not accepted (%s)", att.MIME, strings.Join(o.Types, ", "))
			}
		} else if !errors.Is(err, errTooLarge) {
			outcome = "failed"
		}
		if err != nil {
			att.Error = err.Error()
			p.m.attachments.WithLabelValues(m.Platform, outcome).Inc()
			p.log.WarnContext(ctx, "im: attachment not taken", "platform", m.Platform, "event", m.EventID, "ref", ref, "err", err)
		} else {
			p.m.attachments.WithLabelValues(m.Platform, "taken").Inc()
			sum := sha256.Sum256(data)
			att.Data, att.Size, att.SHA256 = data, int64(len(data)), hex.EncodeToString(sum[:])
			if strings.HasPrefix(att.MIME, "image/") {
				att.Kind = "image"
			}
		}
		m.Attachments = append(m.Attachments, att)
	}
}

var errTooLarge = errors.New("larger than the limit")

func readMedia(ctx context.Context, d Downloader, m *Message, ref string, limit int64) ([]byte, error) {
	body, err := d.Open(ctx, m, ref)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w of %d bytes", errTooLarge, limit)
	}
	return buf.Bytes(), nil
}

// turnText is the message as memory keeps it and the model reads it: its
// text, and a line naming the attachments (the images themselves go to a
// model that takes them, see images). The line names what the event named,
// not what the download gave, so that a job run again asks the same turn.
func (m *Message) turnText() string {
	if len(m.MediaURLs) == 0 {
		return m.Text
	}
	lines := []string{}
	if m.Text != "" {
		lines = append(lines, m.Text)
	}
	lines = append(lines, fmt.Sprintf("[the user sent %d attachment(s)]", len(m.MediaURLs)))
	return strings.Join(lines, "\n")
}

// images are the attachments downloaded as images, for the model's input.
func (m *Message) images() []llm.Image {
	var out []llm.Image
	for _, a := range m.Attachments {
		if a.Kind == "image" && a.Error == "" && len(a.Data) > 0 {
			out = append(out, llm.Image{MIME: a.MIME, Data: a.Data})
		}
	}
	return out
}

// FileKey is the key in a platform's file reference ref,
// "<platform>-file:<key>" (see Message.MediaURLs), or an error when ref is
// not one of the platform's.
func FileKey(platform, ref string) (string, error) {
	key, ok := strings.CutPrefix(ref, platform+"-file:")
	if !ok {
		return "", fmt.Errorf("%s: %q is not a %s file reference", platform, ref, platform)
	}
	return key, nil
}

// OpenURL GETs a media URL with the headers (name, value pairs) and
// returns its body; an answer other than 200 is an error.
func OpenURL(ctx context.Context, c *http.Client, url string, headers ...string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("download answered %d", resp.StatusCode)
	}
	return resp.Body, nil
}
