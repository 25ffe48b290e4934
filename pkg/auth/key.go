package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// SecretPrefix starts every managed key.
	SecretPrefix = "bf_"
	// MaxTTL is the longest a key may live (seed 000), and the default.
	MaxTTL = 90 * 24 * time.Hour
	// secretHex is the number of hex digits after the prefix.
	secretHex = 64
)

// Key is a managed API key's record; the secret itself is never stored.
type Key struct {
	ID      string         `json:"id"`
	Name    string         `json:"name"`
	Owner   string         `json:"owner,omitempty"`
	Created time.Time      `json:"created"`
	Expires time.Time      `json:"expires"`
	Revoked time.Time      `json:"revoked,omitzero"`
	CIDRs   []netip.Prefix `json:"allow_ips,omitempty"`
	Models  []string       `json:"models,omitempty"`
	Limits  Limits         `json:"limits"`
	hash    string
}

// Spec is what a new key is made of.
type Spec struct {
	// Name says what the key is for; Owner who holds it.
	Name, Owner string
	// TTL is how long the key lives: default and at most MaxTTL.
	TTL time.Duration
	// AllowIPs are addresses or CIDR prefixes the key may be used from;
	// empty allows any.
	AllowIPs []string
	// Models the key may use; empty allows every model.
	Models []string
	// Limits are the key's own rate limits and quotas.
	Limits Limits
}

// key validates the spec and returns the record it makes at now.
func (s Spec) key(id string, now time.Time) (*Key, error) {
	bad := func(format string, args ...any) error {
		return ErrInvalidSpec.with(fmt.Sprintf(format, args...))
	}
	ttl := s.TTL
	if ttl == 0 {
		ttl = MaxTTL
	}
	switch {
	case ttl < 0 || ttl > MaxTTL:
		return nil, bad("expires: a key lives at most %v (90 days), got %v", MaxTTL, ttl)
	case len(s.Name) > 128 || len(s.Owner) > 128:
		return nil, bad("name and owner: at most 128 bytes")
	case s.Limits.RequestsPerSecond < 0 || s.Limits.RequestsPerMinute < 0 || s.Limits.MaxInFlight < 0 ||
		s.Limits.TokensPerMinute < 0 || s.Limits.TokenBudget < 0:
		return nil, bad("limits must not be negative")
	}
	for _, m := range s.Models {
		if m == "" || strings.ContainsAny(m, ", \t\n") {
			return nil, bad("models: %q is not a model name", m)
		}
	}
	k := &Key{ID: id, Name: s.Name, Owner: s.Owner, Created: now, Expires: now.Add(ttl),
		Models: slices.Clone(s.Models), Limits: s.Limits}
	for _, a := range s.AllowIPs {
		p, err := ParsePrefix(a)
		if err != nil {
			return nil, bad("allow_ips: %v", err)
		}
		k.CIDRs = append(k.CIDRs, p)
	}
	return k, nil
}

// ParsePrefix reads an address ("10.0.0.7") or a CIDR prefix ("10.0.0.0/8").
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// allows reports whether the key may be used from ip.
func (k *Key) allows(ip netip.Addr) bool {
	if len(k.CIDRs) == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, p := range k.CIDRs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// check refuses a revoked or expired key, or one used from the wrong place.
func (k *Key) check(now time.Time, ip netip.Addr) error {
	switch {
	case !k.Revoked.IsZero():
		return ErrKeyRevoked
	case !now.Before(k.Expires):
		return ErrKeyExpired
	case !k.allows(ip):
		return ErrIPNotAllowed.with("the API key may not be used from " + ip.String())
	}
	return nil
}

func (k *Key) principal() *Principal {
	return &Principal{Kind: KindKey, KeyID: k.ID, Tenant: k.ID, Name: k.Name, Owner: k.Owner,
		Models: k.Models, Limits: k.Limits, Expires: k.Expires}
}

// newSecret returns a fresh key and its hash.
func newSecret() (secret, hash string) {
	var b [secretHex / 2]byte
	_, _ = rand.Read(b[:])
	secret = SecretPrefix + hex.EncodeToString(b[:])
	return secret, Hash(secret)
}

// Hash is the hex SHA-256 under which a key is stored.
func Hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// wellFormed reports whether s has the shape of a managed key, so that
// anything else is refused without asking Redis.
func wellFormed(s string) bool {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok || len(rest) != secretHex {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func newKeyID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "key_" + hex.EncodeToString(b[:])
}

// validKeyID reports whether id has the shape newKeyID makes.
func validKeyID(id string) bool {
	rest, ok := strings.CutPrefix(id, "key_")
	if !ok || len(rest) != 12 {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil
}

// fields is the record as a Redis hash.
func (k *Key) fields() []any {
	cidrs := make([]string, len(k.CIDRs))
	for i, p := range k.CIDRs {
		cidrs[i] = p.String()
	}
	l := k.Limits
	f := []any{"id", k.ID, "name", k.Name, "owner", k.Owner, "hash", k.hash,
		"created", k.Created.UnixMilli(), "expires", k.Expires.UnixMilli(),
		"cidrs", strings.Join(cidrs, ","), "models", strings.Join(k.Models, ","),
		"rps", l.RequestsPerSecond, "rpm", l.RequestsPerMinute, "in_flight", l.MaxInFlight,
		"tpm", l.TokensPerMinute, "budget", l.TokenBudget}
	if !k.Revoked.IsZero() {
		f = append(f, "revoked", k.Revoked.UnixMilli())
	}
	return f
}

// decodeKey reads a record written by fields.
func decodeKey(h map[string]string) (*Key, error) {
	if h["id"] == "" || h["hash"] == "" {
		return nil, fmt.Errorf("auth: key record without id or hash")
	}
	var err error
	num := func(name string) int64 {
		if h[name] == "" {
			return 0
		}
		n, e := strconv.ParseInt(h[name], 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("auth: key %s: field %s: %v", h["id"], name, e)
		}
		return n
	}
	ms := func(name string) time.Time {
		if n := num(name); n != 0 {
			return time.UnixMilli(n)
		}
		return time.Time{}
	}
	k := &Key{ID: h["id"], Name: h["name"], Owner: h["owner"], hash: h["hash"],
		Created: ms("created"), Expires: ms("expires"), Revoked: ms("revoked"),
		Limits: Limits{RequestsPerSecond: int(num("rps")), RequestsPerMinute: int(num("rpm")),
			MaxInFlight: int(num("in_flight")), TokensPerMinute: int(num("tpm")), TokenBudget: num("budget")}}
	if h["models"] != "" {
		k.Models = strings.Split(h["models"], ",")
	}
	if h["cidrs"] != "" {
		for _, c := range strings.Split(h["cidrs"], ",") {
			p, e := netip.ParsePrefix(c)
			if e != nil {
				return nil, fmt.Errorf("auth: key %s: cidr %q: %v", k.ID, c, e)
			}
			k.CIDRs = append(k.CIDRs, p)
		}
	}
	return k, err
}

// ParseDuration reads a duration as Go writes it ("36h", "90m") or in days
// ("30d"); "" is 0.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration; write it like 30d, 12h or 90m", s)
	}
	return d, nil
}
