package jamf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The decoder as it was before it read the event's bytes directly: the
// event decoded by encoding/json into a generic map, then the model filled
// from the map. Decode must give exactly what it gave, on every valid JSON
// object.

// mapDecodeObject decodes an encoded JSON object into a generic map whose
// numbers are json.Number.
func mapDecodeObject(raw []byte) (map[string]any, error) {
	if kindOf(raw) == "nothing" {
		return nil, &FieldError{Field: "event", Problem: "missing"}
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, &FieldError{Field: "event", Problem: "not valid JSON: " + err.Error()}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &FieldError{Field: "event", Problem: "must be an object, got " + kindOf(raw)}
	}
	return m, nil
}

// mapLookup finds the value of the first of names present in obj: exact names
// first, then a case-insensitive match (the smallest matching key wins, so
// the result never depends on map order).
func mapLookup(obj map[string]any, names ...string) (any, bool) {
	for _, n := range names {
		if v, ok := obj[n]; ok {
			return v, true
		}
	}
	best := ""
	found := false
	for k := range obj {
		for _, n := range names {
			if strings.EqualFold(k, n) && (!found || k < best) {
				best, found = k, true
			}
		}
	}
	if !found {
		return nil, false
	}
	return obj[best], true
}

// mapFillStruct sets the fields of the struct v from obj.
func mapFillStruct(v reflect.Value, obj map[string]any) {
	for _, spec := range specsOf(v.Type()).fields {
		raw, ok := mapLookup(obj, spec.names...)
		if !ok {
			continue
		}
		if spec.unwrap != "" {
			if inner, isObj := raw.(map[string]any); isObj {
				raw, _ = mapLookup(inner, spec.unwrap)
			}
		}
		mapFill(v.Field(spec.index), raw)
	}
}

// mapFill sets v from a generic JSON value and reports whether it found a
// usable value.
func mapFill(v reflect.Value, raw any) bool {
	if raw == nil {
		return false
	}
	switch v.Kind() {
	case reflect.String:
		s, ok := mapAsString(raw)
		if ok {
			v.SetString(s)
		}
		return ok
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := mapAsInt(raw)
		if !ok || v.OverflowInt(n) {
			return false
		}
		v.SetInt(n)
		return true
	case reflect.Bool:
		b, ok := mapAsBool(raw)
		if ok {
			v.SetBool(b)
		}
		return ok
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if !mapFill(p.Elem(), raw) {
			return false
		}
		v.Set(p)
		return true
	case reflect.Slice:
		return mapFillSlice(v, raw)
	case reflect.Struct:
		if v.Type() == timeType {
			t, ok := mapAsTime(raw)
			if ok {
				v.Set(reflect.ValueOf(t))
			}
			return ok
		}
		obj, ok := raw.(map[string]any)
		if !ok {
			return false
		}
		mapFillStruct(v, obj)
		return true
	case reflect.Map:
		obj, ok := raw.(map[string]any)
		if !ok || v.Type() != reflect.TypeOf(obj) {
			return false
		}
		v.Set(reflect.ValueOf(obj))
		return true
	case reflect.Interface:
		if !reflect.TypeOf(raw).AssignableTo(v.Type()) {
			return false
		}
		v.Set(reflect.ValueOf(raw))
		return true
	}
	return false
}

// mapFillSlice sets a slice from a JSON array, or from a single value, which
// becomes a one-element list. Elements that give no usable value, and empty
// strings, are skipped.
func mapFillSlice(v reflect.Value, raw any) bool {
	items, ok := raw.([]any)
	if !ok {
		items = []any{raw}
	}
	elem := v.Type().Elem()
	out := reflect.MakeSlice(v.Type(), 0, len(items))
	for _, item := range items {
		e := reflect.New(elem).Elem()
		if !mapFill(e, item) {
			continue
		}
		if e.Kind() == reflect.String && e.Len() == 0 {
			continue
		}
		out = reflect.Append(out, e)
	}
	v.Set(out)
	return true
}

// mapAsString reads a string, a number or a boolean as text.
func mapAsString(raw any) (string, bool) {
	switch x := raw.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// mapAsInt reads a number or a numeric string as an integer.
func mapAsInt(raw any) (int64, bool) {
	switch x := raw.(type) {
	case json.Number:
		return parseInt(x.String())
	case string:
		return parseInt(strings.TrimSpace(x))
	case float64:
		if math.IsNaN(x) || x < -9.2e18 || x > 9.2e18 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

// mapAsBool reads a boolean, a string such as "true", "false", "1" or "0", or a
// number (non-zero is true).
func mapAsBool(raw any) (bool, bool) {
	switch x := raw.(type) {
	case bool:
		return x, true
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "1", "yes":
			return true, true
		case "false", "0", "no":
			return false, true
		}
	case json.Number:
		f, err := strconv.ParseFloat(x.String(), 64)
		if err == nil {
			return f != 0, true
		}
	case float64:
		return x != 0, true
	}
	return false, false
}

// mapAsTime reads an epoch timestamp (milliseconds, or seconds under 1e12), as
// a number or a numeric string, or an RFC 3339 string.
func mapAsTime(raw any) (time.Time, bool) {
	if n, ok := mapAsInt(raw); ok {
		t := epoch(n)
		return t, !t.IsZero()
	}
	s, ok := raw.(string)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil || t.Year() > 9999 || t.Year() < 1 {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// mapDecode decodes the envelope's event into the model of its event type,
// matched with Canonical:
//
//   - ComputerAdded, ComputerInventoryCompleted, ComputerPushCapabilityChanged: Computer
//   - every MobileDevice* event: MobileDevice
//   - JSSStartup, JSSShutdown: Server
//   - the other catalog events: the struct of the same name
//   - anything else: Unknown
//
// Decoding is lenient (see the field docs); it fails only when the event is
// not a JSON object, which Parse already rules out. Numbers in Unknown.Fields
// and DeviceRateLimited.Fields are json.Number.
func mapDecode(env Envelope) (any, error) {
	obj, err := mapDecodeObject(env.Event)
	if err != nil {
		return nil, err
	}
	switch Canonical(env.Webhook.Event) {
	case EventComputerAdded, EventComputerInventoryCompleted, EventComputerPushCapabilityChanged:
		var c Computer
		mapFillComputer(&c, obj)
		return c, nil
	case EventComputerCheckIn:
		var e ComputerCheckIn
		mapFillValue(&e, obj)
		mapFillComputer(&e.Computer, obj)
		return e, nil
	case EventComputerPolicyFinished:
		var e ComputerPolicyFinished
		mapFillValue(&e, obj)
		mapFillComputer(&e.Computer, obj)
		return e, nil
	case EventComputerPatchPolicyCompleted:
		var e ComputerPatchPolicyCompleted
		mapFillValue(&e, obj)
		mapFillComputer(&e.Computer, obj)
		return e, nil
	case EventMobileDeviceCheckIn, EventMobileDeviceCommandCompleted, EventMobileDeviceEnrolled,
		EventMobileDeviceInventoryCompleted, EventMobileDevicePushSent, EventMobileDeviceUnEnrolled:
		var d MobileDevice
		if nested, ok := mapLookup(obj, "mobileDevice"); ok {
			if m, isObj := nested.(map[string]any); isObj {
				obj = m
			}
		}
		mapFillValue(&d, obj)
		return d, nil
	case EventJSSStartup, EventJSSShutdown:
		return mapDecodeAs[Server](obj), nil
	case EventDeviceAddedToDEP:
		return mapDecodeAs[DeviceAddedToDEP](obj), nil
	case EventDeviceRateLimited:
		e := mapDecodeAs[DeviceRateLimited](obj)
		e.Fields = obj
		return e, nil
	case EventPatchSoftwareTitleUpdated:
		return mapDecodeAs[PatchSoftwareTitleUpdated](obj), nil
	case EventPushSent:
		return mapDecodeAs[PushSent](obj), nil
	case EventRestAPIOperation:
		return mapDecodeAs[RestAPIOperation](obj), nil
	case EventSCEPChallenge:
		return mapDecodeAs[SCEPChallenge](obj), nil
	case EventSmartGroupComputerMembershipChange:
		return mapDecodeAs[SmartGroupComputerMembershipChange](obj), nil
	case EventSmartGroupMobileDeviceMembershipChange:
		return mapDecodeAs[SmartGroupMobileDeviceMembershipChange](obj), nil
	case EventSmartGroupUserMembershipChange:
		return mapDecodeAs[SmartGroupUserMembershipChange](obj), nil
	default:
		return Unknown{Fields: obj}, nil
	}
}

// mapDecodeAs fills a new T from obj.
func mapDecodeAs[T any](obj map[string]any) T {
	var v T
	mapFillValue(&v, obj)
	return v
}

// mapFillValue fills the struct that p points to from obj.
func mapFillValue(p any, obj map[string]any) {
	mapFillStruct(reflect.ValueOf(p).Elem(), obj)
}

// mapFillComputer fills c from obj.computer when that is an object, else from
// obj itself: the flat form of old servers and of the flat events.
func mapFillComputer(c *Computer, obj map[string]any) {
	*c = Computer{}
	if nested, ok := mapLookup(obj, "computer"); ok {
		if m, isObj := nested.(map[string]any); isObj {
			mapFillValue(c, m)
			return
		}
	}
	mapFillValue(c, obj)
}

// sameDecode fails t when Decode and mapDecode decode an event differently.
func sameDecode(t *testing.T, event string, raw []byte) {
	t.Helper()
	env := Envelope{Webhook: Webhook{Event: event}, Event: raw}
	got, gotErr := Decode(env)
	want, wantErr := mapDecode(env)
	if !json.Valid(raw) {
		// The map decoder read the first value and ignored the rest; Decode
		// refuses what is not one valid JSON value, as Parse does.
		if gotErr == nil {
			t.Fatalf("Decode(%s, %q) accepted an event that is not valid JSON", event, raw)
		}
		return
	}
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("Decode(%s, %q) error = %v, the map decoder says %v", event, raw, gotErr, wantErr)
	}
	var fe *FieldError
	if gotErr != nil && (!errors.As(gotErr, &fe) || fe.Field != "event") {
		t.Fatalf("Decode(%s, %q) error = %#v, want a *FieldError for event", event, raw, gotErr)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Decode(%s, %q) mismatch (-map decoder +Decode):\n%s", event, raw, diff)
	}
	// An envelope from Parse, whose event Decode does not scan again,
	// decodes the same.
	name, _ := json.Marshal(event)
	parsed, err := Parse(fmt.Appendf(nil, `{"webhook":{"webhookEvent":%s},"event":%s}`, name, raw))
	if gotErr != nil || err != nil {
		if gotErr == nil && strings.TrimSpace(event) != "" {
			t.Fatalf("Parse of an envelope around %q: %v", raw, err)
		}
		return
	}
	fromParse, err := Decode(parsed)
	if err != nil {
		t.Fatalf("Decode(Parse(%s, %q)): %v", event, raw, err)
	}
	if diff := cmp.Diff(got, fromParse); diff != "" {
		t.Fatalf("Decode(%s, %q) mismatch (-built +parsed):\n%s", event, raw, diff)
	}
}

// decodeCases are events where a lenient decoder is easily wrong.
var decodeCases = []string{
	`{}`, `{"computer":{}}`, `{"computer":null}`, `{"computer":[{"jssID":1}]}`, `{"computer":"x","jssID":2}`,
	`{"jssID":1,"jssID":2}`, `{"JSSID":1,"jssid":2}`, `{"jssid":2,"JSSID":1}`, `{"JssId":3,"JSSID":1,"jssId":2}`,
	`{"jss\u0049D":7}`, `{"\u006aSSID":8}`, `{"jſsID":9}`, `{"jssId":1,"jssId":2,"JSSID":3}`, `{"K":1}`,
	`{"deviceName":"a\u0000b"}`, `{"deviceName":"\ud800"}`, "{\"deviceName\":\"\xff\"}", "{\"deviceName\xff\":\"x\"}",
	`{"deviceName":1e400,"jssID":1e400}`, `{"jssID":-0,"serialNumber":-0.0}`, `{"jssID":"0x10"}`, `{"jssID":" 12 "}`,
	`{"jssID":12.9}`, `{"jssID":"1.5e3"}`, `{"jssID":9223372036854775807}`, `{"jssID":9223372036854775808}`,
	`{"jssID":-9223372036854775809}`, `{"successful":"YES"}`, `{"successful":2}`, `{"successful":0.0}`,
	`{"successful":"1e400"}`, `{"successful":1e400}`, `{"policyId":true}`, `{"deviceName":true,"model":false,"udid":null}`,
	`{"eventActions":{"action":["a",null,"",1,true,{}]}}`, `{"eventActions":{"Action":"x"}}`, `{"eventActions":{}}`,
	`{"eventActions":[]}`, `{"eventActions":null}`, `{"eventActions":""}`, `{"eventActions":[[]]}`,
	`{"groupAddedDevicesIds":[1,"2"," 3 ",null,true,{},[],1.9,"x",9223372036854775808]}`, `{"groupAddedDevicesIds":{}}`,
	`{"groupAddedDevices":[{"jssID":1},null,"x",[],{"computer":{"jssID":3}}]}`, `{"groupAddedDevices":{"jssID":1}}`,
	`{"lastUpdate":"2024-11-29T08:00:00+02:00"}`, `{"lastUpdate":"99999-01-01T00:00:00Z"}`, `{"lastUpdate":0}`,
	`{"lastUpdate":-5}`, `{"lastUpdate":"1732876500000"}`, `{"lastUpdate":true}`, `{"deviceAssignedDate":253402300800000}`,
	`{"reportUrls":"a","reportUrl":["b"]}`, `{"reportURL":"c"}`, `{"mobileDevice":{"jssID":1},"jssID":2}`, `{"mobileDevice":[]}`,
	`{"targetUser":{"password":"p","username":"u"},"targetDevice":"x"}`, `{"payloadTypes":[{"a":1}]}`,
	` { "jssID" : 1 , "deviceName" : "a b" } `, `{"a":{"b":[1,{"c":"\""}]},"jssID":5}`,
	`[]`, `"x"`, `1`, `null`, ``, ` `, `{"a":`, `{} {}`, `{}x`,
}

func TestDecodeMatchesMapDecode(t *testing.T) {
	samples, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var events [][]byte
	for _, s := range samples {
		body, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		env, err := Parse(body)
		if err != nil {
			t.Fatalf("Parse(%s) error = %v", s, err)
		}
		events = append(events, env.Event)
	}
	for _, c := range decodeCases {
		events = append(events, []byte(c))
	}
	for _, e := range append(Events, EventInfo{Name: "Future"}, EventInfo{Name: "computercheckin"}) {
		for _, raw := range events {
			sameDecode(t, e.Name, raw)
		}
	}
}

// FuzzDecode checks Decode against the map decoder on arbitrary events,
// each decoded as the catalog event picked by its length.
func FuzzDecode(f *testing.F) {
	samples, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range samples {
		body, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		if env, err := Parse(body); err == nil {
			f.Add([]byte(env.Event))
		}
	}
	for _, c := range decodeCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		sameDecode(t, Events[len(raw)%len(Events)].Name, raw)
	})
}
