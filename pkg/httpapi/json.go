package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"
)

// validator is a request body that checks itself after decoding.
type validator interface {
	valid(s *Server) error
}

// decode reads a JSON body into T and validates it: 415 for another
// content type, 413 past MaxBodyBytes, 400 for malformed JSON, unknown
// fields or trailing data, and whatever valid returns.
func decode[T validator](s *Server, c echo.Context) (T, error) {
	var v T
	r := c.Request()
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return v, newError(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	}
	if r.ContentLength > s.deps.MaxBodyBytes {
		return v, tooLarge(s.deps.MaxBodyBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, s.deps.MaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return v, tooLarge(s.deps.MaxBodyBytes)
	}
	if err != nil {
		return v, newError(http.StatusBadRequest, "invalid_request", "could not read the body: "+err.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, newError(http.StatusBadRequest, "invalid_json", "malformed JSON body: "+err.Error())
	}
	if dec.More() {
		return v, newError(http.StatusBadRequest, "invalid_json", "malformed JSON body: data after the JSON object")
	}
	return v, v.valid(s)
}

func tooLarge(limit int64) *apiError {
	return newError(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes", limit))
}
