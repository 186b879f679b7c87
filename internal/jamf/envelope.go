package jamf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrNotJSON reports a body that is not a JSON object. Ingest answers it with
// 400 "No JSON found with request", as the original service did.
var ErrNotJSON = errors.New("no JSON object found in body")

// FieldError reports an envelope field that is missing or has the wrong
// type. Field is the dotted path of the field, e.g. "webhook.webhookEvent".
type FieldError struct {
	Field   string
	Problem string
}

// Error returns "<field>: <problem>", e.g. "event: must be an object, got array".
func (e *FieldError) Error() string {
	return e.Field + ": " + e.Problem
}

// Webhook is the envelope's "webhook" object: which webhook definition in
// Jamf Pro fired and when.
type Webhook struct {
	// ID is the webhook definition's ID in Jamf Pro; 0 when missing.
	ID int64
	// Name is the display name the admin gave the webhook. Free text.
	Name string
	// Event is webhook.webhookEvent exactly as sent; see Canonical.
	Event string
	// Timestamp is webhook.eventTimestamp; zero when missing (servers older
	// than Jamf Pro 10.12).
	Timestamp time.Time
}

// Envelope is a validated Jamf Pro webhook body: the webhook metadata and the
// event's still-encoded JSON object, decoded later by Decode. Event shares
// the memory of the body given to Parse.
type Envelope struct {
	Webhook Webhook
	Event   json.RawMessage
}

// Parse validates a Jamf Pro JSON webhook body and returns its envelope. It
// is ingest's hot path, so it checks the event only for being an object and
// leaves its fields encoded.
//
// A body that is not a JSON object gives an error matching ErrNotJSON. A
// missing or mistyped field gives a *FieldError naming it. Numbers that arrive
// as strings are accepted; webhook.id and webhook.eventTimestamp may be
// missing. eventTimestamp is epoch milliseconds; values under 1e12 are read as
// seconds.
func Parse(body []byte) (Envelope, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return Envelope{}, fmt.Errorf("%w: body is empty", ErrNotJSON)
	}
	if !json.Valid(trimmed) {
		return Envelope{}, fmt.Errorf("%w: body is not valid JSON", ErrNotJSON)
	}
	if k := kindOf(trimmed); k != "object" {
		return Envelope{}, fmt.Errorf("%w: body is a JSON %s", ErrNotJSON, k)
	}

	// The body is valid JSON, so the members can be walked without
	// decoding them. A repeated key keeps its last value, as encoding/json
	// does.
	var rawHook, rawEvent []byte
	var haveHook, haveEvent bool
	members(trimmed, func(key string, val []byte) {
		switch key {
		case "webhook":
			rawHook, haveHook = val, true
		case "event":
			rawEvent, haveEvent = val, true
		}
	})

	var env Envelope
	if !haveHook {
		return Envelope{}, &FieldError{Field: "webhook", Problem: "missing"}
	}
	if k := kindOf(rawHook); k != "object" {
		return Envelope{}, &FieldError{Field: "webhook", Problem: "must be an object, got " + k}
	}
	var rawName, rawID, rawTime, rawLabel []byte
	var haveName bool
	members(rawHook, func(key string, val []byte) {
		switch key {
		case "webhookEvent":
			rawName, haveName = val, true
		case "id":
			rawID = val
		case "eventTimestamp":
			rawTime = val
		case "name":
			rawLabel = val
		}
	})

	if !haveName {
		return Envelope{}, &FieldError{Field: "webhook.webhookEvent", Problem: "missing"}
	}
	if k := kindOf(rawName); k != "string" {
		return Envelope{}, &FieldError{Field: "webhook.webhookEvent", Problem: "must be a string, got " + k}
	}
	env.Webhook.Event = unquote(rawName)
	if strings.TrimSpace(env.Webhook.Event) == "" {
		return Envelope{}, &FieldError{Field: "webhook.webhookEvent", Problem: "must not be empty"}
	}

	if rawLabel != nil {
		switch k := kindOf(rawLabel); k {
		case "string":
			env.Webhook.Name = unquote(rawLabel)
		case "number":
			env.Webhook.Name = string(rawLabel)
		case "null":
		default:
			return Envelope{}, &FieldError{Field: "webhook.name", Problem: "must be a string, got " + k}
		}
	}
	if rawID != nil {
		id, err := envelopeInt(rawID)
		if err != nil {
			return Envelope{}, &FieldError{Field: "webhook.id", Problem: err.Error()}
		}
		env.Webhook.ID = id
	}
	if rawTime != nil {
		ts, err := envelopeInt(rawTime)
		if err != nil {
			return Envelope{}, &FieldError{Field: "webhook.eventTimestamp", Problem: err.Error()}
		}
		env.Webhook.Timestamp = epoch(ts)
	}

	if !haveEvent {
		return Envelope{}, &FieldError{Field: "event", Problem: "missing"}
	}
	if k := kindOf(rawEvent); k != "object" {
		return Envelope{}, &FieldError{Field: "event", Problem: "must be an object, got " + k}
	}
	env.Event = rawEvent
	return env, nil
}

// members calls fn with the key and encoded value of each member of obj, a
// valid JSON object. It never reads outside obj, whatever obj holds.
func members(obj []byte, fn func(key string, val []byte)) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	i++
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return
		}
		end := skipValue(obj, i)
		key := obj[i:end]
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return
		}
		i = skipSpace(obj, i+1)
		end = skipValue(obj, i)
		if end <= i {
			return
		}
		fn(unquote(key), obj[i:end])
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ',' {
			return
		}
		i++
	}
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value starting at i.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// skipString returns the index just past the JSON string starting at i.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// kindOf names the JSON type of an encoded value by its first byte.
func kindOf(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// unquote decodes an encoded JSON string. It skips encoding/json for the
// common case of a plain ASCII or UTF-8 string without escapes.
func unquote(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return ""
	}
	return s
}

// envelopeInt reads an envelope number that may arrive as a JSON number, a
// numeric string or null.
func envelopeInt(raw []byte) (int64, error) {
	switch k := kindOf(raw); k {
	case "null":
		return 0, nil
	case "number":
		if n, ok := parseInt(string(bytes.TrimSpace(raw))); ok {
			return n, nil
		}
		return 0, errors.New("must be an integer, got " + string(raw))
	case "string":
		s := strings.TrimSpace(unquote(raw))
		if s == "" {
			return 0, nil
		}
		if n, ok := parseInt(s); ok {
			return n, nil
		}
		return 0, fmt.Errorf("must be a number, got string %q", clipForError(s))
	default:
		return 0, errors.New("must be a number, got " + k)
	}
}

// clipForError shortens a value quoted in an error message.
func clipForError(s string) string {
	const max = 32
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// parseInt reads an integer written as an integer or as a float (e.g. "12",
// "12.0", "1.7e12"), truncating a fraction.
func parseInt(s string) (int64, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < -9.2e18 || f > 9.2e18 {
		return 0, false
	}
	return int64(f), true
}

// maxEpochMillis is the last millisecond of year 9999; later timestamps are
// treated as missing so that a time.Time always marshals.
const maxEpochMillis = 253402300799999

// epoch converts a Jamf timestamp to a time: epoch milliseconds, or seconds
// when under 1e12 (several third-party fixtures use seconds). Zero, negative
// and absurdly large values give the zero time.
func epoch(n int64) time.Time {
	switch {
	case n <= 0:
		return time.Time{}
	case n < 1e12:
		if n > maxEpochMillis/1000 {
			return time.Time{}
		}
		return time.Unix(n, 0).UTC()
	case n > maxEpochMillis:
		return time.Time{}
	default:
		return time.UnixMilli(n).UTC()
	}
}
