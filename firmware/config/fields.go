package config

import (
	"encoding"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// IsText reports whether values of t are written as one JSON string and
// parsed by UnmarshalText (cipher suites, addresses, durations...): for
// the config's walkers they are leaves, whatever their Go kind.
func IsText(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return reflect.PointerTo(t).Implements(textUnmarshaler)
}

// fieldErrors walks the decoded JSON beside the config's types and
// reports every field the model does not have (a typo must not fall back
// to a default silently) and every value of the wrong kind or that its
// type does not accept, each with its path, so they show up next to
// Check's errors instead of hiding them. drop says the caller must remove
// raw before the typed decode: it is bad (and reported), or "" for a
// typed value, which means unset.
func fieldErrors(raw any, t reflect.Type, path string) (errs Errors, drop bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	add := func(p, f string, a ...any) { errs = append(errs, Error{p, fmt.Sprintf(f, a...)}) }
	if raw == nil {
		return nil, false // null: the default
	}
	if IsText(t) {
		s, ok := raw.(string)
		switch {
		case !ok:
			add(path, "want a string \"...\", not %s", jsonKind(raw))
		case s == "":
		default:
			if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
				add(path, "%s", textError(t, s, err))
			} else {
				return nil, false
			}
		}
		return errs, true
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := raw.(map[string]any)
		if !ok {
			add(or(path, "(top)"), "want an object {...}, not %s", jsonKind(raw))
			return errs, true
		}
		fields := map[string]reflect.StructField{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.IsExported() && name != "" && name != "-" {
				fields[name] = f
			}
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			f, ok := fields[k]
			if !ok {
				msg := "unknown field"
				if near := nearest(k, fields); near != "" {
					msg += fmt.Sprintf("; did you mean %q?", near)
				}
				add(p, "%s", msg)
				delete(obj, k)
				continue
			}
			e, drop := fieldErrors(obj[k], f.Type, p)
			errs = append(errs, e...)
			if drop {
				delete(obj, k)
			}
		}
		return errs, false // the good fields stay
	case reflect.Slice:
		arr, ok := raw.([]any)
		if !ok {
			add(path, "want a list [...], not %s", jsonKind(raw))
			return errs, true
		}
		for i, v := range arr {
			e, drop := fieldErrors(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			errs = append(errs, e...)
			if drop {
				arr[i] = nil // the element's zero value
			}
		}
		return errs, false
	case reflect.String:
		if _, ok := raw.(string); !ok {
			add(path, "want a string \"...\", not %s", jsonKind(raw))
		}
	case reflect.Bool:
		if _, ok := raw.(bool); !ok {
			add(path, "want true or false, not %s", jsonKind(raw))
		}
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint64:
		n, ok := raw.(json.Number)
		if !ok {
			add(path, "want a number, not %s", jsonKind(raw))
			break
		}
		var err error
		if t.Kind() == reflect.Int || t.Kind() == reflect.Int64 {
			_, err = strconv.ParseInt(n.String(), 10, 64)
		} else {
			_, err = strconv.ParseUint(n.String(), 10, t.Bits())
		}
		f, ferr := n.Float64()
		switch {
		case err == nil:
		case ferr != nil || f != float64(int64(f)):
			add(path, "%v: want a whole number", n)
		case t.Kind() != reflect.Int && t.Kind() != reflect.Int64 && f < 0:
			add(path, "%v: want 0 or more", n)
		case f > -1<<53 && f < 1<<53:
			add(path, "%v: write the number in digits only", n)
		default:
			add(path, "%v: too large", n)
		}
	}
	return errs, len(errs) > 0 // a bad leaf
}

// textError is the message for a value its type rejected. The config's
// own types say what they want; the standard library's get advice here.
func textError(t reflect.Type, s string, err error) string {
	switch t {
	case reflect.TypeFor[netip.Addr]():
		return fmt.Sprintf("%q: want an IP address (the appliance has no DNS resolver)", s)
	case reflect.TypeFor[netip.Prefix]():
		return fmt.Sprintf("%q: want an address with prefix length, such as 192.0.2.10/24", s)
	case reflect.TypeFor[time.Time]():
		return fmt.Sprintf("%q: want RFC 3339 time such as 2026-12-01T00:00:00Z", s)
	}
	return err.Error()
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case json.Number:
		return fmt.Sprintf("the number %v", x)
	case bool:
		return fmt.Sprintf("%v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return "null"
}

// nearest is the field name within two edits of k, "" if none.
func nearest(k string, fields map[string]reflect.StructField) string {
	best, bestD := "", 3
	for name := range fields {
		if d := editDistance(k, name); d < bestD || d == bestD && name < best {
			best, bestD = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
