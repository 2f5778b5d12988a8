package devices

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Decoder decodes sample records as DecodeSample does, with a scanner
// written for the sample schema instead of encoding/json, and keeps what
// repeats from one record to the next so that decoding a sample costs few
// allocations: the names, units, tags and error messages a device sends
// again and again.
//
// Decode returns exactly what DecodeSample returns for the same bytes,
// errors included: the same *VersionError or *SampleError naming the same
// key, with the same message. It keeps nothing of data once it returns,
// and every Sample it returns stays as it was when later records are
// decoded: strings are never rewritten, and Fields is the sample's own
// map. Tags, Units and Errors, however, may be the very maps returned
// with an earlier sample whose object had the same bytes (a device's tags
// and its class's units repeat in every record), so they are read only,
// as Sample's documentation already asks of Tags and Units.
//
// What a Decoder keeps is bounded: each of its caches (names, device
// ids, field names, strings, tags, units and errors objects) holds at
// most 4096 entries and about 1 MiB, and is emptied when it would hold
// more. The zero Decoder is ready to use. A Decoder is not safe for
// concurrent use: give each goroutine its own.
type Decoder struct {
	// oneShot turns the caches off: DecodeSample's decoder, whose
	// samples share nothing.
	oneShot bool

	data  []byte              // the record being decoded
	seen  uint16              // the schema keys it has, by 1<<key
	spans [numKeys]valueSpan  // where the value of each key present lies in data
	extra map[string]struct{} // keys outside the schema, to find a repeat
	least string              // the least key of extra

	fields    []fieldEntry // the members of fields, in order, up to the first problem
	fieldsErr *SampleError // the first problem in fields, after the members in fields
	pairs     []stringPair // scratch for the members of tags, units and errors
	buf       []byte       // scratch for a string with escapes or invalid UTF-8
	stack     []byte       // the containers skipValue is inside

	// Caches, by the bytes of the string (valid names, device ids and
	// field names: validated once) or of the whole object.
	names      cache[string]
	devices    cache[string]
	fieldNames cache[string]
	strs       cache[string]
	tags       cache[map[string]string]
	units      cache[map[string]string]
	errs       cache[errorsObject]
}

// Limits of a Decoder's memory: the most entries and bytes one cache
// holds, the longest string the string cache keeps, and the largest
// scratch space kept from one record to the next.
const (
	maxCached      = 4096
	maxCachedBytes = 1 << 20
	maxInterned    = 256
	maxScratch     = 64 << 10
)

// cache maps the bytes of a string or object to what they decode to.
type cache[V any] struct {
	m     map[string]V
	bytes int // about what the entries hold: twice their keys
}

func (c *cache[V]) get(key []byte) (V, bool) {
	v, ok := c.m[string(key)]
	return v, ok
}

// put adds key, first emptying c if it is full. A key too large for c is
// not added.
func (c *cache[V]) put(key string, v V) {
	size := 2 * len(key)
	if size > maxCachedBytes {
		return
	}
	if c.m == nil {
		c.m = make(map[string]V)
	}
	if len(c.m) >= maxCached || c.bytes+size > maxCachedBytes {
		clear(c.m)
		c.bytes = 0
	}
	c.m[key] = v
	c.bytes += size
}

// The keys of a sample, in AppendJSON's order.
const (
	keyV = iota
	keyFactory
	keyDevice
	keyClass
	keyTS
	keySeq
	keyTags
	keyUnits
	keyFields
	keyErrors
	numKeys
)

var keyNames = [numKeys]string{"v", "factory", "device", "class", "ts", "seq", "tags", "units", "fields", "errors"}

// requiredKeyIDs are requiredKeys, by key.
var requiredKeyIDs = [...]int{keyV, keyFactory, keyDevice, keyClass, keyTS, keySeq, keyFields}

func lookupKey(b []byte) int {
	switch string(b) {
	case "v":
		return keyV
	case "factory":
		return keyFactory
	case "device":
		return keyDevice
	case "class":
		return keyClass
	case "ts":
		return keyTS
	case "seq":
		return keySeq
	case "tags":
		return keyTags
	case "units":
		return keyUnits
	case "fields":
		return keyFields
	case "errors":
		return keyErrors
	}
	return -1
}

type valueSpan struct{ start, end int }

type fieldEntry struct {
	name string
	v    Value
}

type stringPair struct{ key, value string }

// errorsObject is a decoded errors object: the map, and its keys in the
// record's order, for the check against fields.
type errorsObject struct {
	m     map[string]string
	names []string
}

// maxNestingDepth is how deep encoding/json lets arrays and objects nest
// in one value.
const maxNestingDepth = 10000

// DecodeSample decodes a sample of schema version 1 or 2 strictly. It
// returns a *VersionError if "v" is an integer other than 1 or 2, whatever
// else the record holds, and otherwise a *SampleError for the first
// problem found: input that is not one JSON object, an unknown or
// repeated key (tags and units are unknown keys in version 1), a missing
// required key, an invalid factory, class or device name, a ts that is
// not RFC 3339, a seq that is not an unsigned integer, a tag or unit
// ValidateTag or the register-map grammar refuses, more than MaxTags
// tags, a field value that is not a bool, number or string, an invalid
// field name, or a field present under both fields and errors.
//
// ts may carry any offset and precision; Time is converted to UTC and
// truncated to the millisecond. Fields is never nil; Tags, Units and
// Errors are nil when the record has none.
//
// DecodeSample allocates every map and string it returns. A reader of
// many records should keep a Decoder, which decodes the same way with
// fewer allocations.
func DecodeSample(data []byte) (Sample, error) {
	d := Decoder{oneShot: true}
	return d.Decode(data)
}

// Decode decodes one sample record as DecodeSample does (see Decoder for
// what the samples it returns may share).
func (d *Decoder) Decode(data []byte) (Sample, error) {
	d.data = data
	d.seen = 0
	if len(d.extra) > 0 {
		clear(d.extra)
	}
	d.fields = d.fields[:0]
	d.fieldsErr = nil
	err := d.scan()
	var s Sample
	if err == nil {
		s, err = d.finish()
	}
	d.data = nil
	// Keep no more than a usual record needs.
	if cap(d.buf) > maxScratch {
		d.buf = nil
	}
	if cap(d.fields) > maxScratch/int(unsafe.Sizeof(fieldEntry{})) {
		d.fields = nil
	}
	if cap(d.pairs) > maxScratch/int(unsafe.Sizeof(stringPair{})) {
		d.pairs = nil
	}
	if len(d.extra) > 64 {
		d.extra = nil
	}
	return s, err
}

// The structure of the record: syntax as encoding/json's Decoder.Token
// reads it, and repeated keys. What the values mean is checked by finish,
// in DecodeSample's order, once the whole record is known to be one JSON
// object (a syntax error anywhere comes first).

// scan reads the record's top-level object, recording where each value
// lies and decoding fields on the way. It returns the first syntax error,
// repeated key or trailing data, as a *SampleError.
func (d *Decoder) scan() error {
	data := d.data
	i := skipSpace(data, 0)
	if i == len(data) {
		return &SampleError{Err: errors.New("empty, want a JSON object")}
	}
	switch c := data[i]; c {
	case '{':
		i++
	case '[':
		return &SampleError{Err: errors.New("want a JSON object, got [")}
	case ']', '}', ',', ':':
		return &SampleError{Err: badChar(c, " looking for beginning of value")}
	default:
		end, err := d.skipValue(data, i, 0)
		if err != nil {
			return &SampleError{Err: err}
		}
		desc, _ := d.describe(data[i:end], true)
		return &SampleError{Err: fmt.Errorf("want a JSON object, got %s", desc)}
	}
	member := false // a member was read: a comma or the end comes next
	for {
		i = skipSpace(data, i)
		if i == len(data) {
			return &SampleError{Err: io.ErrUnexpectedEOF}
		}
		c := data[i]
		if c == '}' {
			i++
			break
		}
		switch {
		case c == ']' && member:
			return &SampleError{Err: badChar(c, " after object key:value pair")}
		case c == ']':
			return &SampleError{Err: badChar(c, "")}
		case member && c != ',':
			return &SampleError{Err: badChar(c, " after object key:value pair")}
		case member:
			if i = skipSpace(data, i+1); i == len(data) {
				return &SampleError{Err: io.ErrUnexpectedEOF}
			}
			if c = data[i]; c != '"' {
				return &SampleError{Err: badChar(c, " looking for beginning of object key string")}
			}
		case c != '"':
			return &SampleError{Err: badChar(c, "")}
		}
		end, plain, err := scanString(data, i)
		if err != nil {
			return &SampleError{Err: err}
		}
		key := data[i+1 : end-1]
		if !plain {
			key = d.unquote(key)
		}
		k := lookupKey(key)
		var name string
		if k >= 0 {
			name = keyNames[k]
		} else {
			name = string(key)
		}
		if i = skipSpace(data, end); i == len(data) {
			return &SampleError{Key: name, Err: io.ErrUnexpectedEOF}
		}
		if data[i] != ':' {
			return &SampleError{Key: name, Err: errors.New("expected colon after object key")}
		}
		if i = skipSpace(data, i+1); i == len(data) {
			return &SampleError{Key: name, Err: io.ErrUnexpectedEOF}
		}
		start := i
		if k == keyFields && data[i] == '{' && d.seen&(1<<keyFields) == 0 {
			i, err = d.scanFields(data, i)
		} else {
			i, err = d.skipValue(data, i, 0)
		}
		if err != nil {
			return &SampleError{Key: name, Err: err}
		}
		if k < 0 {
			if _, dup := d.extra[name]; dup {
				return &SampleError{Key: name, Err: errors.New("given twice")}
			}
			if d.extra == nil {
				d.extra = make(map[string]struct{})
			}
			if len(d.extra) == 0 || name < d.least {
				d.least = name
			}
			d.extra[name] = struct{}{}
		} else {
			if d.seen&(1<<k) != 0 {
				return &SampleError{Key: name, Err: errors.New("given twice")}
			}
			d.seen |= 1 << k
			d.spans[k] = valueSpan{start, i}
		}
		member = true
	}
	if skipSpace(data, i) != len(data) {
		return &SampleError{Err: errors.New("data after the sample object: a record holds exactly one sample")}
	}
	return nil
}

// scanFields reads the fields object at data[i], appending each member
// to d.fields until the first problem of meaning, which it keeps in
// d.fieldsErr; after it, the rest is only checked for syntax. It returns
// the index after the object, or a syntax error.
func (d *Decoder) scanFields(data []byte, i int) (int, error) {
	if i = skipSpace(data, i+1); i == len(data) {
		return 0, io.ErrUnexpectedEOF
	}
	if data[i] == '}' {
		return i + 1, nil
	}
	for {
		if data[i] != '"' {
			return 0, badChar(data[i], " looking for beginning of object key string")
		}
		end, plain, err := scanString(data, i)
		if err != nil {
			return 0, err
		}
		name := data[i+1 : end-1]
		if i = skipSpace(data, end); i == len(data) {
			return 0, io.ErrUnexpectedEOF
		}
		if data[i] != ':' {
			return 0, badChar(data[i], " after object key")
		}
		if i = skipSpace(data, i+1); i == len(data) {
			return 0, io.ErrUnexpectedEOF
		}
		if d.fieldsErr != nil {
			i, err = d.skipValue(data, i, 1)
		} else {
			if !plain {
				name = d.unquote(name)
			}
			i, err = d.fieldValue(data, i, name)
		}
		if err != nil {
			return 0, err
		}
		if i = skipSpace(data, i); i == len(data) {
			return 0, io.ErrUnexpectedEOF
		}
		switch data[i] {
		case ',':
			if i = skipSpace(data, i+1); i == len(data) {
				return 0, io.ErrUnexpectedEOF
			}
		case '}':
			return i + 1, nil
		default:
			return 0, badChar(data[i], " after object key:value pair")
		}
	}
}

// fieldValue reads the value of the field name at data[i] and appends
// the field to d.fields, or sets d.fieldsErr. It returns the index after
// the value, or a syntax error.
func (d *Decoder) fieldValue(data []byte, i int, name []byte) (int, error) {
	fname, ok := d.fieldName(name)
	if !ok {
		s := string(name)
		d.fieldsErr = &SampleError{Key: "fields." + s, Err: validateFieldName(s)}
		return d.skipValue(data, i, 1)
	}
	var v Value
	switch c := data[i]; {
	case c == '"':
		end, plain, err := scanString(data, i)
		if err != nil {
			return 0, err
		}
		s := data[i+1 : end-1]
		if !plain {
			s = d.unquote(s)
		}
		v = StringValue(d.str(s))
		i = end
	case c == 't':
		end, err := scanLiteral(data, i, "true")
		if err != nil {
			return 0, err
		}
		v, i = BoolValue(true), end
	case c == 'f':
		end, err := scanLiteral(data, i, "false")
		if err != nil {
			return 0, err
		}
		v, i = BoolValue(false), end
	case c == 'n':
		end, err := scanLiteral(data, i, "null")
		if err != nil {
			return 0, err
		}
		d.fieldsErr = &SampleError{Key: "fields." + fname, Err: errors.New("null is not a value (a field without a value belongs under errors)")}
		return end, nil
	case c == '-' || isDigit(c):
		end, float, err := scanNumber(data, i)
		if err != nil {
			return 0, err
		}
		if v, err = numberValue(data[i:end], float); err != nil {
			d.fieldsErr = &SampleError{Key: "fields." + fname, Err: err}
			return end, nil
		}
		i = end
	case c == '{' || c == '[':
		d.fieldsErr = &SampleError{Key: "fields." + fname, Err: fmt.Errorf("%c opens an object or array, want a bool, number or string", c)}
		return d.skipValue(data, i, 1)
	default:
		return 0, badChar(c, " looking for beginning of value")
	}
	d.fields = append(d.fields, fieldEntry{fname, v})
	return i, nil
}

// numberValue converts a JSON number as parseNumber does.
func numberValue(raw []byte, float bool) (Value, error) {
	if float {
		f, err := strconv.ParseFloat(view(raw), 64)
		if err != nil {
			return Value{}, fmt.Errorf("number %s is out of the float64 range", raw)
		}
		return Float64Value(f), nil
	}
	digits := raw
	neg := raw[0] == '-'
	if neg {
		digits = raw[1:]
	}
	u, ok := parseUint(digits)
	switch {
	case !ok:
	case !neg && u <= math.MaxInt64:
		return Int64Value(int64(u)), nil
	case !neg:
		return Uint64Value(u), nil
	case u <= 1<<63:
		return Int64Value(int64(-u)), nil
	}
	return Value{}, fmt.Errorf("integer %s is out of the int64 and uint64 ranges", raw)
}

// parseUint parses b as strconv.ParseUint(b, 10, 64) does: only digits,
// at least one, at most math.MaxUint64.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n := uint64(c - '0')
		if u > (math.MaxUint64-n)/10 {
			return 0, false
		}
		u = u*10 + n
	}
	return u, true
}

// finish checks and decodes the values scan found, in DecodeSample's
// order.
func (d *Decoder) finish() (Sample, error) {
	if d.seen&(1<<keyV) == 0 {
		return Sample{}, &SampleError{Key: "v", Err: errors.New("missing: a sample declares its schema version, 1 or 2")}
	}
	raw := d.raw(keyV)
	v, ok := parseUint(raw)
	if !ok {
		return Sample{}, &SampleError{Key: "v", Err: fmt.Errorf("want the integer 1 or 2, got %s", raw)}
	}
	if v < MinSchemaVersion || v > SchemaVersion {
		return Sample{}, &VersionError{Version: v}
	}
	unknown, has := d.least, len(d.extra) > 0
	if v < 2 {
		for _, k := range [...]int{keyTags, keyUnits} {
			if d.seen&(1<<k) != 0 && (!has || keyNames[k] < unknown) {
				unknown, has = keyNames[k], true
			}
		}
	}
	if has {
		return Sample{}, &SampleError{Key: unknown, Err: fmt.Errorf("unknown key (want %s)", wantList(sampleKeys[v]))}
	}
	for _, k := range requiredKeyIDs {
		if d.seen&(1<<k) == 0 {
			return Sample{}, &SampleError{Key: keyNames[k], Err: errors.New("missing")}
		}
	}
	var (
		s   Sample
		err error
	)
	if s.Factory, err = d.name(keyFactory, &d.names, ValidateName); err != nil {
		return Sample{}, err
	}
	if s.Device, err = d.name(keyDevice, &d.devices, ValidateDevice); err != nil {
		return Sample{}, err
	}
	if s.Class, err = d.name(keyClass, &d.names, ValidateName); err != nil {
		return Sample{}, err
	}
	if s.Time, err = d.ts(); err != nil {
		return Sample{}, err
	}
	raw = d.raw(keySeq)
	if s.Seq, ok = parseUint(raw); !ok {
		return Sample{}, &SampleError{Key: "seq", Err: fmt.Errorf("want an unsigned 64-bit integer, got %s", raw)}
	}
	if d.seen&(1<<keyTags) != 0 {
		if s.Tags, err = d.stringMap(keyTags, MaxTags, ValidateTag, &d.tags); err != nil {
			return Sample{}, err
		}
	}
	if d.seen&(1<<keyUnits) != 0 {
		if s.Units, err = d.stringMap(keyUnits, 0, checkUnit, &d.units); err != nil {
			return Sample{}, err
		}
	}
	if s.Fields, err = d.fieldsMap(); err != nil {
		return Sample{}, err
	}
	if d.seen&(1<<keyErrors) != 0 {
		if s.Errors, err = d.errorsMap(s.Fields); err != nil {
			return Sample{}, err
		}
	}
	return s, nil
}

// raw returns the value of key k, which the record has.
func (d *Decoder) raw(k int) []byte { return d.data[d.spans[k].start:d.spans[k].end] }

// name decodes the factory, device or class (key k), whose valid values
// cache holds.
func (d *Decoder) name(k int, valid *cache[string], validate func(string) error) (string, error) {
	raw := d.raw(k)
	if raw[0] != '"' {
		return "", &SampleError{Key: keyNames[k], Err: fmt.Errorf("want a string, got %s", raw)}
	}
	b := d.content(raw)
	if s, ok := valid.get(b); ok {
		return s, nil
	}
	s := string(b)
	if err := validate(s); err != nil {
		return "", &SampleError{Key: keyNames[k], Err: err}
	}
	if !d.oneShot {
		valid.put(s, s)
	}
	return s, nil
}

// ts decodes ts.
func (d *Decoder) ts() (time.Time, error) {
	raw := d.raw(keyTS)
	if raw[0] != '"' {
		return time.Time{}, &SampleError{Key: "ts", Err: fmt.Errorf("want a string, got %s", raw)}
	}
	s := view(d.content(raw)) // for the duration of this call only
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, &SampleError{Key: "ts", Err: fmt.Errorf("want an RFC 3339 time such as 2026-12-01T01:02:03.456Z, got %q", s)}
	}
	t = t.UTC().Truncate(time.Millisecond)
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, &SampleError{Key: "ts", Err: fmt.Errorf("%q lies outside years 0000 to 9999 in UTC", s)}
	}
	return t, nil
}

// stringMap decodes tags or units (key k): keys to strings, each pair
// checked by check, at most limit of them (0: no limit); nil for an empty
// object. An object with the bytes of one decoded before gets the same
// map, from cache.
func (d *Decoder) stringMap(k, limit int, check func(key, value string) error, objects *cache[map[string]string]) (map[string]string, error) {
	raw := d.raw(k)
	parent := keyNames[k]
	if raw[0] != '{' {
		desc, err := d.describe(raw, false)
		if err == nil {
			err = fmt.Errorf("want a JSON object, got %s", desc)
		}
		return nil, &SampleError{Key: parent, Err: err}
	}
	if m, ok := objects.get(raw); ok {
		return m, nil
	}
	d.pairs = d.pairs[:0]
	var problem *SampleError
	d.members(raw, func(key, value []byte) bool {
		ks := d.str(key)
		if value[0] != '"' {
			desc, err := d.describe(value, false)
			if err == nil {
				err = fmt.Errorf("want a string, got %s", desc)
			}
			problem = &SampleError{Key: parent + "." + ks, Err: err}
			return false
		}
		vs := d.str(d.content(value))
		if err := check(ks, vs); err != nil {
			problem = &SampleError{Key: parent + "." + ks, Err: err}
			return false
		}
		d.pairs = append(d.pairs, stringPair{ks, vs})
		return true
	})
	m := make(map[string]string, len(d.pairs))
	for _, p := range d.pairs {
		if _, dup := m[p.key]; dup {
			return nil, &SampleError{Key: parent + "." + p.key, Err: errors.New("given twice")}
		}
		if limit > 0 && len(m) == limit {
			return nil, &SampleError{Key: parent, Err: fmt.Errorf("more than %d entries", limit)}
		}
		m[p.key] = p.value
	}
	if problem != nil {
		return nil, problem
	}
	if len(m) == 0 {
		m = nil
	}
	if !d.oneShot {
		objects.put(string(raw), m)
	}
	return m, nil
}

// fieldsMap builds Fields from what scan found.
func (d *Decoder) fieldsMap() (map[string]Value, error) {
	raw := d.raw(keyFields)
	if raw[0] != '{' {
		desc, _ := d.describe(raw, true)
		return nil, &SampleError{Key: "fields", Err: fmt.Errorf("want a JSON object, got %s", desc)}
	}
	m := make(map[string]Value, len(d.fields))
	for i := range d.fields {
		f := &d.fields[i]
		m[f.name] = f.v
		if len(m) != i+1 {
			return nil, &SampleError{Key: "fields." + f.name, Err: errors.New("given twice")}
		}
	}
	if d.fieldsErr != nil {
		return nil, d.fieldsErr
	}
	return m, nil
}

// errorsMap decodes errors: field names to non-empty messages, none of them
// a field that has a value; nil for an empty object. An object with the
// bytes of one decoded before gets the same map, from cache.
func (d *Decoder) errorsMap(fields map[string]Value) (map[string]string, error) {
	raw := d.raw(keyErrors)
	if raw[0] != '{' {
		desc, _ := d.describe(raw, true)
		return nil, &SampleError{Key: "errors", Err: fmt.Errorf("want a JSON object, got %s", desc)}
	}
	if e, ok := d.errs.get(raw); ok {
		for _, name := range e.names {
			if _, both := fields[name]; both {
				return nil, &SampleError{Key: "errors." + name, Err: errors.New("the field also has a value under fields")}
			}
		}
		return e.m, nil
	}
	d.pairs = d.pairs[:0]
	var problem *SampleError
	d.members(raw, func(key, value []byte) bool {
		name, ok := d.fieldName(key)
		if !ok {
			s := string(key)
			problem = &SampleError{Key: "errors." + s, Err: validateFieldName(s)}
			return false
		}
		if value[0] != '"' {
			desc, _ := d.describe(value, true)
			problem = &SampleError{Key: "errors." + name, Err: fmt.Errorf("want a string, got %s", desc)}
			return false
		}
		if len(value) == 2 {
			problem = &SampleError{Key: "errors." + name, Err: errors.New("empty message: say why the field has no value")}
			return false
		}
		d.pairs = append(d.pairs, stringPair{name, d.str(d.content(value))})
		return true
	})
	m := make(map[string]string, len(d.pairs))
	for _, p := range d.pairs {
		if _, dup := m[p.key]; dup {
			return nil, &SampleError{Key: "errors." + p.key, Err: errors.New("given twice")}
		}
		if _, both := fields[p.key]; both {
			return nil, &SampleError{Key: "errors." + p.key, Err: errors.New("the field also has a value under fields")}
		}
		m[p.key] = p.value
	}
	if problem != nil {
		return nil, problem
	}
	if len(m) == 0 {
		m = nil
	}
	if !d.oneShot {
		names := make([]string, len(d.pairs))
		for i, p := range d.pairs {
			names[i] = p.key
		}
		d.errs.put(string(raw), errorsObject{m, names})
	}
	return m, nil
}

// members calls fn with the key (decoded) and the value (raw) of each
// member of obj, a valid JSON object, in order, until fn returns false.
// The key is only valid during the call.
func (d *Decoder) members(obj []byte, fn func(key, value []byte) bool) {
	i := skipSpace(obj, 1)
	if obj[i] == '}' {
		return
	}
	for {
		end, plain, _ := scanString(obj, i)
		key := obj[i+1 : end-1]
		if !plain {
			key = d.unquote(key)
		}
		i = skipSpace(obj, skipSpace(obj, end)+1)
		vend, _ := d.skipValue(obj, i, 1)
		if !fn(key, obj[i:vend]) {
			return
		}
		if i = skipSpace(obj, vend); obj[i] == '}' {
			return
		}
		i = skipSpace(obj, i+1)
	}
}

// fieldName returns name as a string if it is a valid field name.
func (d *Decoder) fieldName(name []byte) (string, bool) {
	if s, ok := d.fieldNames.get(name); ok {
		return s, true
	}
	if !isFieldName(view(name)) {
		return "", false
	}
	s := string(name)
	if !d.oneShot {
		d.fieldNames.put(s, s)
	}
	return s, true
}

// str returns b as a string, from the string cache if it is short.
func (d *Decoder) str(b []byte) string {
	if s, ok := d.strs.get(b); ok {
		return s
	}
	s := string(b)
	if len(s) <= maxInterned && !d.oneShot {
		d.strs.put(s, s)
	}
	return s
}

// describe says what a JSON value other than an object is, as
// encoding/json's Decoder.Token reads it: with UseNumber (useNumber) a
// number is its text, without it a float64, which fails beyond the
// float64 range.
func (d *Decoder) describe(raw []byte, useNumber bool) (string, error) {
	switch raw[0] {
	case '[', '{':
		return string(raw[:1]), nil
	case '"':
		return strconv.Quote(string(d.content(raw))), nil
	case 't', 'f', 'n':
		return string(raw), nil
	}
	if useNumber {
		return string(raw), nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return "", fmt.Errorf("json: cannot unmarshal number %s into Go value of type float64", raw)
	}
	return fmt.Sprint(f), nil
}

// content returns the decoded content of the valid JSON string raw,
// quotes included: raw's own bytes when it holds no escape and is valid
// UTF-8, else d.buf's.
func (d *Decoder) content(raw []byte) []byte {
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return s
	}
	return d.unquote(s)
}

// unquote decodes s, the content of a valid JSON string, into d.buf as
// encoding/json does: escapes decoded, a UTF-16 surrogate that is not
// half of a pair and each byte that is not part of valid UTF-8 replaced
// by U+FFFD. The result is valid until the next call.
func (d *Decoder) unquote(s []byte) []byte {
	b := d.buf[:0]
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			switch c = s[i+1]; c {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r := getu4(s[i:])
				i += 6
				if utf16.IsSurrogate(r) {
					if pair := utf16.DecodeRune(r, getu4(s[i:])); pair != utf8.RuneError {
						b = utf8.AppendRune(b, pair)
						i += 6
						continue
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
				continue
			default: // '"', '\\', '/'
				b = append(b, c)
			}
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			b = utf8.AppendRune(b, r)
			i += size
		}
	}
	d.buf = b
	return b
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// view returns b as a string without copying it, for a call that does not
// keep the string (a map lookup, a parse). b must not change meanwhile.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// Syntax, as encoding/json's scanner checks it, with its messages: a
// value ends at its last byte, and input that ends inside one is
// io.ErrUnexpectedEOF.

func skipSpace(data []byte, i int) int {
	for ; i < len(data); i++ {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
		default:
			return i
		}
	}
	return i
}

// badChar is encoding/json's syntax error for c, followed by context.
func badChar(c byte, context string) error {
	return errors.New("invalid character " + quoteChar(c) + context)
}

func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

// stringStop marks the bytes that end scanString's fast loop: the quote,
// the backslash, control characters and non-ASCII bytes.
var stringStop = func() (t [256]bool) {
	for c := range t {
		t[c] = c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf
	}
	return t
}()

// scanString scans the JSON string at data[i] == '"'. It returns the
// index after its closing quote, and whether its content is plain: ASCII
// without escapes, so its bytes are its value.
func scanString(data []byte, i int) (end int, plain bool, err error) {
	plain = true
	i++
	for {
		for i < len(data) && !stringStop[data[i]] {
			i++
		}
		if i >= len(data) {
			return 0, false, io.ErrUnexpectedEOF
		}
		switch c := data[i]; {
		case c == '"':
			return i + 1, plain, nil
		case c == '\\':
			plain = false
			if i+1 >= len(data) {
				return 0, false, io.ErrUnexpectedEOF
			}
			switch data[i+1] {
			case 'b', 'f', 'n', 'r', 't', '\\', '/', '"':
				i += 2
			case 'u':
				for j := i + 2; j < i+6; j++ {
					if j >= len(data) {
						return 0, false, io.ErrUnexpectedEOF
					}
					if !isHex(data[j]) {
						return 0, false, badChar(data[j], ` in \u hexadecimal character escape`)
					}
				}
				i += 6
			default:
				return 0, false, badChar(data[i+1], " in string escape code")
			}
		case c < 0x20:
			return 0, false, badChar(c, " in string literal")
		default:
			plain = false
			i++
		}
	}
}

func isHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// scanNumber scans the JSON number at data[i] ('-' or a digit). It
// returns the index after it, and whether it has a fraction or an
// exponent.
func scanNumber(data []byte, i int) (end int, float bool, err error) {
	if data[i] == '-' {
		if i++; i == len(data) {
			return 0, false, io.ErrUnexpectedEOF
		}
		if !isDigit(data[i]) {
			return 0, false, badChar(data[i], " in numeric literal")
		}
	}
	if data[i] == '0' {
		i++
	} else {
		for i++; i < len(data) && isDigit(data[i]); i++ {
		}
	}
	if i < len(data) && data[i] == '.' {
		float = true
		if i++; i == len(data) {
			return 0, false, io.ErrUnexpectedEOF
		}
		if !isDigit(data[i]) {
			return 0, false, badChar(data[i], " after decimal point in numeric literal")
		}
		for i++; i < len(data) && isDigit(data[i]); i++ {
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		float = true
		if i++; i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i == len(data) {
			return 0, false, io.ErrUnexpectedEOF
		}
		if !isDigit(data[i]) {
			return 0, false, badChar(data[i], " in exponent of numeric literal")
		}
		for i++; i < len(data) && isDigit(data[i]); i++ {
		}
	}
	return i, float, nil
}

// scanLiteral scans lit (true, false or null) at data[i], whose first
// byte is lit's.
func scanLiteral(data []byte, i int, lit string) (int, error) {
	for j := 1; j < len(lit); j++ {
		if i+j == len(data) {
			return 0, io.ErrUnexpectedEOF
		}
		if data[i+j] != lit[j] {
			return 0, badChar(data[i+j], " in literal "+lit+" (expecting "+quoteChar(lit[j])+")")
		}
	}
	return i + len(lit), nil
}

// skipValue scans the JSON value at data[i], not whitespace, inside depth
// arrays and objects of the value being read. It returns the index after
// it.
func (d *Decoder) skipValue(data []byte, i, depth int) (int, error) {
	stack := d.stack[:0]
	defer func() { d.stack = stack }()
	var err error
	for {
		// A value starts at i.
		if i == len(data) {
			return 0, io.ErrUnexpectedEOF
		}
		switch c := data[i]; {
		case c == '"':
			i, _, err = scanString(data, i)
		case c == '-' || isDigit(c):
			i, _, err = scanNumber(data, i)
		case c == 't':
			i, err = scanLiteral(data, i, "true")
		case c == 'f':
			i, err = scanLiteral(data, i, "false")
		case c == 'n':
			i, err = scanLiteral(data, i, "null")
		case c == '{' || c == '[':
			if depth+len(stack) >= maxNestingDepth {
				return 0, badChar(c, " exceeded max depth")
			}
			stack = append(stack, c)
			if i = skipSpace(data, i+1); i == len(data) {
				return 0, io.ErrUnexpectedEOF
			}
			switch {
			case c == '{' && data[i] == '}', c == '[' && data[i] == ']':
				i++
				stack = stack[:len(stack)-1]
			case c == '{':
				if i, err = memberKey(data, i); err != nil {
					return 0, err
				}
				continue
			default:
				continue
			}
		default:
			return 0, badChar(c, " looking for beginning of value")
		}
		if err != nil {
			return 0, err
		}
		// A value ended before i: close what it ends, up to the next value.
		for {
			if len(stack) == 0 {
				return i, nil
			}
			if i = skipSpace(data, i); i == len(data) {
				return 0, io.ErrUnexpectedEOF
			}
			c, open := data[i], stack[len(stack)-1]
			if c == ',' {
				if i = skipSpace(data, i+1); open == '{' {
					if i == len(data) {
						return 0, io.ErrUnexpectedEOF
					}
					if i, err = memberKey(data, i); err != nil {
						return 0, err
					}
				}
				break
			}
			switch {
			case open == '{' && c == '}', open == '[' && c == ']':
				i++
				stack = stack[:len(stack)-1]
			case open == '{':
				return 0, badChar(c, " after object key:value pair")
			default:
				return 0, badChar(c, " after array element")
			}
		}
	}
}

// memberKey scans a member's key and colon at data[i], not whitespace,
// and returns the index of its value, whitespace skipped.
func memberKey(data []byte, i int) (int, error) {
	if data[i] != '"' {
		return 0, badChar(data[i], " looking for beginning of object key string")
	}
	i, _, err := scanString(data, i)
	if err != nil {
		return 0, err
	}
	if i = skipSpace(data, i); i == len(data) {
		return 0, io.ErrUnexpectedEOF
	}
	if data[i] != ':' {
		return 0, badChar(data[i], " after object key")
	}
	return skipSpace(data, i+1), nil
}
