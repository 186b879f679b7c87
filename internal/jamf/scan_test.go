package jamf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parseTwoPass is Parse's first stage as it was before scan: json.Valid
// over the body, then a second walk over the top-level members, handed to
// the same envelopeFrom. Parse must answer exactly as it does, errors
// included.
func parseTwoPass(body []byte) (Envelope, error) {
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
	members(trimmed, func(key, val []byte) {
		switch string(key) {
		case "webhook":
			rawHook = val
		case "event":
			rawEvent = val
		}
	})
	env, err := envelopeFrom(rawHook, rawEvent)
	env.parsed = err == nil
	return env, err
}

// sameParse fails t when Parse and parseTwoPass answer body differently.
func sameParse(t *testing.T, body []byte) {
	t.Helper()
	got, gotErr := Parse(body)
	want, wantErr := parseTwoPass(body)
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && !bytes.Equal(trimmed, bytes.Trim(body, " \t\r\n")) {
		// The two-pass parse trimmed Unicode white space that JSON does
		// not allow around a value (\v, \f, U+0085, U+00A0...) and could
		// accept such a body; FuzzParse found it. Parse refuses it.
		if !errors.Is(gotErr, ErrNotJSON) || gotErr.Error() != ErrNotJSON.Error()+": body is not valid JSON" {
			t.Fatalf("Parse(%q) error = %v, want ErrNotJSON: body is not valid JSON", body, gotErr)
		}
		return
	}
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("Parse(%q) error = %v, the two-pass parse says %v", body, gotErr, wantErr)
	}
	if gotErr != nil {
		var gf, wf *FieldError
		if errors.Is(gotErr, ErrNotJSON) != errors.Is(wantErr, ErrNotJSON) || errors.As(gotErr, &gf) != errors.As(wantErr, &wf) {
			t.Fatalf("Parse(%q) error = %#v, the two-pass parse says %#v", body, gotErr, wantErr)
		}
		return
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(Envelope{})); diff != "" {
		t.Fatalf("Parse(%q) mismatch (-two-pass +Parse):\n%s", body, diff)
	}
	if len(got.Event) > 0 && &got.Event[0] != &want.Event[0] {
		t.Fatalf("Parse(%q) event is not the member the two-pass parse returns", body)
	}
}

// scanCases are bodies where a validator is easily wrong.
var scanCases = []string{
	``, ` `, `{`, `}`, `{}`, `[]`, `[`, `]`, `{]`, `[}`, `{}}`, `{}{}`, `[][]`, `{} `, ` {}`, "{}\t\r\n",
	`{"a"}`, `{"a":}`, `{"a":1,}`, `{,"a":1}`, `{"a":1 "b":2}`, `{"a" 1}`, `{a:1}`, `{'a':1}`, `{"a":1}}`,
	`[1,]`, `[,1]`, `[1 2]`, `[1,,2]`, `[[[]]]`, `[[[]]`, `[{}]`, `[{"a":[{}]}]`,
	`0`, `-0`, `-`, `01`, `1.`, `.1`, `1.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e-07`, `+1`, `1x`, `0x1`, `--1`, `1.5.5`,
	`true`, `false`, `null`, `tru`, `nul`, `truex`, `True`, `NULL`, `[true,false,null]`, `[truefalse]`,
	`""`, `"a"`, `"\"`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u00e9"`, `"\u00E9"`, `"\u00g9"`, `"\u00e"`, `"\x"`, `"\'"`,
	"\"a\x01b\"", "\"a\x1fb\"", "\"a\x7fb\"", "\"\xff\xfe\"", "\"a\tb\"", "\"é\"", "\xef\xbb\xbf{}", "{\v}", "{\f}",
	"\u00a0{}", "{}\u0085", `{"a":"}"}`, `{"a":"\"}"}`, `{"\"":1}`,
	`{"webhook":{"webhookEvent":"A"},"event":{}}`,
	`{"webhook":{"webhookEvent":"A"},"event":{},"event":[]}`,
	`{"webhook":{"webhookEvent":"A"},"event":{},"event":{"x":1}}`,
	`{"webhook":1,"webhook":{"webhookEvent":"A"},"event":{}}`,
	`{"webhook":{"webhookEvent":"A"},"\u0065vent":{"a":1}}`,
	`{"web\u0068ook":{"webhookEvent":"A"},"event":{}}`,
	`{"webhook":{"webhookEvent":"A","event":[]},"event":{"webhook":2}}`,
	`{"event":{"webhook":{"webhookEvent":"B"}},"webhook":{"webhookEvent":"A"}}`,
	`{"webhook":{"webhookEvent":"A"},"event":{}, "x":[1,{"event":null}]}`,
	`{"webhook" : { "webhookEvent" : "A" } , "event" : { } }`,
	"{\"webhook\":{\"webhookEvent\":\"A\"},\"event\xff\":[]}",
	`{"webhook":{"webhookEvent":"A"},"event":{}`,
	`{"webhook":{"webhookEvent":"A"},"event":{"a":[1,2,{"b":"c"}]}}x`,
	`[{"webhook":{"webhookEvent":"A"},"event":{}}]`,
}

func TestScanMatchesJSONValid(t *testing.T) {
	for _, c := range scanCases {
		if _, ok := scan([]byte(c)); ok != json.Valid([]byte(c)) {
			t.Errorf("scan(%q) = %v, json.Valid says %v", c, ok, !ok)
		}
	}
}

func TestScanDepth(t *testing.T) {
	tests := []struct {
		name  string
		depth int
	}{
		{name: "arrays at the limit", depth: maxDepth},
		{name: "arrays past the limit", depth: maxDepth + 1},
		{name: "objects at the limit", depth: maxDepth},
		{name: "objects past the limit", depth: maxDepth + 1},
		{name: "deep", depth: 3 * maxDepth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := strings.Repeat("[", tt.depth) + strings.Repeat("]", tt.depth)
			if strings.HasPrefix(tt.name, "objects") {
				body = strings.Repeat(`{"event":`, tt.depth) + "1" + strings.Repeat("}", tt.depth)
			}
			_, ok := scan([]byte(body))
			if want := json.Valid([]byte(body)); ok != want {
				t.Errorf("scan(depth %d) = %v, json.Valid says %v", tt.depth, ok, want)
			}
			sameParse(t, []byte(body))
		})
	}
}

func TestParseMatchesTwoPass(t *testing.T) {
	for _, c := range scanCases {
		sameParse(t, []byte(c))
	}
	samples, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		sameParse(t, b)
	}
}

// FuzzScan checks scan against json.Valid, and Parse against the two-pass
// parse it replaced, on arbitrary bodies.
func FuzzScan(f *testing.F) {
	for _, c := range scanCases {
		f.Add([]byte(c))
	}
	samples, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range samples {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, ok := scan(body); ok != json.Valid(body) {
			t.Fatalf("scan(%q) = %v, json.Valid says %v", body, ok, !ok)
		}
		sameParse(t, body)
	})
}
