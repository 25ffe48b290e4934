package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"
)

const (
	cookieName = "botfleet_admin"
	csrfHeader = "X-CSRF-Token"
	issuer     = "botfleet-console"
	// maxLoginBytes bounds a login body.
	maxLoginBytes = 4096
)

// principal is who administers in a request: a browser's session (its id)
// or a script's own credential.
type principal struct {
	session string // the session's id; "" for a Bearer credential
	expires time.Time
}

// String names the principal in the audit log, never with a secret.
func (p principal) String() string {
	if p.session == "" {
		return "bearer"
	}
	return "session:" + p.session[:8]
}

// guard lets a request through only with the admin credential — but the
// page itself and the login — and only a same-origin write, carrying its
// CSRF token when it comes with the session cookie.
func (c *Console) guard() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(ec echo.Context) error {
			if c.opts.Authorize == nil {
				return ErrOff
			}
			r := ec.Request()
			write := r.Method != http.MethodGet && r.Method != http.MethodHead
			if write {
				if err := c.cop.Check(r); err != nil {
					return ErrCSRF.With("cross-origin write refused: " + err.Error())
				}
			}
			switch ec.Path() {
			case "/admin", "/admin/", "/admin/console.js", "/admin/console.css", "/admin/api/login":
				return next(ec)
			}
			p, err := c.principal(r)
			if err != nil {
				return err
			}
			if write && p.session != "" && !hmac.Equal([]byte(r.Header.Get(csrfHeader)), []byte(c.csrfToken(p.session))) {
				return ErrCSRF
			}
			ec.Set("principal", p)
			return next(ec)
		}
	}
}

// principal is the request's admin: its own credential when it sends an
// Authorization header, else its session cookie.
func (c *Console) principal(r *http.Request) (principal, error) {
	if r.Header.Get("Authorization") != "" {
		if err := c.opts.Authorize(r); err != nil {
			return principal{}, err
		}
		return principal{}, nil
	}
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return principal{}, ErrAdminRequired
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(ck.Value, &claims, func(*jwt.Token) (any, error) { return c.opts.SessionSecret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(c.opts.Now))
	if err != nil || len(claims.ID) < 8 {
		return principal{}, ErrAdminRequired.With("the console session is not valid (expired, or signed with another key): log in again")
	}
	return principal{session: claims.ID, expires: claims.ExpiresAt.Time}, nil
}

// csrfToken is a session's CSRF token: bound to the session, so that it is
// valid on every instance and dies with it.
func (c *Console) csrfToken(session string) string {
	m := hmac.New(sha256.New, c.opts.SessionSecret)
	m.Write([]byte("csrf\x00" + session))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sessionView is GET /admin/api/session's answer, and the login's.
type sessionView struct {
	CSRFToken string    `json:"csrf_token,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Principal string    `json:"principal"`
	Platforms []string  `json:"platforms"`
}

func (c *Console) view(p principal) sessionView {
	v := sessionView{Principal: p.String(), ExpiresAt: p.expires, Platforms: c.opts.Platforms}
	if p.session != "" {
		v.CSRFToken = c.csrfToken(p.session)
	}
	if v.Platforms == nil {
		v.Platforms = []string{}
	}
	return v
}

// handleSession is GET /admin/api/session: who is logged in, and the CSRF
// token of the session's writes.
func (c *Console) handleSession() echo.HandlerFunc {
	return func(ec echo.Context) error {
		return ec.JSON(http.StatusOK, c.view(ec.Get("principal").(principal)))
	}
}

// handleLogin is POST /admin/api/login {"key": "<the admin credential>"}:
// the credential is judged by Authorize, as a Bearer header would be, and
// a session cookie is set.
func (c *Console) handleLogin() echo.HandlerFunc {
	return func(ec echo.Context) error {
		r := ec.Request()
		var body struct {
			Key string `json:"key"`
		}
		raw, err := io.ReadAll(io.LimitReader(r.Body, maxLoginBytes+1))
		if err != nil || len(raw) > maxLoginBytes || json.Unmarshal(raw, &body) != nil || strings.TrimSpace(body.Key) == "" {
			return errBadRequest.With(`the login body is {"key": "<admin key>"}`)
		}
		probe := r.Clone(r.Context())
		probe.Header.Set("Authorization", "Bearer "+strings.TrimSpace(body.Key))
		if err := c.opts.Authorize(probe); err != nil {
			c.audit(ec, principal{}, "login", "", err)
			return err
		}
		now := c.opts.Now()
		p := principal{session: newSessionID(), expires: now.Add(c.opts.SessionTTL)}
		token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
			Issuer: issuer, Subject: "admin", ID: p.session,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(p.expires),
		}).SignedString(c.opts.SessionSecret)
		if err != nil {
			return err
		}
		http.SetCookie(ec.Response(), &http.Cookie{
			Name: cookieName, Value: token, Path: "/admin", Expires: p.expires,
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r),
		})
		c.audit(ec, p, "login", "", nil)
		return ec.JSON(http.StatusOK, c.view(p))
	}
}

// handleLogout is POST /admin/api/logout: the cookie is dropped. (A
// session is a signed cookie valid on every instance; it cannot be
// revoked before its end but by changing the admin key.)
func (c *Console) handleLogout() echo.HandlerFunc {
	return func(ec echo.Context) error {
		p := ec.Get("principal").(principal)
		http.SetCookie(ec.Response(), &http.Cookie{Name: cookieName, Value: "", Path: "/admin", MaxAge: -1,
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(ec.Request())})
		c.audit(ec, p, "logout", "", nil)
		return ec.NoContent(http.StatusNoContent)
	}
}

// secure tells a request that came over HTTPS, to the instance or to
// nginx in front of it.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SessionSecret derives the console's session key from the admin key, so
// that every instance configured with the same key accepts the same
// sessions, and a new admin key ends every session.
func SessionSecret(adminKey string) []byte {
	m := hmac.New(sha256.New, []byte("botfleet console session"))
	m.Write([]byte(adminKey))
	return m.Sum(nil)
}

// AdminKey returns an Authorize that accepts one key as the Bearer
// credential, compared in constant time.
func AdminKey(key string) func(*http.Request) error {
	want := sha256.Sum256([]byte(key))
	return func(r *http.Request) error {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return ErrAdminRequired
		}
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if !hmac.Equal(got[:], want[:]) {
			return ErrAdminRequired.With("the admin credential is not valid (an API key is not one)")
		}
		return nil
	}
}
