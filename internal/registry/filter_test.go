package registry

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestEventFilterShows(t *testing.T) {
	policy, added := "ComputerPolicyFinished", "ComputerAdded"
	tests := []struct {
		name      string
		filter    EventFilter
		event     string
		succeeded bool
		want      bool
	}{
		{"zero shows everything", EventFilter{}, added, false, true},
		{"zero shows a success", EventFilter{}, policy, true, true},
		{"a listed type", EventFilter{Events: []string{added, policy}}, added, false, true},
		{"a type not listed", EventFilter{Events: []string{policy}}, added, false, false},
		{"an unknown type with a list", EventFilter{Events: []string{policy}}, "SomethingNew", false, false},
		{"failures only: a failure", EventFilter{FailuresOnly: []string{policy}}, policy, false, true},
		{"failures only: a success", EventFilter{FailuresOnly: []string{policy}}, policy, true, false},
		{"failures only of another type", EventFilter{FailuresOnly: []string{policy}}, added, true, true},
		{"listed, failures only: a success", EventFilter{Events: []string{policy}, FailuresOnly: []string{policy}}, policy, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked := false
			got := tt.filter.Shows(tt.event, func() bool { asked = true; return tt.succeeded })
			if got != tt.want {
				t.Errorf("Shows(%q, succeeded %t) = %t, want %t", tt.event, tt.succeeded, got, tt.want)
			}
			if asked && !strings.Contains(strings.Join(tt.filter.FailuresOnly, ","), tt.event) {
				t.Errorf("Shows asked whether a %s succeeded; it is not shown failures only", tt.event)
			}
		})
	}
}

func TestCheckEventFilter(t *testing.T) {
	tests := []struct {
		name   string
		filter EventFilter
		want   string // a part of the error; "" for none
	}{
		{"zero", EventFilter{}, ""},
		{"events", EventFilter{Events: []string{"ComputerAdded", "ComputerPolicyFinished"}}, ""},
		{"failures only of all", EventFilter{FailuresOnly: []string{"ComputerPolicyFinished"}}, ""},
		{"failures only of a shown type", EventFilter{Events: []string{"ComputerPolicyFinished"}, FailuresOnly: []string{"ComputerPolicyFinished"}}, ""},
		{"failures only of a hidden type", EventFilter{Events: []string{"ComputerAdded"}, FailuresOnly: []string{"ComputerPolicyFinished"}}, "not among the events shown"},
		{"unsorted", EventFilter{Events: []string{"b", "a"}}, "sorted"},
		{"repeated", EventFilter{Events: []string{"a", "a"}}, "sorted"},
		{"empty name", EventFilter{Events: []string{""}}, "not an event type name"},
		{"comma", EventFilter{Events: []string{"a,b"}}, "not an event type name"},
		{"long name", EventFilter{Events: []string{strings.Repeat("x", 65)}}, "not an event type name"},
		{"too many", EventFilter{Events: names(65)}, "more than 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckEventFilter(tt.filter)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CheckEventFilter(%+v) = %v, want nil", tt.filter, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("CheckEventFilter(%+v) = %v, want an error with %q", tt.filter, err, tt.want)
			}
		})
	}
}

// names returns n distinct, sorted event type names.
func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("E%03d", i)
	}
	return out
}

func TestEventNamesRoundTrip(t *testing.T) {
	for _, in := range [][]string{nil, {"ComputerAdded"}, {"A", "B", "C"}} {
		if got := SplitEventNames(JoinEventNames(in)); !reflect.DeepEqual(got, in) {
			t.Errorf("SplitEventNames(JoinEventNames(%q)) = %q", in, got)
		}
	}
}

// TestEntryEqualSeesEveryField changes each field of an entry in turn and
// expects Equal to notice, so that a field added later cannot be missed.
func TestEntryEqualSeesEveryField(t *testing.T) {
	base := Entry{ID: "id"}
	if !base.Equal(base) {
		t.Fatal("an entry is not Equal to itself")
	}
	v := reflect.ValueOf(&base).Elem()
	for i := range v.NumField() {
		other := base
		f := reflect.ValueOf(&other).Elem().Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("changed")
		case reflect.Struct:
			setFirst(f)
		default:
			t.Fatalf("field %s of kind %s: teach this test to change it", v.Type().Field(i).Name, f.Kind())
		}
		if base.Equal(other) {
			t.Errorf("Equal misses a change of %s", v.Type().Field(i).Name)
		}
	}
}

// setFirst makes the first field of the struct s non-zero.
func setFirst(s reflect.Value) {
	f := s.Field(0)
	switch f.Kind() {
	case reflect.String:
		f.SetString("changed")
	case reflect.Int64, reflect.Int:
		f.SetInt(1)
	case reflect.Slice:
		f.Set(reflect.ValueOf([]string{"changed"}))
	}
}
