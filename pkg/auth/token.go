package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/defaults"
	"github.com/golang-jwt/jwt/v5"
)

// Secret is one access-token signing secret, named by its kid.
type Secret struct {
	ID  string
	Key []byte
}

// MinSecretBytes is the shortest signing secret accepted: HS256 wants at
// least as many bits as its output.
const MinSecretBytes = 32

// ParseSecrets reads "kid:secret" entries (the configuration's form). The
// first signs new tokens; every one verifies, so a secret is rotated by
// putting a new one first and dropping the old one after the token TTL.
func ParseSecrets(entries []string) ([]Secret, error) {
	var out []Secret
	seen := map[string]bool{}
	for i, e := range entries {
		kid, key, ok := strings.Cut(e, ":")
		switch {
		case !ok || kid == "" || strings.ContainsAny(kid, " \t"):
			return nil, fmt.Errorf("entry %d: write it as <kid>:<secret>", i+1)
		case len(key) < MinSecretBytes:
			return nil, fmt.Errorf("entry %d (kid %s): the secret must be at least %d bytes", i+1, kid, MinSecretBytes)
		case seen[kid]:
			return nil, fmt.Errorf("entry %d: kid %s appears twice", i+1, kid)
		}
		seen[kid] = true
		out = append(out, Secret{ID: kid, Key: []byte(key)})
	}
	return out, nil
}

// TokenOptions configure access tokens. Zero values take the defaults named.
type TokenOptions struct {
	// Secrets sign (the first) and verify (all) tokens; none turns tokens off.
	Secrets []Secret
	// Issuer (iss) default "botfleet"; Audience (aud) default "botfleet-api".
	Issuer, Audience string
	// TTL is a new token's life. Default 15m.
	TTL time.Duration
	// Leeway absorbs clock skew between instances. Default 0.
	Leeway time.Duration
}

func (o *TokenOptions) setDefaults() {
	defaults.Fill(o, TokenOptions{Issuer: "botfleet", Audience: "botfleet-api", TTL: 15 * time.Minute})
}

// Token is an issued access token.
type Token struct {
	// Value is the signed JWT, the Bearer credential.
	Value string `json:"access_token"`
	// ID is its jti, by which it can be revoked alone.
	ID      string    `json:"token_id"`
	Expires time.Time `json:"expires_at"`
}

func newTokenID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validTokenID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// sign issues a token for key id sub, valid from now for ttl.
func (o *TokenOptions) sign(sub string, now time.Time, ttl time.Duration) (Token, error) {
	if len(o.Secrets) == 0 {
		return Token{}, ErrTokensOff
	}
	s := o.Secrets[0]
	t := Token{ID: newTokenID(), Expires: now.Add(ttl).Truncate(time.Second)}
	claims := jwt.RegisteredClaims{
		Issuer: o.Issuer, Audience: jwt.ClaimStrings{o.Audience}, Subject: sub, ID: t.ID,
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(t.Expires),
	}
	j := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	j.Header["kid"] = s.ID
	v, err := j.SignedString(s.Key)
	if err != nil {
		return Token{}, fmt.Errorf("auth: sign token: %w", err)
	}
	t.Value = v
	return t, nil
}

// parse verifies raw's signature and registered claims at now and returns
// them, or the *Error that tells exactly why not.
func (o *TokenOptions) parse(raw string, now func() time.Time) (*jwt.RegisteredClaims, error) {
	if len(o.Secrets) == 0 {
		return nil, ErrTokensOff
	}
	unverified, _, err := jwt.NewParser().ParseUnverified(raw, &jwt.RegisteredClaims{})
	if err != nil {
		return nil, ErrMalformed
	}
	if alg, _ := unverified.Header["alg"].(string); alg != jwt.SigningMethodHS256.Alg() {
		return nil, ErrAlgorithm.with(fmt.Sprintf("the access token's algorithm %q is not accepted (HS256 only)", clip(alg)))
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		for _, s := range o.Secrets {
			if s.ID == kid {
				return s.Key, nil
			}
		}
		return nil, ErrUnknownKID
	}, jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithIssuer(o.Issuer), jwt.WithAudience(o.Audience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithStrictDecoding(), jwt.WithLeeway(o.Leeway), jwt.WithTimeFunc(now))
	for _, m := range []struct {
		jwt error
		our *Error
	}{
		{ErrUnknownKID, ErrUnknownKID},
		{jwt.ErrTokenMalformed, ErrMalformed},
		{jwt.ErrTokenSignatureInvalid, ErrSignature},
		{jwt.ErrTokenExpired, ErrTokenExpired},
		{jwt.ErrTokenNotValidYet, ErrNotYetValid},
		{jwt.ErrTokenUsedBeforeIssued, ErrNotYetValid},
		{jwt.ErrTokenInvalidAudience, ErrAudience},
		{jwt.ErrTokenInvalidIssuer, ErrIssuer},
		{jwt.ErrTokenRequiredClaimMissing, ErrClaims},
	} {
		if errors.Is(err, m.jwt) {
			return nil, m.our
		}
	}
	if err != nil {
		return nil, ErrMalformed
	}
	if claims.Subject == "" || !validTokenID(claims.ID) {
		return nil, ErrClaims.with("the access token lacks its sub or jti")
	}
	return &claims, nil
}

// clip bounds a value from the token quoted in an error message.
func clip(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}
