package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// fieldErrors walks the decoded JSON beside the config's types and
// reports every field the model does not have (a typo must not fall back
// to a default silently) and every value of the wrong kind, each with its
// path, so they show up next to Check's errors instead of hiding them.
func fieldErrors(raw any, t reflect.Type, path string) Errors {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var errs Errors
	add := func(p, f string, a ...any) { errs = append(errs, Error{p, fmt.Sprintf(f, a...)}) }
	if raw == nil {
		return nil // null: the default
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := raw.(map[string]any)
		if !ok {
			add(or(path, "(top)"), "want an object {...}, not %s", jsonKind(raw))
			return errs
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
				continue
			}
			errs = append(errs, fieldErrors(obj[k], f.Type, p)...)
		}
	case reflect.Slice:
		arr, ok := raw.([]any)
		if !ok {
			add(path, "want a list [...], not %s", jsonKind(raw))
			return errs
		}
		for i, v := range arr {
			errs = append(errs, fieldErrors(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case reflect.String:
		if _, ok := raw.(string); !ok {
			add(path, "want a string \"...\", not %s", jsonKind(raw))
		}
	case reflect.Bool:
		if _, ok := raw.(bool); !ok {
			add(path, "want true or false, not %s", jsonKind(raw))
		}
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint64:
		n, ok := raw.(float64)
		switch {
		case !ok:
			add(path, "want a number, not %s", jsonKind(raw))
		case n != float64(int64(n)):
			add(path, "%v: want a whole number", n)
		case t.Kind() != reflect.Int && t.Kind() != reflect.Int64 && n < 0:
			add(path, "%v: want 0 or more", n)
		case t.Kind() == reflect.Uint32 && n > 1<<32-1:
			add(path, "%v: too large", n)
		}
	}
	return errs
}

func jsonKind(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case float64:
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
