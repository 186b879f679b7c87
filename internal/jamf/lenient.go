package jamf

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The event models are plain structs; fill sets them straight from the
// encoded JSON leniently, because Jamf Pro's payloads drift between
// versions: numbers arrive as strings and strings as numbers, keys change
// case (jssID, jssid), a list arrives as a single value, and any field may
// be missing or null. fill never fails: a value it cannot use leaves the
// field at its zero value.
//
// A field's JSON name comes from its json tag. The jamf tag adds alternative
// names ("jamf:\"reportUrl\"") and the unwrap option ("jamf:\"unwrap=action\""),
// which reads a list from the named key when the value arrives as an object.
// Keys are matched exactly first, then by alternative name, then
// case-insensitively (the smallest matching key wins); a repeated key keeps
// its last value, as encoding/json does.
//
// fill reads the event's bytes as they are, skipping what no field asks for,
// and never builds a generic map: the bytes were scanned once by Parse (or
// by Decode, for an envelope that did not come from Parse), so they are
// valid JSON. Numbers keep their digits as written, as json.Number does.

// fieldSpec is how fill sets one struct field.
type fieldSpec struct {
	index  int
	names  []string
	unwrap string
}

// structSpec is how fill sets the fields of one struct type.
type structSpec struct {
	fields []fieldSpec
	// byName finds the fields a key names exactly, with the place of the
	// name among the field's names.
	byName map[string][]nameRef
}

// nameRef is one name of a field: the field's place in fields, and the
// name's place in the field's names (0 for its json name).
type nameRef struct {
	field, rank int
}

var (
	specCache sync.Map // reflect.Type -> *structSpec
	timeType  = reflect.TypeFor[time.Time]()
	mapType   = reflect.TypeFor[map[string]any]()
	intsType  = reflect.TypeFor[[]int64]()
	textsType = reflect.TypeFor[[]string]()
)

// specsOf returns the field specs of a struct type, computed once.
func specsOf(t reflect.Type) *structSpec {
	if s, ok := specCache.Load(t); ok {
		return s.(*structSpec)
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
	ss := &structSpec{fields: specs, byName: map[string][]nameRef{}}
	for i, f := range specs {
		for rank, n := range f.names {
			ss.byName[n] = append(ss.byName[n], nameRef{field: i, rank: rank})
		}
	}
	s, _ := specCache.LoadOrStore(t, ss)
	return s.(*structSpec)
}

// checkObject reports, as a *FieldError for "event", whether raw is not
// exactly one valid JSON object.
func checkObject(raw []byte) error {
	k := kindOf(raw)
	if k == "nothing" {
		return &FieldError{Field: "event", Problem: "missing"}
	}
	if _, ok := scan(raw); !ok {
		return &FieldError{Field: "event", Problem: "not valid JSON"}
	}
	if k != "object" {
		return &FieldError{Field: "event", Problem: "must be an object, got " + k}
	}
	return nil
}

// decodeObject decodes an encoded JSON object into a generic map whose
// numbers are json.Number, so that no digit is lost. Only events kept whole
// (Unknown, DeviceRateLimited) need one.
func decodeObject(raw []byte) (map[string]any, error) {
	if err := checkObject(raw); err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, &FieldError{Field: "event", Problem: "not valid JSON: " + err.Error()}
	}
	return m, nil
}

// member is one member of an encoded JSON object: its decoded key and its
// encoded value. ascii is set when the key is ASCII, so that it can only
// equal a field's name, ignoring case, if it has the name's length.
type member struct {
	key, val []byte
	ascii    bool
}

// appendMembers appends the members of the encoded JSON object obj to ms,
// in order.
func appendMembers(ms []member, obj []byte) []member {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return ms
	}
	for i++; ; {
		key, val, next, ok := nextMember(obj, i)
		if !ok {
			return ms
		}
		k := keyBytes(key)
		ms = append(ms, member{key: k, val: val, ascii: isASCII(k)})
		i = next
	}
}

// lookup finds the value of the first of names present in ms: exact names
// first, then a case-insensitive match (the smallest matching key wins, so
// that the result never depends on the order of keys). A repeated key keeps
// its last value.
func lookup(ms []member, names ...string) ([]byte, bool) {
	for _, n := range names {
		for i := len(ms) - 1; i >= 0; i-- {
			if string(ms[i].key) == n {
				return ms[i].val, true
			}
		}
	}
	return lookupFold(ms, names)
}

// lookupFold is the case-insensitive half of lookup.
func lookupFold(ms []member, names []string) ([]byte, bool) {
	best := -1
	for i, m := range ms {
		for _, n := range names {
			if (!m.ascii || len(m.key) == len(n)) && strings.EqualFold(string(m.key), n) &&
				(best < 0 || string(m.key) <= string(ms[best].key)) {
				best = i
			}
		}
	}
	if best < 0 {
		return nil, false
	}
	return ms[best].val, true
}

// isASCII reports whether b is ASCII.
func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// lookupIn is lookup over the members of the encoded object obj.
func lookupIn(obj []byte, names ...string) ([]byte, bool) {
	var buf [16]member
	return lookup(appendMembers(buf[:0], obj), names...)
}

// isObject reports whether an encoded JSON value is an object.
func isObject(raw []byte) bool {
	return len(raw) > 0 && raw[0] == '{'
}

// fillStruct sets the fields of the struct v from the encoded object obj.
func fillStruct(v reflect.Value, obj []byte) {
	var buf [32]member
	fillMembers(v, appendMembers(buf[:0], obj))
}

// fillMembers sets the fields of the struct v from an object's members,
// each found as lookup would find it: the members are read once for exact
// names, and only the fields none of them names exactly are looked for
// ignoring case.
func fillMembers(v reflect.Value, ms []member) {
	ss := specsOf(v.Type())
	var buf [32]nameRef // per field: the member found, and its name's rank
	found := buf[:0]
	if len(ss.fields) > len(buf) {
		found = make([]nameRef, 0, len(ss.fields))
	}
	for range ss.fields {
		found = append(found, nameRef{field: -1})
	}
	for i, m := range ms {
		for _, ref := range ss.byName[string(m.key)] {
			if f := &found[ref.field]; f.field < 0 || ref.rank <= f.rank {
				*f = nameRef{field: i, rank: ref.rank}
			}
		}
	}
	for i, spec := range ss.fields {
		var raw []byte
		if f := found[i]; f.field >= 0 {
			raw = ms[f.field].val
		} else if r, ok := lookupFold(ms, spec.names); ok {
			raw = r
		} else {
			continue
		}
		if spec.unwrap != "" && isObject(raw) {
			raw, _ = lookupIn(raw, spec.unwrap)
		}
		fill(v.Field(spec.index), raw)
	}
}

// fill sets v from an encoded JSON value (nil when missing) and reports
// whether it found a usable value.
func fill(v reflect.Value, raw []byte) bool {
	if len(raw) == 0 || raw[0] == 'n' {
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
		if !isObject(raw) {
			return false
		}
		fillStruct(v, raw)
		return true
	case reflect.Map:
		if v.Type() != mapType || !isObject(raw) {
			return false
		}
		m, err := decodeObject(raw)
		if err != nil {
			return false
		}
		v.Set(reflect.ValueOf(m))
		return true
	case reflect.Interface:
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var x any
		if d.Decode(&x) != nil || x == nil || !reflect.TypeOf(x).AssignableTo(v.Type()) {
			return false
		}
		v.Set(reflect.ValueOf(x))
		return true
	}
	return false
}

// fillSlice sets a slice from a JSON array, or from a single value, which
// becomes a one-element list. Elements that give no usable value, and empty
// strings, are skipped. Lists of IDs and of strings, which may hold
// thousands of elements, are built without reflection.
func fillSlice(v reflect.Value, raw []byte) bool {
	each := func(fn func(item []byte)) {
		if raw[0] != '[' {
			fn(raw)
			return
		}
		for i := 1; ; {
			item, next, ok := nextElement(raw, i)
			if !ok {
				return
			}
			fn(item)
			i = next
		}
	}
	switch v.Type() {
	case intsType:
		out := make([]int64, 0, 1)
		each(func(item []byte) {
			if n, ok := asInt(item); ok {
				out = append(out, n)
			}
		})
		v.Set(reflect.ValueOf(out))
	case textsType:
		out := make([]string, 0, 1)
		each(func(item []byte) {
			if s, ok := asString(item); ok && s != "" {
				out = append(out, s)
			}
		})
		v.Set(reflect.ValueOf(out))
	default:
		out := reflect.MakeSlice(v.Type(), 0, 1)
		elem := v.Type().Elem()
		each(func(item []byte) {
			e := reflect.New(elem).Elem()
			if fill(e, item) && (e.Kind() != reflect.String || e.Len() > 0) {
				out = reflect.Append(out, e)
			}
		})
		v.Set(out)
	}
	return true
}

// asString reads a string, a number (as written) or a boolean as text.
func asString(raw []byte) (string, bool) {
	switch c := raw[0]; {
	case c == '"':
		return unquote(raw), true
	case c == '-' || c >= '0' && c <= '9':
		return string(raw), true
	case c == 't':
		return "true", true
	case c == 'f':
		return "false", true
	}
	return "", false
}

// asInt reads a number or a numeric string as an integer.
func asInt(raw []byte) (int64, bool) {
	switch c := raw[0]; {
	case c == '-' || c >= '0' && c <= '9':
		return parseIntBytes(raw)
	case c == '"':
		return parseInt(strings.TrimSpace(unquote(raw)))
	}
	return 0, false
}

// asBool reads a boolean, a string such as "true", "false", "1" or "0", or a
// number (non-zero is true).
func asBool(raw []byte) (bool, bool) {
	switch c := raw[0]; {
	case c == 't':
		return true, true
	case c == 'f':
		return false, true
	case c == '"':
		switch strings.ToLower(strings.TrimSpace(unquote(raw))) {
		case "true", "1", "yes":
			return true, true
		case "false", "0", "no":
			return false, true
		}
	case c == '-' || c >= '0' && c <= '9':
		f, err := strconv.ParseFloat(string(raw), 64)
		if err == nil {
			return f != 0, true
		}
	}
	return false, false
}

// asTime reads an epoch timestamp (milliseconds, or seconds under 1e12), as
// a number or a numeric string, or an RFC 3339 string.
func asTime(raw []byte) (time.Time, bool) {
	if n, ok := asInt(raw); ok {
		t := epoch(n)
		return t, !t.IsZero()
	}
	if raw[0] != '"' {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(unquote(raw)))
	if err != nil || t.Year() > 9999 || t.Year() < 1 {
		return time.Time{}, false
	}
	return t.UTC(), true
}
