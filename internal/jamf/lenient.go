package jamf

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The event models are plain structs; fill sets them from a decoded JSON
// object leniently, because Jamf Pro's payloads drift between versions:
// numbers arrive as strings and strings as numbers, keys change case (jssID,
// jssid), a list arrives as a single value, and any field may be missing or
// null. fill never fails: a value it cannot use leaves the field at its zero
// value.
//
// A field's JSON name comes from its json tag. The jamf tag adds alternative
// names ("jamf:\"reportUrl\"") and the unwrap option ("jamf:\"unwrap=action\""),
// which reads a list from the named key when the value arrives as an object.
// Keys are matched exactly first, then by alternative name, then
// case-insensitively.

// fieldSpec is how fill sets one struct field.
type fieldSpec struct {
	index  int
	names  []string
	unwrap string
}

var (
	specCache sync.Map // reflect.Type -> []fieldSpec
	timeType  = reflect.TypeFor[time.Time]()
)

// specsOf returns the field specs of a struct type, computed once.
func specsOf(t reflect.Type) []fieldSpec {
	if s, ok := specCache.Load(t); ok {
		return s.([]fieldSpec)
	}
	var specs []fieldSpec
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		spec := fieldSpec{index: i, names: []string{name}}
		if extra := f.Tag.Get("jamf"); extra != "" {
			for opt := range strings.SplitSeq(extra, ",") {
				if key, ok := strings.CutPrefix(opt, "unwrap="); ok {
					spec.unwrap = key
				} else if opt != "" {
					spec.names = append(spec.names, opt)
				}
			}
		}
		specs = append(specs, spec)
	}
	s, _ := specCache.LoadOrStore(t, specs)
	return s.([]fieldSpec)
}

// decodeObject decodes an encoded JSON object into a generic map whose
// numbers are json.Number, so that no digit is lost.
func decodeObject(raw []byte) (map[string]any, error) {
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

// lookup finds the value of the first of names present in obj: exact names
// first, then a case-insensitive match (the smallest matching key wins, so
// the result never depends on map order).
func lookup(obj map[string]any, names ...string) (any, bool) {
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

// fillStruct sets the fields of the struct v from obj.
func fillStruct(v reflect.Value, obj map[string]any) {
	for _, spec := range specsOf(v.Type()) {
		raw, ok := lookup(obj, spec.names...)
		if !ok {
			continue
		}
		if spec.unwrap != "" {
			if inner, isObj := raw.(map[string]any); isObj {
				raw, _ = lookup(inner, spec.unwrap)
			}
		}
		fill(v.Field(spec.index), raw)
	}
}

// fill sets v from a generic JSON value and reports whether it found a
// usable value.
func fill(v reflect.Value, raw any) bool {
	if raw == nil {
		return false
	}
	switch v.Kind() {
	case reflect.String:
		s, ok := asString(raw)
		if ok {
			v.SetString(s)
		}
		return ok
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := asInt(raw)
		if !ok || v.OverflowInt(n) {
			return false
		}
		v.SetInt(n)
		return true
	case reflect.Bool:
		b, ok := asBool(raw)
		if ok {
			v.SetBool(b)
		}
		return ok
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if !fill(p.Elem(), raw) {
			return false
		}
		v.Set(p)
		return true
	case reflect.Slice:
		return fillSlice(v, raw)
	case reflect.Struct:
		if v.Type() == timeType {
			t, ok := asTime(raw)
			if ok {
				v.Set(reflect.ValueOf(t))
			}
			return ok
		}
		obj, ok := raw.(map[string]any)
		if !ok {
			return false
		}
		fillStruct(v, obj)
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

// fillSlice sets a slice from a JSON array, or from a single value, which
// becomes a one-element list. Elements that give no usable value, and empty
// strings, are skipped.
func fillSlice(v reflect.Value, raw any) bool {
	items, ok := raw.([]any)
	if !ok {
		items = []any{raw}
	}
	elem := v.Type().Elem()
	out := reflect.MakeSlice(v.Type(), 0, len(items))
	for _, item := range items {
		e := reflect.New(elem).Elem()
		if !fill(e, item) {
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

// asString reads a string, a number or a boolean as text.
func asString(raw any) (string, bool) {
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

// asInt reads a number or a numeric string as an integer.
func asInt(raw any) (int64, bool) {
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

// asBool reads a boolean, a string such as "true", "false", "1" or "0", or a
// number (non-zero is true).
func asBool(raw any) (bool, bool) {
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

// asTime reads an epoch timestamp (milliseconds, or seconds under 1e12), as
// a number or a numeric string, or an RFC 3339 string.
func asTime(raw any) (time.Time, bool) {
	if n, ok := asInt(raw); ok {
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
