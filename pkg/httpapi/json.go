package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/labstack/echo/v4"
)

// validator is a request body that checks itself after decoding.
type validator interface {
	valid(s *Server) error
}

// strict bodies refuse members they do not know; lenient ones (the OpenAI
// API's, whose clients send many) ignore them.
type strictness bool

const (
	strict  strictness = true
	lenient strictness = false
)

// decode reads a JSON body into T and validates it: 415 for another
// content type, 413 past MaxBodyBytes, 400 for a body that is not UTF-8,
// malformed JSON, a member name in the wrong case, a duplicate or
// (strict) unknown member, or trailing data, and whatever valid returns.
//
// It decodes with the encoding/json/v2 prototype (go-json-experiment),
// whose defaults are what an API needs and encoding/json cannot be made
// to do: member names match exactly (encoding/json folds case, so
// "Message" would pass for "message"), duplicate names and invalid UTF-8
// are errors (encoding/json keeps the last and replaces bytes with U+FFFD).
func decode[T validator](s *Server, c echo.Context, mode ...strictness) (T, error) {
	var v T
	body, err := readBody(s, c, "application/json")
	if err != nil {
		return v, err
	}
	if !utf8.Valid(body) {
		return v, newError(http.StatusBadRequest, "invalid_request", "the body is not valid UTF-8")
	}
	unknown := len(mode) == 0 || mode[0] == strict
	if err := json.Unmarshal(body, &v, json.RejectUnknownMembers(unknown)); err != nil {
		return v, newError(http.StatusBadRequest, "invalid_json", "malformed JSON body: "+err.Error())
	}
	return v, v.valid(s)
}

// readBody reads a request body of the content type want ("" takes any),
// at most its route's limit (bodyLimit), else MaxBodyBytes.
func readBody(s *Server, c echo.Context, want string) ([]byte, error) {
	r := c.Request()
	if want != "" {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != want {
			return nil, newError(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be "+want)
		}
	}
	limit := s.bodyLimitOf(c)
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge(limit)
	}
	if err != nil {
		return nil, newError(http.StatusBadRequest, "invalid_request", "could not read the body: "+err.Error())
	}
	return body, nil
}

func tooLarge(limit int64) error {
	return newError(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes", limit))
}
