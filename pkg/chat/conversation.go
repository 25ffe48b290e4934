package chat

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"github.com/botfleet/botfleet/pkg/fault"
)

// Scopes of conversation memory, as in Kirara AI's memory.
const (
	// ScopeMember keeps one memory per user: per group member in a group,
	// per user in private chat.
	ScopeMember = "member"
	// ScopeGroup shares one memory among a whole group.
	ScopeGroup = "group"
	// ScopeGlobal shares one memory among everybody.
	ScopeGlobal = "global"
)

// ErrInvalid marks a request that cannot be served as sent; its message
// says why.
var ErrInvalid = fault.New(http.StatusBadRequest, "invalid_request", "the request cannot be served as sent")

// DefaultTenant owns the conversations of a request that names no tenant.
const DefaultTenant = "default"

// Conversation is where a turn's memory lives.
type Conversation struct {
	// Key is the memory key (memory.Request.Conversation).
	Key string
	// SessionID names the conversation again: a client that sends it back
	// as its session_id continues this conversation. Empty for IM.
	SessionID string
	// namespace starts Key and the turn's request id: one tenant's API
	// conversations, or one IM platform's.
	namespace string
}

// Resolve turns what the caller knows into the conversation's memory key
// and the session id that names it again. It is the only place that makes
// conversation keys, and they are injective: different (tenant or
// platform, scope, session, group, user) tuples never share a key.
//
// The key is "<namespace>:<path>". The namespace is "api:<tenant>" for the
// HTTP API and "im:<platform>" for an IM platform, so that no id a client
// chooses reaches an IM user's memory nor another tenant's. The path is
// "session:<id>" for an explicit session id; otherwise the scope decides:
// member gives "member:<group>:<user>" in a group and "c2c:<user>" in
// private, group gives "group:<group>", global gives "global". Every id is
// escaped (Escape), so none can smuggle a separator or a hash tag in.
//
// IM requests have no session id: their scope, user and group decide.
// A session id that is itself a path ("c2c:42", "member:g:42", "group:g",
// "global", as Resolve returns for scoped conversations) names that scoped
// conversation; any other session id names the session. A request of the
// HTTP API with neither a session nor a scope, user or group starts a new
// session with a random id.
func (s *Service) Resolve(r Request) (Conversation, error) {
	c := Conversation{namespace: namespaceOf(r)}
	scope, session, user, group := r.Scope, r.SessionID, r.UserID, r.GroupID
	if r.Platform != "" {
		session = "" // platforms name their chats by scope only
	} else if session != "" {
		if sc, u, g, ok := parsePath(session); ok {
			scope, session, user, group = sc, "", u, g
		}
	}
	if session == "" && scope == "" && user == "" && group == "" && r.Platform == "" {
		session = newID()
	}
	if scope == "" {
		scope = s.opts.DefaultScope
	}
	var path string
	switch {
	case r.Stateless:
		// A stateless turn keeps nothing but its outcome, under its id.
		path = "request:" + Escape(r.ID)
	case session != "":
		path, c.SessionID = "session:"+Escape(session), session
	case scope == ScopeMember && user == "":
		return c, ErrInvalid.With("scope member needs user_id (or give a session_id)")
	case scope == ScopeMember && group != "":
		path = "member:" + Escape(group) + ":" + Escape(user)
	case scope == ScopeMember:
		path = "c2c:" + Escape(user)
	case scope == ScopeGroup && group == "":
		return c, ErrInvalid.With("scope group needs group_id")
	case scope == ScopeGroup:
		path = "group:" + Escape(group)
	case scope == ScopeGlobal:
		path = "global"
	default:
		return c, ErrInvalid.With(fmt.Sprintf("scope must be member, group or global, got %q", scope))
	}
	c.Key = c.namespace + ":" + path
	if c.SessionID == "" && r.Platform == "" && !r.Stateless {
		c.SessionID = path
	}
	return c, nil
}

// namespaceOf is the request's namespace: its tenant's on the HTTP API,
// its platform's on IM.
func namespaceOf(r Request) string {
	if r.Platform != "" {
		return "im:" + Escape(r.Platform)
	}
	tenant := r.Tenant
	if tenant == "" {
		tenant = DefaultTenant
	}
	return "api:" + Escape(tenant)
}

// parsePath reads a scoped conversation's path back from a session id.
func parsePath(id string) (scope, user, group string, ok bool) {
	kind, rest, _ := strings.Cut(id, ":")
	parts := strings.Split(rest, ":")
	var err error
	unescape := func(i int) string {
		var v string
		if err == nil {
			v, err = unescapeID(parts[i])
		}
		return v
	}
	switch {
	case id == ScopeGlobal:
		return ScopeGlobal, "", "", true
	case kind == "c2c" && len(parts) == 1:
		scope, user = ScopeMember, unescape(0)
	case kind == "member" && len(parts) == 2:
		scope, group, user = ScopeMember, unescape(0), unescape(1)
	case kind == "group" && len(parts) == 1:
		scope, group = ScopeGroup, unescape(0)
	default:
		return "", "", "", false
	}
	return scope, user, group, err == nil && user+group != ""
}

// Escape makes an id safe inside a memory key: '%', ':', the hash-tag
// braces and every byte outside visible ASCII become %XX, so escaped ids
// never contain a separator and distinct ids stay distinct.
func Escape(id string) string {
	if !needsEscape(id) {
		return id
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if escaped(c) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func needsEscape(id string) bool {
	for i := 0; i < len(id); i++ {
		if escaped(id[i]) {
			return true
		}
	}
	return false
}

func escaped(c byte) bool {
	return c <= ' ' || c > '~' || c == '%' || c == ':' || c == '{' || c == '}'
}

// unescapeID reverses Escape; it refuses what Escape cannot have made.
func unescapeID(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		v, err := hex.DecodeString(s[i+1 : i+3])
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(v[0])
		i += 2
	}
	return b.String(), nil
}

// requestID namespaces a caller's request id with the conversation's
// namespace, so that ids a client chooses never meet a platform's.
func (c Conversation) requestID(id string) string { return c.namespace + "|" + id }

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
