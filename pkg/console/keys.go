package console

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/botfleet/botfleet/pkg/auth"
	"github.com/botfleet/botfleet/pkg/ratelimit"
	"github.com/go-json-experiment/json"
	"github.com/labstack/echo/v4"
)

// Keys is the managed API keys' store; *auth.Store is one.
type Keys interface {
	List(ctx context.Context) ([]*auth.Key, error)
	Get(ctx context.Context, id string) (*auth.Key, error)
	Create(ctx context.Context, spec auth.Spec) (string, *auth.Key, error)
	Revoke(ctx context.Context, id string) (*auth.Key, auth.Propagation, error)
	Rotate(ctx context.Context, id string, grace time.Duration) (string, *auth.Key, auth.Propagation, error)
	RevokeToken(ctx context.Context, jti string, exp time.Time) (auth.Propagation, error)
}

// Quotas reads a key's quota use; *ratelimit.Limiter is one.
type Quotas interface {
	Usage(ctx context.Context, id string) (ratelimit.Usage, error)
}

// maxKeyBodyBytes bounds the body of a key write.
const maxKeyBodyBytes = 16 << 10

// keySpec is the body of POST /admin/api/keys.
type keySpec struct {
	Name      string      `json:"name"`
	Owner     string      `json:"owner"`
	ExpiresIn string      `json:"expires_in"`
	AllowIPs  []string    `json:"allow_ips"`
	Models    []string    `json:"models"`
	Limits    auth.Limits `json:"limits"`
}

func (k keySpec) spec() (auth.Spec, error) {
	ttl, err := auth.ParseDuration(k.ExpiresIn)
	if err != nil {
		return auth.Spec{}, errBadRequest.With("expires_in: " + err.Error())
	}
	return auth.Spec{Name: k.Name, Owner: k.Owner, TTL: ttl, AllowIPs: k.AllowIPs, Models: k.Models, Limits: k.Limits}, nil
}

// keyView is a key with its quota use, as the console and botctl show it.
// Its tenant is its id.
type keyView struct {
	*auth.Key
	Usage *ratelimit.Usage `json:"usage,omitempty"`
}

func (c *Console) keyView(ctx context.Context, k *auth.Key) keyView {
	v := keyView{Key: k}
	if c.opts.Quotas != nil {
		if u, err := c.opts.Quotas.Usage(ctx, k.ID); err == nil {
			v.Usage = &u
		}
	}
	return v
}

// keys is the store, or why this instance has none.
func (c *Console) keys() (Keys, error) {
	if c.opts.Keys == nil {
		return nil, errNotHere
	}
	return c.opts.Keys, nil
}

// keyRead answers with what get reads from the keys' store.
func (c *Console) keyRead(ec echo.Context, get func(ctx context.Context, store Keys) (any, error)) error {
	store, err := c.keys()
	if err != nil {
		return err
	}
	return read(ec, func(ctx context.Context) (any, error) { return get(ctx, store) })
}

// handleKeys is GET /admin/api/keys: every key, revoked ones included,
// oldest first.
func (c *Console) handleKeys() echo.HandlerFunc {
	return func(ec echo.Context) error {
		return c.keyRead(ec, func(ctx context.Context, store Keys) (any, error) {
			keys, err := store.List(ctx)
			if err != nil {
				return nil, err
			}
			out := make([]keyView, len(keys))
			for i, k := range keys {
				out[i] = c.keyView(ctx, k)
			}
			return map[string]any{"keys": out}, nil
		})
	}
}

// handleKey is GET /admin/api/keys/:id.
func (c *Console) handleKey() echo.HandlerFunc {
	return func(ec echo.Context) error {
		return c.keyRead(ec, func(ctx context.Context, store Keys) (any, error) {
			k, err := store.Get(ctx, ec.Param("id"))
			if err != nil {
				return nil, err
			}
			return c.keyView(ctx, k), nil
		})
	}
}

// keyWrite runs a write of the keys' store, audit-logs it as action on
// the target it names (refused or not), and answers status with what it
// returns.
func (c *Console) keyWrite(ec echo.Context, action string, status int, do func(ctx context.Context, store Keys) (target string, answer any, err error)) error {
	store, err := c.keys()
	if err != nil {
		return err
	}
	target, answer, err := do(ec.Request().Context(), store)
	c.audit(ec, ec.Get("principal").(principal), action, target, err)
	if err != nil {
		return err
	}
	return ec.JSON(status, answer)
}

// handleCreateKey is POST /admin/api/keys: the new key's record and its
// secret, shown only in this answer.
func (c *Console) handleCreateKey() echo.HandlerFunc {
	return func(ec echo.Context) error {
		return c.keyWrite(ec, "create_key", http.StatusCreated, func(ctx context.Context, store Keys) (string, any, error) {
			req, err := decode[keySpec](ec)
			if err != nil {
				return "", nil, err
			}
			spec, err := req.spec()
			if err != nil {
				return "", nil, err
			}
			secret, k, err := store.Create(ctx, spec)
			if err != nil {
				return "", nil, err
			}
			return k.ID, map[string]any{"key": k, "secret": secret}, nil
		})
	}
}

// handleRevokeKey is DELETE /admin/api/keys/:id: refused on every instance
// once this answers (propagation says how many confirmed, how fast).
func (c *Console) handleRevokeKey() echo.HandlerFunc {
	return func(ec echo.Context) error {
		id := ec.Param("id")
		return c.keyWrite(ec, "revoke_key", http.StatusOK, func(ctx context.Context, store Keys) (string, any, error) {
			k, prop, err := store.Revoke(ctx, id)
			return id, map[string]any{"key": k, "propagation": prop}, err
		})
	}
}

// rotateRequest is the body of POST /admin/api/keys/:id/rotate, which may
// be empty.
type rotateRequest struct {
	// Grace keeps the old secret working this long, e.g. "1h".
	Grace string `json:"grace"`
}

// handleRotateKey is POST /admin/api/keys/:id/rotate: a new secret for the
// same key (tenant, limits and spend stay), shown only in this answer.
func (c *Console) handleRotateKey() echo.HandlerFunc {
	return func(ec echo.Context) error {
		id := ec.Param("id")
		return c.keyWrite(ec, "rotate_key", http.StatusOK, func(ctx context.Context, store Keys) (string, any, error) {
			var req rotateRequest
			if ec.Request().ContentLength != 0 {
				var err error
				if req, err = decode[rotateRequest](ec); err != nil {
					return id, nil, err
				}
			}
			grace, err := auth.ParseDuration(req.Grace)
			if err != nil {
				return id, nil, errBadRequest.With("grace: " + err.Error())
			}
			secret, k, prop, err := store.Rotate(ctx, id, grace)
			return id, map[string]any{"key": k, "secret": secret, "propagation": prop}, err
		})
	}
}

// revokeTokenRequest is the body of POST /admin/api/tokens/revoke.
type revokeTokenRequest struct {
	TokenID string `json:"token_id"`
}

// handleRevokeToken is POST /admin/api/tokens/revoke: one access token
// (its jti) refused everywhere, the key and its other tokens untouched.
func (c *Console) handleRevokeToken() echo.HandlerFunc {
	return func(ec echo.Context) error {
		return c.keyWrite(ec, "revoke_token", http.StatusOK, func(ctx context.Context, store Keys) (string, any, error) {
			req, err := decode[revokeTokenRequest](ec)
			if err != nil {
				return "", nil, err
			}
			if req.TokenID == "" {
				return "", nil, errBadRequest.With("token_id: required")
			}
			// Remembered as long as any token issued now could live.
			prop, err := store.RevokeToken(ctx, req.TokenID, c.opts.Now().Add(c.opts.TokenTTL+time.Minute))
			return req.TokenID, map[string]any{"token_id": req.TokenID, "propagation": prop}, err
		})
	}
}

// decode reads a JSON body of at most maxKeyBodyBytes, refusing members
// it does not know.
func decode[T any](ec echo.Context) (T, error) {
	var v T
	r := ec.Request()
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return v, errUnsupported
	}
	body, err := io.ReadAll(http.MaxBytesReader(ec.Response(), r.Body, maxKeyBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return v, errTooLarge
	case err != nil:
		return v, errBadRequest.With("the body could not be read: " + err.Error())
	case !utf8.Valid(body):
		return v, errBadRequest.With("the body is not valid UTF-8")
	}
	if err := json.Unmarshal(body, &v, json.RejectUnknownMembers(true)); err != nil {
		return v, errInvalidJSON.With("malformed JSON body: " + err.Error())
	}
	return v, nil
}
