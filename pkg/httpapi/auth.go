package httpapi

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/botfleet/botfleet/pkg/auth"
	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/labstack/echo/v4"
)

// anonymous is the principal of every request when auth is disabled.
var anonymous = &auth.Principal{Kind: auth.KindBootstrap, KeyID: "anonymous"}

// clientIP is the request's client address: the peer, or what a trusted
// proxy says (see ipExtractor).
func clientIP(c echo.Context) netip.Addr {
	ip, _ := netip.ParseAddr(c.RealIP())
	return ip.Unmap()
}

// authenticate accepts an API key or an access token as the Bearer
// credential and puts the caller's principal in the request context.
func (s *Server) authenticate() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p := anonymous
			if !s.deps.AuthDisabled {
				var err error
				cred, ok := bearer(c.Request().Header.Get("Authorization"))
				if !ok {
					cred = "" // another scheme is no credential
				}
				p, err = s.deps.Auth.Authenticate(c.Request().Context(), cred, clientIP(c))
				if err != nil {
					return err
				}
			}
			r := c.Request()
			c.SetRequest(r.WithContext(auth.NewContext(r.Context(), p)))
			return next(c)
		}
	}
}

// principal is the caller authenticate found.
func principal(c echo.Context) *auth.Principal {
	if p, ok := auth.FromContext(c.Request().Context()); ok {
		return p
	}
	return anonymous
}

type tokenRequest struct {
	// ExpiresIn asks for a shorter life than the configured TTL, in seconds.
	ExpiresIn int `json:"expires_in"`
}

func (r tokenRequest) valid(*Server) error {
	if r.ExpiresIn < 0 {
		return newError(http.StatusBadRequest, "invalid_request", "expires_in: must not be negative")
	}
	return nil
}

type tokenResponse struct {
	auth.Token
	TokenType string `json:"token_type"`
	ExpiresIn int    `json:"expires_in"`
}

// handleToken is POST /auth/token: an API key in, a short-lived access
// token out.
func (s *Server) handleToken() echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.deps.AuthDisabled {
			return newError(http.StatusNotFound, "tokens_off", "authentication is disabled (auth.disabled): no token is needed")
		}
		var req tokenRequest
		if c.Request().ContentLength != 0 {
			var err error
			if req, err = decode[tokenRequest](s, c); err != nil {
				return err
			}
		}
		tok, err := s.deps.Auth.Issue(principal(c), time.Duration(req.ExpiresIn)*time.Second)
		if err != nil {
			return err
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusOK, tokenResponse{Token: tok, TokenType: "Bearer", ExpiresIn: int(time.Until(tok.Expires).Round(time.Second).Seconds())})
	}
}

// admitTurn gives a turn its caller's tenant (pkg/chat namespaces the
// conversation, its idempotency records and stream by it) and applies the
// key's model allow-list and the content filter to it.
func (s *Server) admitTurn(c echo.Context, r *chat.Request) error {
	p := principal(c)
	r.Tenant = p.Tenant
	if r.Model != "" && !p.AllowsModel(r.Model) {
		return auth.ErrModelDenied
	}
	if r.Message != "" {
		return s.screen(c, "http", r.Message)
	}
	return nil
}

// turn runs a turn and records its token use for quota.
func (s *Server) turn(c echo.Context, ctx context.Context, r chat.Request) (chat.Result, error) {
	res, err := s.deps.Chat.Turn(ctx, r)
	if err == nil {
		recordUsage(c, r.Message, res)
	}
	return res, err
}
