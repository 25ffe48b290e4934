package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"time"

	"github.com/botfleet/botfleet/pkg/auth"
	"github.com/botfleet/botfleet/pkg/ratelimit"
	"github.com/labstack/echo/v4"
)

// adminOnly accepts the admin key (auth.admin_key) as the Bearer
// credential; without one configured the admin API is off.
func (s *Server) adminOnly() echo.MiddlewareFunc {
	want := sha256.Sum256([]byte(s.deps.AdminKey))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if s.deps.AdminKey == "" || s.deps.Auth == nil {
				return newError(http.StatusNotFound, "admin_off", "the admin API is off: set auth.admin_key (BOT_AUTH_ADMIN_KEY)")
			}
			cred, isBearer := bearer(c.Request().Header.Get("Authorization"))
			got := sha256.Sum256([]byte(cred))
			ok := subtle.ConstantTimeCompare(got[:], want[:]) == 1 && isBearer
			if !ok {
				s.deps.Auth.Count("admin", auth.ErrAdminRequired)
				return auth.ErrAdminRequired
			}
			s.deps.Auth.Count("admin", nil)
			return next(c)
		}
	}
}

// keySpec is the body of POST /admin/api/keys.
type keySpec struct {
	Name      string      `json:"name"`
	Owner     string      `json:"owner"`
	ExpiresIn string      `json:"expires_in"`
	AllowIPs  []string    `json:"allow_ips"`
	Models    []string    `json:"models"`
	Limits    auth.Limits `json:"limits"`
}

func (k keySpec) valid(*Server) error {
	if _, err := auth.ParseDuration(k.ExpiresIn); err != nil {
		return newError(http.StatusBadRequest, "invalid_request", "expires_in: "+err.Error())
	}
	return nil
}

func (k keySpec) spec() auth.Spec {
	ttl, _ := auth.ParseDuration(k.ExpiresIn)
	return auth.Spec{Name: k.Name, Owner: k.Owner, TTL: ttl, AllowIPs: k.AllowIPs, Models: k.Models, Limits: k.Limits}
}

// keyView is a key with its quota use, as the admin API and botctl show it.
type keyView struct {
	*auth.Key
	Usage *ratelimit.Usage `json:"usage,omitempty"`
}

func (s *Server) view(c echo.Context, k *auth.Key) keyView {
	v := keyView{Key: k}
	if s.deps.Limiter != nil {
		if u, err := s.deps.Limiter.Usage(c.Request().Context(), k.ID); err == nil {
			v.Usage = &u
		}
	}
	return v
}

// handleKeys is GET /admin/api/keys: every key, revoked ones included.
func (s *Server) handleKeys() echo.HandlerFunc {
	return func(c echo.Context) error {
		keys, err := s.deps.Auth.Store().List(c.Request().Context())
		if err != nil {
			return err
		}
		out := make([]keyView, len(keys))
		for i, k := range keys {
			out[i] = s.view(c, k)
		}
		return c.JSON(http.StatusOK, map[string]any{"keys": out})
	}
}

// handleCreateKey is POST /admin/api/keys: the new key's record and its
// secret, shown only in this answer.
func (s *Server) handleCreateKey() echo.HandlerFunc {
	return func(c echo.Context) error {
		req, err := decode[keySpec](s, c)
		if err != nil {
			return err
		}
		secret, k, err := s.deps.Auth.Store().Create(c.Request().Context(), req.spec())
		if err != nil {
			return err
		}
		s.deps.Logger.InfoContext(c.Request().Context(), "admin: key created", "key", k.ID, "name", k.Name, "owner", k.Owner)
		return c.JSON(http.StatusCreated, map[string]any{"key": k, "secret": secret})
	}
}

// handleKey is GET /admin/api/keys/:id.
func (s *Server) handleKey() echo.HandlerFunc {
	return func(c echo.Context) error {
		k, err := s.deps.Auth.Store().Get(c.Request().Context(), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, s.view(c, k))
	}
}

// handleRevokeKey is DELETE /admin/api/keys/:id: refused on every instance
// once this answers (propagation says how many confirmed, how fast).
func (s *Server) handleRevokeKey() echo.HandlerFunc {
	return func(c echo.Context) error {
		k, prop, err := s.deps.Auth.Store().Revoke(c.Request().Context(), c.Param("id"))
		if err != nil {
			return err
		}
		s.deps.Logger.InfoContext(c.Request().Context(), "admin: key revoked", "key", k.ID, "instances", prop.Instances, "acked", prop.Acked, "ms", prop.Elapsed.Seconds()*1000)
		return c.JSON(http.StatusOK, map[string]any{"key": k, "propagation": prop})
	}
}

type rotateRequest struct {
	// Grace keeps the old secret working this long, e.g. "1h".
	Grace string `json:"grace"`
}

func (r rotateRequest) valid(*Server) error {
	if _, err := auth.ParseDuration(r.Grace); err != nil {
		return newError(http.StatusBadRequest, "invalid_request", "grace: "+err.Error())
	}
	return nil
}

// handleRotateKey is POST /admin/api/keys/:id/rotate: a new secret for the
// same key (tenant, limits and spend stay).
func (s *Server) handleRotateKey() echo.HandlerFunc {
	return func(c echo.Context) error {
		var req rotateRequest
		if c.Request().ContentLength != 0 {
			var err error
			if req, err = decode[rotateRequest](s, c); err != nil {
				return err
			}
		}
		grace, _ := auth.ParseDuration(req.Grace)
		secret, k, prop, err := s.deps.Auth.Store().Rotate(c.Request().Context(), c.Param("id"), grace)
		if err != nil {
			return err
		}
		s.deps.Logger.InfoContext(c.Request().Context(), "admin: key rotated", "key", k.ID, "grace", grace.String())
		return c.JSON(http.StatusOK, map[string]any{"key": k, "secret": secret, "propagation": prop})
	}
}

type revokeTokenRequest struct {
	TokenID string `json:"token_id"`
}

func (r revokeTokenRequest) valid(*Server) error {
	if r.TokenID == "" {
		return newError(http.StatusBadRequest, "invalid_request", "token_id: required")
	}
	return nil
}

// handleRevokeToken is POST /admin/api/tokens/revoke: one access token
// (its jti) refused everywhere, the key and its other tokens untouched.
func (s *Server) handleRevokeToken() echo.HandlerFunc {
	return func(c echo.Context) error {
		req, err := decode[revokeTokenRequest](s, c)
		if err != nil {
			return err
		}
		// Remembered as long as any token issued now could live.
		prop, err := s.deps.Auth.Store().RevokeToken(c.Request().Context(), req.TokenID, time.Now().Add(s.deps.TokenTTL+time.Minute))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]any{"token_id": req.TokenID, "propagation": prop})
	}
}
