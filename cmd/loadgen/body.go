package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// checkInTemplate is a ComputerCheckIn webhook as Jamf Pro 11 sends it
// (made-up person, documentation-range addresses). %s is the event name.
const checkInTemplate = `{
  "webhook": {
    "id": 12,
    "name": "Slack - Computer Check-In",
    "webhookEvent": %s,
    "eventTimestamp": 1732871702117
  },
  "event": {
    "computer": {
      "alternateMacAddress": "3E:A6:F6:12:4B:7F",
      "building": "HQ",
      "department": "Engineering",
      "deviceName": "MBP-JRIVERA-01",
      "emailAddress": "jordan.rivera@example.com",
      "ipAddress": "203.0.113.45",
      "jssID": 1322,
      "macAddress": "3C:A6:F6:12:4B:7E",
      "model": "MacBook Pro (14-inch, 2023)",
      "osBuild": "23G93",
      "osVersion": "14.6.1",
      "phone": "555-0142",
      "position": "Software Engineer",
      "realName": "Jordan Rivera",
      "reportedIpAddress": "192.168.10.23",
      "room": "3A-101",
      "serialNumber": "C02FAKE1Q6L4",
      "udid": "6F2B9C1E-4A7D-5B3E-9C21-7D5E8A1F0B42",
      "userDirectoryID": "-1",
      "username": "jrivera",
      "managementId": "8f5c2d9e-1b3a-4e7f-9a6c-2d4b8e0f1a37"
    },
    "trigger": "CLIENT_CHECKIN",
    "username": "jrivera"
  }
}
`

// checkInBody returns the built-in body with event as webhook.webhookEvent.
func checkInBody(event string) []byte {
	quoted, err := json.Marshal(event)
	if err != nil {
		panic("loadgen: a string always marshals: " + err.Error())
	}
	return fmt.Appendf(nil, checkInTemplate, quoted)
}

// span is where a varied value sits in a body.
type span struct {
	key        string
	start, end int // the value's characters, quotes excluded
	number     bool
}

// variedKeys are the fields rewritten on every request, so that no two
// requests of a run carry the same body and JetStream's dedup stores each.
var variedKeys = []string{"udid", "serialNumber", "eventTimestamp"}

// findSpans locates the value of the first occurrence of each of keys in a
// JSON or XML body: "key": "value", "key": 123 or <key>value</key>.
func findSpans(body []byte, keys []string) []span {
	var spans []span
	for _, key := range keys {
		s, ok := jsonSpan(body, key)
		if !ok {
			s, ok = xmlSpan(body, key)
		}
		if ok {
			s.key = key
			spans = append(spans, s)
		}
	}
	return spans
}

func jsonSpan(body []byte, key string) (span, bool) {
	i := bytes.Index(body, []byte(`"`+key+`"`))
	if i < 0 {
		return span{}, false
	}
	rest := body[i+len(key)+2:]
	j := 0
	for j < len(rest) && (rest[j] == ' ' || rest[j] == '\t' || rest[j] == '\n' || rest[j] == '\r' || rest[j] == ':') {
		j++
	}
	start := i + len(key) + 2 + j
	switch {
	case start < len(body) && body[start] == '"':
		end := bytes.IndexByte(body[start+1:], '"')
		if end <= 0 || bytes.IndexByte(body[start+1:start+1+end], '\\') >= 0 {
			return span{}, false
		}
		return span{start: start + 1, end: start + 1 + end}, true
	case start < len(body) && body[start] >= '1' && body[start] <= '9':
		end := start
		for end < len(body) && body[end] >= '0' && body[end] <= '9' {
			end++
		}
		return span{start: start, end: end, number: true}, true
	}
	return span{}, false
}

func xmlSpan(body []byte, key string) (span, bool) {
	open := []byte("<" + key + ">")
	i := bytes.Index(body, open)
	if i < 0 {
		return span{}, false
	}
	start := i + len(open)
	end := bytes.Index(body[start:], []byte("</"+key+">"))
	if end <= 0 {
		return span{}, false
	}
	v := body[start : start+end]
	number := bytes.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }) < 0 && v[0] != '0'
	if !number && bytes.ContainsAny(v, "<&") {
		return span{}, false
	}
	return span{start: start, end: start + end, number: number}, true
}

// stamp writes seq into every span of body, in place and without changing
// its length: the last characters of a string become hex digits (12 at most,
// which stays unique for 2^48 requests); the last digits of a number
// become decimal digits, keeping its first digit so it stays a valid number.
func stamp(body []byte, spans []span, seq uint64) {
	const hex = "0123456789ABCDEF"
	for _, s := range spans {
		if s.number {
			n := min(s.end-s.start-1, 12)
			v := seq
			for i := s.end - 1; i >= s.end-n; i-- {
				body[i] = byte('0' + v%10)
				v /= 10
			}
			continue
		}
		n := min(s.end-s.start, 12)
		v := seq
		for i := s.end - 1; i >= s.end-n; i-- {
			body[i] = hex[v&0xF]
			v >>= 4
		}
	}
}

// describeSpans names the varied fields for the report.
func describeSpans(spans []span) string {
	if len(spans) == 0 {
		return "none (identical bodies: JetStream's dedup stores one per token)"
	}
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.key
	}
	return strings.Join(names, ", ")
}
