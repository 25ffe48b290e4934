// Package console is the fleet's admin console, served by every instance
// under /admin (through nginx like the API), and the JSON it reads,
// /admin/api/...: the fleet (from the registry, pre-aggregated: one Redis
// read per poll, never a request to another instance), its traffic from
// the instances' own counters, the job queue with its dead letters, and
// conversations looked up by what names them (chat.Service.Resolve makes
// the key), and the managed API keys (pkg/auth's store: list, create,
// rotate, revoke; a new secret is in its write's answer only). The keys'
// JSON is also the admin API scripts and botctl use, with the admin key
// as their Bearer credential.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary
// (go:embed); it polls one endpoint per view at the registry's heartbeat
// interval, and not at all while its tab is hidden (the keys, a read of
// every key, are read when their view opens and after each change).
//
// Access: every route wants the admin credential — Options.Authorize
// judges a request's own (an Authorization: Bearer header, for scripts),
// and a login (POST /admin/api/login, the same credential in the body)
// gives the browser a session cookie signed with Options.SessionSecret,
// valid on every instance of the fleet. A write with the session cookie
// must carry its CSRF token (X-CSRF-Token, from GET /admin/api/session);
// every write is checked against cross-origin requests
// (net/http.CrossOriginProtection) and audit-logged. Every answer carries
// security headers (a strict Content-Security-Policy, no framing, no
// sniffing, no caching).
//
// Errors are classified with pkg/fault and rendered by the HTTP layer
// that mounts the console (pkg/httpapi): 401 admin_required without the
// credential, 403 csrf_failed, 404 admin_off when no credential is
// configured.
package console

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/queue"
	"github.com/botfleet/botfleet/pkg/registry"
	"github.com/labstack/echo/v4"
)

//go:embed assets
var assets embed.FS

// Fleet reads the fleet registry; *registry.Registry is one.
type Fleet interface {
	Read(ctx context.Context) (registry.Fleet, error)
}

// Queues is the job queue; *queue.Queue is one.
type Queues interface {
	Stats(ctx context.Context) (queue.Stats, error)
	DeadLetters(ctx context.Context, n int64) ([]queue.DeadLetter, error)
	Requeue(ctx context.Context, id string) (queue.Priority, string, error)
	Drop(ctx context.Context, id string) error
}

// Conversations looks conversations up by what names them; *chat.Service
// is one.
type Conversations interface {
	Inspect(ctx context.Context, r chat.Request) (chat.Conversation, memory.Info, error)
	Clear(ctx context.Context, r chat.Request) (chat.Conversation, bool, error)
}

// Options are the console's dependencies.
type Options struct {
	// Authorize judges a request's admin credential: nil when the request
	// may administer the fleet, else why not (a classified error). nil
	// Authorize turns the console off (404).
	Authorize func(*http.Request) error
	// SessionSecret signs the console's session cookies; every instance of
	// the fleet needs the same one. Required with Authorize.
	SessionSecret []byte
	// SessionTTL is how long a login lasts. Default 12h.
	SessionTTL time.Duration
	// Fleet, Queues and Conversations are what the console shows. A nil
	// one answers its routes 404.
	Fleet         Fleet
	Queues        Queues
	Conversations Conversations
	// Keys are the managed API keys (list, create, rotate, revoke); nil
	// answers their routes 404. Quotas, when set, adds each key's quota
	// use. TokenTTL is the longest an access token lives, how long a
	// revoked token is remembered.
	Keys     Keys
	Quotas   Quotas
	TokenTTL time.Duration
	// Platforms are the IM platforms on, for the conversation lookup.
	Platforms []string
	// Logger gets the audit log: every admin write, every failed login.
	Logger *slog.Logger
	// Now is the clock of sessions. Default time.Now.
	Now func() time.Time
}

// Console serves /admin.
type Console struct {
	opts   Options
	static http.Handler
	cop    *http.CrossOriginProtection
}

// New returns the console.
func New(opts Options) *Console {
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	sub, _ := fs.Sub(assets, "assets")
	return &Console{opts: opts, static: http.StripPrefix("/admin/", http.FileServerFS(sub)), cop: http.NewCrossOriginProtection()}
}

// The console's refusals.
var (
	ErrOff = fault.New(http.StatusNotFound, "admin_off",
		"the console is off: set auth.admin_key (BOT_AUTH_ADMIN_KEY)")
	ErrAdminRequired = fault.New(http.StatusUnauthorized, "admin_required",
		"this wants the admin credential: log in at /admin, or send Authorization: Bearer <auth.admin_key>")
	ErrCSRF = fault.New(http.StatusForbidden, "csrf_failed",
		"a console write wants its X-CSRF-Token header (GET /admin/api/session) and a same-origin request")
	errNotHere = fault.New(http.StatusNotFound, "not_found", "this instance does not serve that part of the console")
)

// Routes maps the console on g, the /admin group.
func (c *Console) Routes(g *echo.Group) {
	g.Use(c.headers(), c.guard())
	page := echo.WrapHandler(c.static)
	g.GET("", func(ec echo.Context) error { return ec.Redirect(http.StatusFound, "/admin/") })
	g.GET("/", page)
	g.GET("/console.js", page)
	g.GET("/console.css", page)
	g.GET("/api/session", c.handleSession())
	g.POST("/api/login", c.handleLogin())
	g.POST("/api/logout", c.handleLogout())
	g.GET("/api/fleet", c.handleFleet())
	g.GET("/api/queues", c.handleQueues())
	g.POST("/api/queues/dead/:id/requeue", c.handleRequeue())
	g.DELETE("/api/queues/dead/:id", c.handleDrop())
	g.GET("/api/conversations", c.handleConversation())
	g.DELETE("/api/conversations", c.handleClear())
	g.GET("/api/keys", c.handleKeys())
	g.POST("/api/keys", c.handleCreateKey())
	g.GET("/api/keys/:id", c.handleKey())
	g.DELETE("/api/keys/:id", c.handleRevokeKey())
	g.POST("/api/keys/:id/rotate", c.handleRotateKey())
	g.POST("/api/tokens/revoke", c.handleRevokeToken())
}

// headers sets the security headers of every console answer.
func (c *Console) headers() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(ec echo.Context) error {
			h := ec.Response().Header()
			h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
				"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("Cross-Origin-Opener-Policy", "same-origin")
			h.Set("Cross-Origin-Resource-Policy", "same-origin")
			h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
			h.Set("Cache-Control", "no-store")
			if secure(ec.Request()) {
				h.Set("Strict-Transport-Security", "max-age=31536000")
			}
			return next(ec)
		}
	}
}
