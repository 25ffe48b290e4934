// Package auth is who may call a botfleet instance: API keys kept in Redis
// (so that every instance sees a new or revoked key at once), bootstrap
// keys from the configuration, and short-lived access tokens (JWT) issued
// from a key. An authenticated request carries a Principal in its context
// (FromContext); its Tenant namespaces everything the caller creates.
//
// # Keys
//
// A key is "bf_" followed by 64 hex digits (256 random bits), shown once at
// creation; Redis keeps only its SHA-256. The prefix makes a leaked key
// recognisable by secret scanners. Every key below shares the {auth} hash
// tag, so that the management scripts touch one Redis Cluster slot. For
// prefix "bf":
//
//	bf:{auth}:key:<id>       hash: the key's record (id, name, owner, hash, created, expires,
//	                         cidrs, models, rps, rpm, in_flight, tpm, budget, revoked)
//	bf:{auth}:hash:<sha256>  string: the id of the key with that hash (an old hash after a
//	                         rotation with a grace period expires by itself)
//	bf:{auth}:keys           sorted set: every key id by creation time (ms)
//	bf:{auth}:jti            sorted set: revoked token ids by their expiry (ms), pruned
//	bf:auth:events           pub/sub channel: "key <id> <ack>", "jti <jti> <exp ms> <ack>"
//	bf:auth:ack:<ack>        pub/sub channel: each instance's acknowledgement of one event
//
// # Caching and revocation
//
// An instance caches key records it has read, only while its subscription
// to the events channel is up (a reconnect clears the cache), and at most
// CacheTTL. A change (revoke, rotate) is written to Redis, then published;
// Store waits until every subscribed instance has acknowledged dropping the
// key (Propagation), so once Revoke returns the key is refused on the very
// next request everywhere.
//
// # Tenancy
//
// A managed key's tenant is its id; bootstrap keys share the default
// tenant "" (chat.DefaultTenant, what the single shared API_KEY always
// had). pkg/chat namespaces conversations by chat.Request.Tenant; IM
// platforms are tenants of their own there.
//
// # Errors
//
// Every refusal is an *Error with a stable Code (errors.Is matches by code):
// the Err* values below, classified for pkg/fault — 401 for a missing or
// bad credential, 403 for a good one used where it may not be, 404, 400,
// and 503 (ErrUnavailable, which wraps a failure to reach Redis).
package auth

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/botfleet/botfleet/pkg/fault"
)

// Kinds of credential.
const (
	KindBootstrap = "bootstrap"
	KindKey       = "key"
	KindToken     = "token"
)

// Limits are a key's own rate limits and quotas; zero means none of its own.
type Limits struct {
	// RequestsPerSecond and RequestsPerMinute bound the key's requests.
	RequestsPerSecond int `json:"rps,omitempty"`
	RequestsPerMinute int `json:"rpm,omitempty"`
	// MaxInFlight bounds its concurrent turns.
	MaxInFlight int `json:"in_flight,omitempty"`
	// TokensPerMinute bounds the tokens its turns may use per minute.
	TokensPerMinute int `json:"tpm,omitempty"`
	// TokenBudget is the tokens it may use in its whole life.
	TokenBudget int64 `json:"budget,omitempty"`
}

// Principal is the authenticated caller of a request.
type Principal struct {
	// Kind is KindBootstrap, KindKey or KindToken.
	Kind string
	// KeyID is the managed key's id, or "bootstrap-<hash prefix>" for a
	// bootstrap key.
	KeyID string
	// Tenant namespaces the caller's conversations, idempotency records,
	// streams and cache entries.
	Tenant string
	// Name and Owner describe a managed key.
	Name, Owner string
	// Models the key may use; empty allows every model.
	Models []string
	// Limits are the key's own limits.
	Limits Limits
	// TokenID is the jti when the request came with an access token.
	TokenID string
	// Expires is when the credential stops working; zero for never.
	Expires time.Time
}

// AllowsModel reports whether the principal may use model.
func (p *Principal) AllowsModel(model string) bool {
	return len(p.Models) == 0 || slices.Contains(p.Models, model)
}

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal ctx carries.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// Error is a refused credential. Message never contains the credential.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return "auth: " + e.Code + ": " + e.Message }

// Is matches errors by code, so that a detailed variant of an Err* value
// matches it.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func (e *Error) with(message string) *Error { return &Error{Code: e.Code, Message: message} }

// Fault classifies the refusal (see pkg/fault).
func (e *Error) Fault() fault.Error {
	f := fault.Error{Status: http.StatusUnauthorized, Code: e.Code, Message: e.Message}
	switch e.Code {
	case ErrIPNotAllowed.Code, ErrModelDenied.Code, ErrNotAKey.Code:
		f.Status = http.StatusForbidden
	case ErrTokensOff.Code, ErrNotFound.Code:
		f.Status = http.StatusNotFound
	case ErrInvalidSpec.Code:
		f.Status = http.StatusBadRequest
	case ErrUnavailable.Code:
		f.Status, f.Temporary, f.RetryAfter = http.StatusServiceUnavailable, true, time.Second
	}
	return f
}

// The refusals.
var (
	ErrMissing       = &Error{"missing_token", "send Authorization: Bearer <api key or access token>"}
	ErrInvalidKey    = &Error{"invalid_token", "the API key is not valid"}
	ErrKeyExpired    = &Error{"key_expired", "the API key has expired"}
	ErrKeyRevoked    = &Error{"key_revoked", "the API key has been revoked"}
	ErrIPNotAllowed  = &Error{"ip_not_allowed", "the API key may not be used from this address"}
	ErrModelDenied   = &Error{"model_not_allowed", "the API key may not use this model"}
	ErrTokensOff     = &Error{"tokens_off", "access tokens are off: no signing secret is configured (auth.token.secrets)"}
	ErrNotAKey       = &Error{"api_key_required", "an access token is issued for an API key, not for another token"}
	ErrMalformed     = &Error{"token_malformed", "the access token is not a well-formed JWT"}
	ErrAlgorithm     = &Error{"token_algorithm", "the access token's algorithm is not accepted (HS256 only)"}
	ErrUnknownKID    = &Error{"token_unknown_kid", "the access token was signed with an unknown or retired secret"}
	ErrSignature     = &Error{"token_signature", "the access token's signature does not verify"}
	ErrTokenExpired  = &Error{"token_expired", "the access token has expired; get a new one from POST /auth/token"}
	ErrNotYetValid   = &Error{"token_not_yet_valid", "the access token is not valid yet"}
	ErrAudience      = &Error{"token_audience", "the access token is for another audience"}
	ErrIssuer        = &Error{"token_issuer", "the access token is from another issuer"}
	ErrClaims        = &Error{"token_claims", "the access token lacks a required claim"}
	ErrTokenRevoked  = &Error{"token_revoked", "the access token has been revoked"}
	ErrUnavailable   = &Error{"store_unavailable", "the key store (Redis) is unavailable"}
	ErrNotFound      = &Error{"key_not_found", "no such key"}
	ErrInvalidSpec   = &Error{"invalid_key_spec", "the key's settings are not valid"}
	ErrAdminRequired = &Error{"admin_required", "send Authorization: Bearer <admin key>"}
)
