package telegraf

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// table is a decoded TOML table whose keys the importer takes one by one,
// so that every key it did not take can be reported (rest): nothing in the
// file is dropped without a line in the report.
type table struct {
	im    *importer
	path  string // lineIndex path
	where string // for the report: `inputs.modbus "Device" workarounds`
	m     map[string]any
	used  map[string]bool
}

func (im *importer) table(path, where string, m map[string]any) *table {
	return &table{im: im, path: path, where: where, m: m, used: map[string]bool{}}
}

// line returns the line of key (of the table itself without a key).
func (t *table) line(key string) int {
	if key != "" {
		if l := t.im.lines[join(t.path, key)]; l > 0 {
			return l
		}
	}
	return t.im.lines[t.path]
}

// has reports whether key is set, without taking it.
func (t *table) has(key string) bool {
	_, ok := t.m[key]
	return ok
}

// take returns key's value and marks it as read.
func (t *table) take(key string) (any, bool) {
	v, ok := t.m[key]
	if ok {
		t.used[key] = true
	}
	return v, ok
}

// issue reports something about key of t.
func (t *table) issue(key string, sev Severity, kind Kind, format string, args ...any) {
	where := t.where
	if key != "" {
		if where != "" {
			where += " "
		}
		where += key
	}
	t.im.add(t.line(key), sev, kind, where, format, args...)
}

// bad reports a value of the wrong type (Telegraf refuses the file too).
func (t *table) bad(key string, v any, want string) {
	t.issue(key, Warning, Dropped, "%s is not %s (Telegraf refuses it too)", describe(v), want)
}

func describe(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "an array"
	default:
		return fmt.Sprint(v)
	}
}

func (t *table) str(key string) (string, bool) {
	v, ok := t.take(key)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		t.bad(key, v, "a string")
	}
	return s, ok
}

func (t *table) boolean(key string) (bool, bool) {
	v, ok := t.take(key)
	if !ok {
		return false, false
	}
	b, ok := v.(bool)
	if !ok {
		t.bad(key, v, "true or false")
	}
	return b, ok
}

// integer returns key's integer value if it lies within lo..hi.
func (t *table) integer(key string, lo, hi int64) (int64, bool) {
	v, ok := t.take(key)
	if !ok {
		return 0, false
	}
	i, ok := v.(int64)
	if !ok {
		t.bad(key, v, "an integer")
		return 0, false
	}
	if i < lo || i > hi {
		t.issue(key, Warning, Dropped, "%d is out of range %d to %d (Telegraf refuses it too)", i, lo, hi)
		return 0, false
	}
	return i, true
}

// float returns key's value, an integer or a float.
func (t *table) float(key string) (float64, bool) {
	v, ok := t.take(key)
	if !ok {
		return 0, false
	}
	switch v := v.(type) {
	case float64:
		return v, true
	case int64:
		return float64(v), true
	}
	t.bad(key, v, "a number")
	return 0, false
}

// duration reads a duration as Telegraf's config.Duration does: a string
// ("1.5s", or a number of seconds "2"), or a number of seconds.
func (t *table) duration(key string) (time.Duration, bool) {
	v, ok := t.take(key)
	if !ok {
		return 0, false
	}
	switch v := v.(type) {
	case string:
		if d, err := time.ParseDuration(strings.TrimSpace(v)); err == nil {
			return d, true
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return time.Duration(f * float64(time.Second)), true
		}
	case int64:
		return time.Duration(v) * time.Second, true
	case float64:
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			return time.Duration(v * float64(time.Second)), true
		}
	}
	t.bad(key, v, `a duration ("1s", "500ms")`)
	return 0, false
}

// sub returns the table under key, or nil.
func (t *table) sub(key, where string) *table {
	v, ok := t.take(key)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.bad(key, v, "a table")
		return nil
	}
	return t.im.table(join(t.path, key), where, m)
}

// list returns the tables of the array under key: [[key]] sections or
// key = [{...}, ...]. name names each element in the report.
func (t *table) list(key string, where func(i int, m map[string]any) string) []*table {
	v, ok := t.take(key)
	if !ok {
		return nil
	}
	var elems []map[string]any
	switch v := v.(type) {
	case map[string]any: // [inputs.modbus], one table: Telegraf takes it as one plugin
		return []*table{t.im.table(join(t.path, key), where(0, v), v)}
	case []map[string]any:
		elems = v
	case []any:
		for i, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				t.im.add(t.im.lines[join(t.path, key, elem(i))], Warning, Dropped, t.where+" "+key,
					"element %d is %s, not a table (Telegraf refuses it too)", i+1, describe(e))
				m = nil
			}
			elems = append(elems, m)
		}
	default:
		t.bad(key, v, "an array of tables")
		return nil
	}
	out := make([]*table, 0, len(elems))
	for i, m := range elems {
		if m == nil {
			continue
		}
		out = append(out, t.im.table(join(t.path, key, elem(i)), where(i, m), m))
	}
	return out
}

// strings returns a map of strings (a tags table), reporting other values.
func (t *table) strings(key string) map[string]string {
	sub := t.sub(key, strings.TrimSpace(t.where+" "+key))
	if sub == nil {
		return nil
	}
	out := map[string]string{}
	for _, k := range sub.keys() {
		if s, ok := sub.str(k); ok {
			out[k] = s
		}
	}
	return out
}

// keys returns t's keys in the order of their lines.
func (t *table) keys() []string {
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if la, lb := t.line(a), t.line(b); la != lb {
			return la - lb
		}
		return strings.Compare(a, b)
	})
	return keys
}

// rest returns the keys not taken, in the order of their lines.
func (t *table) rest() []string {
	var out []string
	for _, k := range t.keys() {
		if !t.used[k] {
			out = append(out, k)
		}
	}
	return out
}

// ignore takes keys the importer knowingly does not carry over, with one
// report line each.
func (t *table) ignore(sev Severity, why string, keys ...string) {
	for _, k := range keys {
		if _, ok := t.take(k); ok {
			t.issue(k, sev, Dropped, "%s", why)
		}
	}
}

// unknown reports every key not taken.
func (t *table) unknown(why string) {
	for _, k := range t.rest() {
		t.take(k)
		t.issue(k, Warning, Dropped, "%s", why)
	}
}

// name quotes a Telegraf name for the report.
func name(s string) string { return strconv.Quote(s) }
