package ingest

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
)

// kind is how a body is decoded, from its Content-Type.
type kind uint8

const (
	kindJSON kind = iota
	kindXML
	kindUnsupported
)

// mediaKind classifies a Content-Type header without allocating: JSON when
// it is missing or application/json, XML for text/xml and application/xml,
// whatever the parameters (charset) say.
func mediaKind(contentType string) kind {
	if i := strings.IndexByte(contentType, ';'); i >= 0 {
		contentType = contentType[:i]
	}
	contentType = strings.TrimSpace(contentType)
	switch {
	case contentType == "", strings.EqualFold(contentType, "application/json"):
		return kindJSON
	case strings.EqualFold(contentType, "text/xml"), strings.EqualFold(contentType, "application/xml"):
		return kindXML
	}
	return kindUnsupported
}

// errTooLarge is readBody's answer to a body over the limit.
var errTooLarge = errors.New("body over the limit")

// readBody reads the request body into a pooled buffer, never more than
// limit bytes of it: a declared Content-Length over the limit is refused
// before reading, and a body that turns out longer stops the read at the
// limit (http.MaxBytesReader then closes the connection after the answer,
// so the rest is never read either). The buffer is returned even on error;
// the caller puts it back with putBuffer.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (*bytes.Buffer, error) {
	buf := getBuffer()
	if r.ContentLength > limit {
		return buf, errTooLarge
	}
	if r.ContentLength > 0 {
		// One read fills it; bytes.Buffer wants MinRead spare bytes to
		// see the end of the body without growing.
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return buf, errTooLarge
		}
		return buf, err
	}
	return buf, nil
}
