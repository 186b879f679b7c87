package jamf

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrBadXML matches every error FromXML returns: the body is not a Jamf Pro
// XML webhook Jackalope accepts. Ingest answers it with 400.
var ErrBadXML = errors.New("bad XML webhook")

// ErrTooLarge additionally matches a FromXML error caused by the size limit,
// so that ingest can answer 413 instead.
var ErrTooLarge = errors.New("too large")

// DefaultXMLLimit is the size limit FromXML applies when given none.
const DefaultXMLLimit = 1 << 20

// Limits on hostile XML. Real Jamf Pro webhooks nest five elements deep and
// carry a few thousand elements at most.
const (
	maxXMLDepth    = 32
	maxXMLElements = 100_000
	maxXMLText     = 64 << 10
)

// xmlRoot is the root element of every Jamf Pro XML webhook.
const xmlRoot = "JSSEvent"

// Keys whose integer-looking values become JSON numbers.
var xmlIntKeys = map[string]bool{
	"id": true, "eventTimestamp": true, "jssID": true, "jssid": true,
	"policyId": true, "patchPolicyId": true, "softwareTitleId": true,
	"objectID": true, "deviceAssignedDate": true,
	"deviceEnrollmentProgramInstanceId": true, "lastUpdate": true,
	"buildingID": true, "departmentID": true, "managementId": true,
}

// Keys whose true/false values become JSON booleans.
var xmlBoolKeys = map[string]bool{
	"isClusterMaster": true, "successful": true, "operationSuccessful": true,
	"computer": true, "smartGroup": true,
}

// xmlItem says what the items of a list key are.
type xmlItem int

const (
	itemInt xmlItem = iota + 1
	itemString
	itemObject
)

// Keys that are JSON arrays even with zero or one item.
var xmlListKeys = map[string]xmlItem{
	"groupAddedDevicesIds":   itemInt,
	"groupRemovedDevicesIds": itemInt,
	"groupAddedUserIds":      itemInt,
	"groupRemovedUserIds":    itemInt,
	"payloadTypes":           itemString,
	"reportUrls":             itemString,
	"action":                 itemString,
	"groupAddedDevices":      itemObject,
	"groupRemovedDevices":    itemObject,
}

// Keys that are JSON objects even when their element is empty.
var xmlObjectKeys = map[string]bool{
	"webhook": true, "event": true, "targetDevice": true, "targetUser": true,
	"eventActions": true,
}

// xmlNode is one element of the document.
type xmlNode struct {
	name     string
	text     []byte
	null     bool
	children []*xmlNode
}

// FromXML converts a Jamf Pro XML webhook (root <JSSEvent> with <webhook>
// and <event>, elements named as the JSON keys) to the equivalent JSON
// object, so that ingest can publish JSON whatever Jamf sent. Values of
// known numeric and boolean keys become numbers and booleans, repeated
// elements and known list keys become arrays (a list may be written as a
// wrapper element around its items or as repeated elements), nested
// elements become objects. Attributes are ignored, except xsi:nil="true",
// which gives null.
//
// limit is the largest body accepted and the largest JSON returned, in
// bytes (DefaultXMLLimit when limit <= 0). Hostile documents are refused:
// DOCTYPE and other declarations, nesting deeper than 32 elements, more than
// 100,000 elements, element text over 64 KiB, a root other than JSSEvent.
// Every error matches ErrBadXML; size errors also match ErrTooLarge.
func FromXML(body []byte, limit int) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultXMLLimit
	}
	if len(body) > limit {
		return nil, xmlTooLarge("body of %d bytes is over the %d byte limit", len(body), limit)
	}
	root, err := parseXML(bytes.TrimPrefix(body, []byte("\ufeff")))
	if err != nil {
		return nil, err
	}
	w := xmlWriter{buf: make([]byte, 0, len(body))}
	w.object(root)
	if len(w.buf) > limit {
		return nil, xmlTooLarge("converted JSON of %d bytes is over the %d byte limit", len(w.buf), limit)
	}
	return w.buf, nil
}

// badXML returns an error matching ErrBadXML.
func badXML(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadXML, fmt.Sprintf(format, args...))
}

// xmlTooLarge returns an error matching ErrBadXML and ErrTooLarge.
func xmlTooLarge(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrBadXML, ErrTooLarge, fmt.Sprintf(format, args...))
}

// parseXML reads the document into a tree, enforcing the limits.
func parseXML(body []byte) (*xmlNode, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	d.CharsetReader = func(label string, r io.Reader) (io.Reader, error) {
		switch strings.ToLower(label) {
		case "us-ascii", "ascii":
			return r, nil
		}
		return nil, fmt.Errorf("unsupported encoding %q, send UTF-8", label)
	}

	var (
		root     *xmlNode
		stack    []*xmlNode
		elements int
		done     bool
	)
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, badXML("%v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if done {
				return nil, badXML("element <%s> after the root element", clipForError(t.Name.Local))
			}
			elements++
			if elements > maxXMLElements {
				return nil, badXML("more than %d elements", maxXMLElements)
			}
			if len(stack) >= maxXMLDepth {
				return nil, badXML("elements nested deeper than %d levels", maxXMLDepth)
			}
			n := &xmlNode{name: t.Name.Local}
			for _, a := range t.Attr {
				if a.Name.Local == "nil" && strings.TrimSpace(a.Value) == "true" {
					n.null = true
				}
			}
			if len(stack) == 0 {
				if t.Name.Local != xmlRoot {
					return nil, badXML("root element is <%s>, want <%s>", clipForError(t.Name.Local), xmlRoot)
				}
				root = n
			} else {
				// A parent's text only matters while it has no children:
				// indentation between children is dropped.
				parent := stack[len(stack)-1]
				parent.text = nil
				parent.children = append(parent.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			if len(stack) == 0 {
				return nil, badXML("unexpected </%s>", clipForError(t.Name.Local))
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				done = true
			}
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, badXML("text outside the root element")
				}
				continue
			}
			top := stack[len(stack)-1]
			if len(top.children) > 0 {
				continue
			}
			if len(top.text)+len(t) > maxXMLText {
				return nil, badXML("text of <%s> is longer than %d bytes", clipForError(top.name), maxXMLText)
			}
			top.text = append(top.text, t...)
		case xml.Directive:
			return nil, badXML("DOCTYPE, ENTITY and other declarations are not allowed")
		case xml.Comment, xml.ProcInst:
		}
	}
	if root == nil {
		return nil, badXML("no root element, want <%s>", xmlRoot)
	}
	if !done {
		return nil, badXML("document ends inside <%s>", clipForError(stack[len(stack)-1].name))
	}
	return root, nil
}

// xmlWriter appends JSON for a tree, keeping the document's key order.
type xmlWriter struct {
	buf []byte
}

// object writes n's children as a JSON object: one key per distinct child
// name, in order of first appearance; repeated names and list keys give
// arrays.
func (w *xmlWriter) object(n *xmlNode) {
	var order []string
	groups := make(map[string][]*xmlNode, len(n.children))
	for _, c := range n.children {
		if _, seen := groups[c.name]; !seen {
			order = append(order, c.name)
		}
		groups[c.name] = append(groups[c.name], c)
	}
	w.buf = append(w.buf, '{')
	for i, name := range order {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = appendJSONString(w.buf, name)
		w.buf = append(w.buf, ':')
		nodes := groups[name]
		switch item, isList := xmlListKeys[name]; {
		case isList:
			w.list(nodes, item)
		case len(nodes) > 1:
			w.buf = append(w.buf, '[')
			for j, c := range nodes {
				if j > 0 {
					w.buf = append(w.buf, ',')
				}
				w.value(c)
			}
			w.buf = append(w.buf, ']')
		default:
			w.value(nodes[0])
		}
	}
	w.buf = append(w.buf, '}')
}

// list writes the items of a list key's elements as one array. An element
// is either a wrapper around its items or, when repeated, one item itself.
func (w *xmlWriter) list(nodes []*xmlNode, item xmlItem) {
	var items []*xmlNode
	for _, n := range nodes {
		switch {
		case n.null:
		case len(n.children) == 0:
			if len(bytes.TrimSpace(n.text)) > 0 {
				items = append(items, n)
			}
		case item == itemObject && !wrapsObjects(n):
			items = append(items, n)
		default:
			items = append(items, listItems(n)...)
		}
	}
	w.buf = append(w.buf, '[')
	for i, it := range items {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		switch {
		case it.null:
			w.buf = append(w.buf, "null"...)
		case len(it.children) > 0:
			w.object(it)
		case item == itemInt:
			w.scalar(it.text, true, false)
		default:
			w.scalar(it.text, false, false)
		}
	}
	w.buf = append(w.buf, ']')
}

// wrapsObjects reports whether a list element wraps object items (every
// child has children of its own) rather than being one object item.
func wrapsObjects(n *xmlNode) bool {
	for _, c := range n.children {
		if c.name != "size" && len(c.children) == 0 {
			return false
		}
	}
	return true
}

// listItems returns the items of a wrapper element, leaving out the <size>
// element Jamf's Classic API puts in its lists.
func listItems(n *xmlNode) []*xmlNode {
	items := make([]*xmlNode, 0, len(n.children))
	for _, c := range n.children {
		if c.name == "size" {
			continue
		}
		items = append(items, c)
	}
	return items
}

// value writes one element's value: an object for an element with children
// or a known object key, else a scalar typed by its key.
func (w *xmlWriter) value(n *xmlNode) {
	switch {
	case n.null:
		w.buf = append(w.buf, "null"...)
	case len(n.children) > 0:
		w.object(n)
	case xmlObjectKeys[n.name] && len(bytes.TrimSpace(n.text)) == 0:
		w.buf = append(w.buf, "{}"...)
	default:
		w.scalar(n.text, xmlIntKeys[n.name], xmlBoolKeys[n.name])
	}
}

// scalar writes text as a number when asInt and it is an integer, as a
// boolean when asBool and it is true or false, else as a string. Text that
// is only white space is the empty string.
func (w *xmlWriter) scalar(text []byte, asInt, asBool bool) {
	trimmed := string(bytes.TrimSpace(text))
	if asInt {
		if n, err := strconv.ParseInt(trimmed, 10, 64); err == nil {
			w.buf = strconv.AppendInt(w.buf, n, 10)
			return
		}
	}
	if asBool {
		switch strings.ToLower(trimmed) {
		case "true":
			w.buf = append(w.buf, "true"...)
			return
		case "false":
			w.buf = append(w.buf, "false"...)
			return
		}
	}
	if trimmed == "" {
		w.buf = append(w.buf, `""`...)
		return
	}
	w.buf = appendJSONString(w.buf, string(text))
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD;
// U+2028 and U+2029 are escaped so the result is also valid JavaScript.
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			buf = append(buf, "\ufffd"...)
		case r == '"' || r == '\\':
			buf = append(buf, '\\', byte(r))
		case r == '\n':
			buf = append(buf, '\\', 'n')
		case r == '\r':
			buf = append(buf, '\\', 'r')
		case r == '\t':
			buf = append(buf, '\\', 't')
		case r < 0x20 || r == '\u2028' || r == '\u2029':
			buf = append(buf, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		default:
			buf = append(buf, s[i:i+size]...)
		}
		i += size
	}
	return append(buf, '"')
}
