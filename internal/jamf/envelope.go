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
	// parsed is set by Parse, which validated Event with the whole body:
	// Decode does not scan it again. An Envelope built otherwise is
	// checked by Decode.
	parsed bool
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
	if len(bytes.TrimSpace(body)) == 0 {
		return Envelope{}, fmt.Errorf("%w: body is empty", ErrNotJSON)
	}
	// One pass validates the body as json.Valid would (so white space
	// around it is JSON's only, as encoding/json reads it when the event is
	// delivered) and keeps the top-level members Parse needs; a repeated
	// key keeps its last value, as encoding/json does.
	top, ok := scan(body)
	if !ok {
		return Envelope{}, fmt.Errorf("%w: body is not valid JSON", ErrNotJSON)
	}
	if k := kindOf(body[skipSpace(body, 0):]); k != "object" {
		return Envelope{}, fmt.Errorf("%w: body is a JSON %s", ErrNotJSON, k)
	}
	env, err := envelopeFrom(top.hook, top.event)
	env.parsed = err == nil
	return env, err
}

// envelopeFrom checks the body's top-level members webhook and event (nil
// when missing) and reads the webhook's fields.
func envelopeFrom(rawHook, rawEvent []byte) (Envelope, error) {
	var env Envelope
	if rawHook == nil {
		return Envelope{}, &FieldError{Field: "webhook", Problem: "missing"}
	}
	if k := kindOf(rawHook); k != "object" {
		return Envelope{}, &FieldError{Field: "webhook", Problem: "must be an object, got " + k}
	}
	var rawName, rawID, rawTime, rawLabel []byte
	var haveName bool
	members(rawHook, func(key, val []byte) {
		switch string(key) {
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

	if rawEvent == nil {
		return Envelope{}, &FieldError{Field: "event", Problem: "missing"}
	}
	if k := kindOf(rawEvent); k != "object" {
		return Envelope{}, &FieldError{Field: "event", Problem: "must be an object, got " + k}
	}
	env.Event = rawEvent
	return env, nil
}

// maxDepth is encoding/json's nesting limit: json.Valid refuses a document
// nested deeper, and so does scan.
const maxDepth = 10000

// topMembers holds the encoded values of the members of a top-level object
// that Parse reads; nil when absent.
type topMembers struct {
	hook, event []byte
}

// scan reports whether b is exactly one JSON value, optionally surrounded by
// JSON white space, accepting and refusing exactly what json.Valid does. When
// that value is an object it also returns the last "webhook" and "event"
// members. It does not allocate for keys without escapes and never recurses,
// so hostile nesting costs no stack.
func scan(b []byte) (topMembers, bool) {
	var top topMembers
	// inObject has bit d set when the container at depth d+1 is an object.
	var inObject [(maxDepth + 63) / 64]uint64
	depth := 0
	isObject := func() bool { return inObject[(depth-1)/64]&(1<<((depth-1)%64)) != 0 }
	push := func(object bool) bool {
		if depth == maxDepth {
			return false
		}
		depth++
		w, bit := (depth-1)/64, uint64(1)<<((depth-1)%64)
		if object {
			inObject[w] |= bit
		} else {
			inObject[w] &^= bit
		}
		return true
	}

	// key is the member of the top-level object whose value is being read:
	// 1 for "webhook", 2 for "event", 0 for any other.
	var key, valStart int
	topIsObject := false
	i := skipSpace(b, 0)
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return top, false
		}
		if depth == 1 {
			valStart = i
		}
		switch c := b[i]; {
		case c == '{':
			if !push(true) {
				return top, false
			}
			if depth == 1 {
				topIsObject = true
			}
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == '}' {
				depth--
				i++
				break
			}
			var ok bool
			if i, key, ok = scanKey(b, i, depth, key); !ok {
				return top, false
			}
			continue
		case c == '[':
			if !push(false) {
				return top, false
			}
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == ']' {
				depth--
				i++
				break
			}
			continue
		case c == '"':
			if i = scanString(b, i); i < 0 {
				return top, false
			}
		case c == '-' || c >= '0' && c <= '9':
			if i = scanNumber(b, i); i < 0 {
				return top, false
			}
		case c == 't':
			if i = scanLiteral(b, i, "true"); i < 0 {
				return top, false
			}
		case c == 'f':
			if i = scanLiteral(b, i, "false"); i < 0 {
				return top, false
			}
		case c == 'n':
			if i = scanLiteral(b, i, "null"); i < 0 {
				return top, false
			}
		default:
			return top, false
		}

		// A value ended just before b[i]; close the containers it ends.
		for {
			if depth == 0 {
				return top, skipSpace(b, i) == len(b)
			}
			if depth == 1 && topIsObject {
				switch key {
				case 1:
					top.hook = b[valStart:i]
				case 2:
					top.event = b[valStart:i]
				}
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return top, false
			}
			object := isObject()
			if b[i] == ',' {
				i = skipSpace(b, i+1)
				if object {
					var ok bool
					if i, key, ok = scanKey(b, i, depth, key); !ok {
						return top, false
					}
				}
				break
			}
			if object && b[i] != '}' || !object && b[i] != ']' {
				return top, false
			}
			depth--
			i++
		}
	}
}

// scanKey reads a member's key at b[i] and the colon after it, and returns
// the index of the value. For a member of the top-level object (depth 1) it
// also says which member Parse wants it is; deeper, it returns key as given.
func scanKey(b []byte, i, depth, key int) (next, which int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	end := scanString(b, i)
	if end < 0 {
		return 0, 0, false
	}
	if depth == 1 {
		switch string(keyBytes(b[i:end])) {
		case "webhook":
			key = 1
		case "event":
			key = 2
		default:
			key = 0
		}
	}
	i = skipSpace(b, end)
	if i >= len(b) || b[i] != ':' {
		return 0, 0, false
	}
	return skipSpace(b, i+1), key, true
}

// keyBytes decodes the encoded JSON string raw, a member's key, for
// comparing with known keys: without escapes it is raw without its quotes
// and allocates nothing. (Raw bytes that are not UTF-8 never equal a known
// key, so unquote's replacement of them is not needed here.)
func keyBytes(raw []byte) []byte {
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1]
	}
	return []byte(unquote(raw))
}

// plain marks the bytes a JSON string holds as they are: not the quote,
// not the backslash, not a control character.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString returns the index just past the JSON string starting at b[i],
// or -1 when it is not a valid one. Like encoding/json it checks escapes
// and control characters, not UTF-8.
func scanString(b []byte, i int) int {
	i++
	for {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+5 >= len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		default: // a control character
			return -1
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// scanNumber returns the index just past the JSON number starting at b[i],
// or -1 when it is not a valid one.
func scanNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// scanLiteral returns the index just past lit at b[i], or -1 when b does
// not hold it there.
func scanLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// members calls fn with the key and encoded value of each member of obj, a
// valid JSON object. It never reads outside obj, whatever obj holds. The key
// is decoded; fn must not keep it, as it may share obj's memory.
func members(obj []byte, fn func(key, val []byte)) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return
	}
	for i++; ; {
		key, val, next, ok := nextMember(obj, i)
		if !ok {
			return
		}
		fn(keyBytes(key), val)
		i = next
	}
}

// nextMember reads the member of the JSON object obj that starts at or after
// i, the index just after the object's '{' or after a ','. It returns the
// member's encoded key and value and where the next member starts, or false
// after the last member. It never reads outside obj, whatever obj holds.
func nextMember(obj []byte, i int) (key, val []byte, next int, ok bool) {
	i = skipSpace(obj, i)
	if i >= len(obj) || obj[i] != '"' {
		return nil, nil, 0, false
	}
	end := skipValue(obj, i)
	key = obj[i:end]
	i = skipSpace(obj, end)
	if i >= len(obj) || obj[i] != ':' {
		return nil, nil, 0, false
	}
	i = skipSpace(obj, i+1)
	end = skipValue(obj, i)
	if end <= i {
		return nil, nil, 0, false
	}
	return key, obj[i:end], afterValue(obj, end), true
}

// nextElement reads the element of the JSON array arr that starts at or
// after i, the index just after the array's '[' or after a ','. It returns
// the element's encoded value and where the next element starts, or false
// after the last element. It never reads outside arr, whatever arr holds.
func nextElement(arr []byte, i int) (val []byte, next int, ok bool) {
	i = skipSpace(arr, i)
	if i >= len(arr) || arr[i] == ']' {
		return nil, 0, false
	}
	end := skipValue(arr, i)
	if end <= i {
		return nil, 0, false
	}
	return arr[i:end], afterValue(arr, end), true
}

// afterValue returns where the next member or element starts after a value
// that ends at end: after the ',' that follows, or len(b) when none does.
func afterValue(b []byte, end int) int {
	i := skipSpace(b, end)
	if i >= len(b) || b[i] != ',' {
		return len(b)
	}
	return i + 1
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

// skipString returns the index just past the JSON string starting at i, or
// len(b) when it does not end. It looks for the closing quote with
// bytes.IndexByte and counts the backslashes before a quote to know whether
// it is escaped.
func skipString(b []byte, i int) int {
	start := i + 1
	for i = start; i < len(b); i++ {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			break
		}
		i += j
		k := i
		for k > start && b[k-1] == '\\' {
			k--
		}
		if (i-k)%2 == 0 {
			return i + 1
		}
	}
	return len(b)
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

// parseIntBytes is parseInt for the bytes of a JSON number. Plain integers
// of up to 18 digits, nearly all of Jamf's, are read without allocating.
func parseIntBytes(b []byte) (int64, bool) {
	digits := b
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return parseInt(string(b))
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return parseInt(string(b))
		}
		n = n*10 + int64(c-'0')
	}
	if len(digits) < len(b) {
		n = -n
	}
	return n, true
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
