package render

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// unknownEvent renders an event Jackalope has no message for: its name and
// its fields, flattened to "a.b.c: value" lines, as many as fit.
func unknownEvent(name string, fields map[string]any) *card {
	c := genericCard(name)
	c.line("Jamf Pro sent " + eventName(name) + ", which Jackalope has no specific message for.")
	if len(fields) == 0 {
		c.line("The event carried no details.")
		return c
	}
	fieldLines(c, fields, maxText-400)
	return c
}

// undecodable renders an event whose body could not be read at all.
func undecodable(name string) *card {
	c := genericCard(name)
	c.line("Jamf Pro sent " + eventName(name) + ", but its details could not be read.")
	return c
}

// genericCard starts the card of an event without a message of its own.
func genericCard(name string) *card {
	c := newCard("")
	if n := esc(strings.TrimSpace(name)); n != "" {
		c.title += ": " + n
	}
	return c
}

// eventName names an event in a sentence.
func eventName(name string) string {
	if strings.TrimSpace(name) == "" {
		return "an unnamed event"
	}
	return "a " + bold(val(name)) + " event"
}

// Limits on flattening, so that a huge event costs bounded time and memory.
const (
	maxFlatFields = 200
	maxFlatKey    = 100
)

// flatField is one leaf of a flattened event.
type flatField struct {
	key   string
	value string
}

// flattener collects the leaves of a decoded JSON value in key order.
type flattener struct {
	fields []flatField
	total  int
}

// secretWords mark keys whose values are never shown.
var secretWords = []string{"password", "passwd", "secret", "token", "challenge", "credential"}

// secret reports whether a key names a value that must not be shown.
func secret(key string) bool {
	k := strings.ToLower(key)
	return slices.ContainsFunc(secretWords, func(w string) bool { return strings.Contains(k, w) })
}

// walk flattens v under the dotted path key.
func (f *flattener) walk(key string, v any) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			f.leaf(key, "{}")
			return
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			path := joinKey(key, k)
			if secret(k) {
				f.leaf(path, "[redacted]")
				continue
			}
			f.walk(path, x[k])
		}
	case []any:
		if len(x) == 0 {
			f.leaf(key, "[]")
			return
		}
		for i, item := range x {
			f.walk(joinKey(key, strconv.Itoa(i)), item)
		}
	case nil:
		f.leaf(key, "null")
	case string:
		f.leaf(key, x)
	case json.Number:
		f.leaf(key, x.String())
	case bool:
		f.leaf(key, strconv.FormatBool(x))
	default:
		f.leaf(key, fmt.Sprint(x))
	}
}

// leaf counts a leaf and keeps it while fewer than maxFlatFields are kept.
func (f *flattener) leaf(key, value string) {
	f.total++
	if len(f.fields) < maxFlatFields {
		f.fields = append(f.fields, flatField{key: key, value: value})
	}
}

// joinKey appends a path segment.
func joinKey(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// fieldLines adds "*a.b.c:* value" lines for an event's fields while they
// fit in budget bytes, then says how many were left out.
func fieldLines(c *card, fields map[string]any, budget int) {
	var f flattener
	f.walk("", fields)
	used, shown := 0, 0
	for _, ff := range f.fields {
		key := clip(esc(ff.key), maxFlatKey)
		if key == "" {
			key = "(empty)"
		}
		l := pair(key, val(ff.value))
		if used+len(l)+1 > budget {
			break
		}
		c.lines = append(c.lines, l)
		used += len(l) + 1
		shown++
	}
	if rest := f.total - shown; rest > 0 {
		c.line(ellipsis + " and " + strconv.Itoa(rest) + " more " + plural(rest, "field", "fields"))
	}
}
