package devices

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// SchemaVersion is the sample schema version AppendJSON writes: the "v"
// of every record. DecodeSample reads versions MinSchemaVersion to
// SchemaVersion.
const SchemaVersion = 2

// MinSchemaVersion is the oldest sample schema version DecodeSample reads.
// Version 1 is version 2 without tags and units.
const MinSchemaVersion = 1

// ContentType is the value of the content-type header of every sample
// record.
const ContentType = "application/json"

// timeLayout writes a sample's ts: RFC 3339, UTC, milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// Sample is one poll of one device: every field read in that cycle, with
// one timestamp and the device's sequence number. A field appears either
// in Fields, with its value, or in Errors, with why it has none, never in
// both.
//
// Tags and Units are static: a producer shares one map among all the
// samples of a device (Tags) or of a class (Units, Class.Units), so
// nobody may modify them through a Sample. DecodeSample allocates its own.
type Sample struct {
	Factory string            // factory name, as ValidateName accepts
	Device  string            // device id, the record key, as ValidateDevice accepts
	Class   string            // device class name, as ValidateName accepts
	Time    time.Time         // when the poll started; kept to the millisecond
	Seq     uint64            // per device, one more than the device's previous sample
	Tags    map[string]string // tag key → value: the device's static tags (ValidateTag); read only
	Units   map[string]string // field name → unit, for the class's fields that have one; read only
	Fields  map[string]Value  // field name → value
	Errors  map[string]string // field name → why the field has no value
}

// DecodeRead decodes data, the response to r (the bytes after the Modbus byte
// count: registers high byte first, bits packed least significant first),
// putting each field r serves into s.Fields, or into s.Errors if its value
// cannot be carried (a NaN float). It allocates the maps if they are nil.
//
// If len(data) is not r.ByteCount(), DecodeRead changes nothing and returns a
// *ByteCountError; the caller then records the failure with FailRead, and
// should treat the connection as out of step.
func (s *Sample) DecodeRead(r Read, data []byte) error {
	if want := r.ByteCount(); len(data) != want {
		return &ByteCountError{Table: r.Table, Address: r.Address, Quantity: r.Quantity, Want: want, Got: len(data)}
	}
	for _, slot := range r.Fields {
		f := slot.Field
		if f.Table != r.Table || slot.Offset < 0 || slot.Offset+f.Size() > int(r.Quantity) ||
			!r.Table.Bits() && f.Size() > MaxReadRegisters {
			return fmt.Errorf("devices: field %q (%s) does not lie inside the read %s %s",
				f.Name, span(f), r.Table, addressRange(r.Address, int(r.Quantity)))
		}
	}
	for _, slot := range r.Fields {
		f := slot.Field
		if r.Table.Bits() {
			s.set(f.Name, BoolValue(data[slot.Offset/8]>>(slot.Offset%8)&1 == 1))
			continue
		}
		v, err := f.decode(data[2*slot.Offset : 2*(slot.Offset+f.Size())])
		if err != nil {
			s.setError(f.Name, err)
			continue
		}
		s.set(f.Name, v)
	}
	return nil
}

// FailRead records err as the error of every field r serves: the read timed
// out, got a Modbus exception, or its response was malformed.
func (s *Sample) FailRead(r Read, err error) {
	for _, slot := range r.Fields {
		s.setError(slot.Field.Name, err)
	}
}

func (s *Sample) set(name string, v Value) {
	if s.Fields == nil {
		s.Fields = make(map[string]Value)
	}
	s.Fields[name] = v
	delete(s.Errors, name)
}

func (s *Sample) setError(name string, err error) {
	if s.Errors == nil {
		s.Errors = make(map[string]string)
	}
	s.Errors[name] = err.Error()
	delete(s.Fields, name)
}

// AppendJSON appends the sample as a schema version 2 (SchemaVersion)
// JSON object and returns the extended buffer. The output is
// deterministic: keys in the order v, factory, device, class, ts, seq,
// tags, units, fields, errors, and the keys of each object sorted. tags,
// units and errors are omitted when empty. Values are written as
// Value.AppendJSON writes them. AppendJSON does not validate the sample:
// the producer owns valid names, tags ValidateTag accepts, units as
// Class.Units holds them, and a Time within years 0000 to 9999.
func (s *Sample) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, SchemaVersion, 10)
	dst = append(dst, `,"factory":`...)
	dst = appendString(dst, s.Factory)
	dst = append(dst, `,"device":`...)
	dst = appendString(dst, s.Device)
	dst = append(dst, `,"class":`...)
	dst = appendString(dst, s.Class)
	dst = append(dst, `,"ts":"`...)
	dst = s.Time.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, s.Seq, 10)
	var buf [64]string
	if len(s.Tags) > 0 {
		dst = appendStrings(dst, `,"tags":{`, s.Tags, buf[:0])
	}
	if len(s.Units) > 0 {
		dst = appendStrings(dst, `,"units":{`, s.Units, buf[:0])
	}
	dst = append(dst, `,"fields":{`...)
	for i, name := range sortedKeys(buf[:0], s.Fields) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, name)
		dst = append(dst, ':')
		dst = s.Fields[name].AppendJSON(dst)
	}
	dst = append(dst, '}')
	if len(s.Errors) > 0 {
		dst = appendStrings(dst, `,"errors":{`, s.Errors, buf[:0])
	}
	return append(dst, '}')
}

// appendStrings appends open, then m's members sorted by key, and the
// closing brace; keys is scratch space for the sort.
func appendStrings(dst []byte, open string, m map[string]string, keys []string) []byte {
	dst = append(dst, open...)
	for i, k := range sortedKeys(keys, m) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = appendString(dst, m[k])
	}
	return append(dst, '}')
}

func sortedKeys[V any](keys []string, m map[string]V) []string {
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sampleKeys are the top-level keys of a sample, by schema version, in
// AppendJSON's order; the required ones are requiredKeys.
var sampleKeys = map[uint64][]string{
	1: {"v", "factory", "device", "class", "ts", "seq", "fields", "errors"},
	2: {"v", "factory", "device", "class", "ts", "seq", "tags", "units", "fields", "errors"},
}

// requiredKeys are the keys every sample has, of either version.
var requiredKeys = []string{"v", "factory", "device", "class", "ts", "seq", "fields"}

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
func DecodeSample(data []byte) (Sample, error) {
	members, err := decodeMembers(data)
	if err != nil {
		return Sample{}, err
	}
	v, err := checkVersion(members["v"])
	if err != nil {
		return Sample{}, err
	}
	if err := checkKeys(members, sampleKeys[v]); err != nil {
		return Sample{}, err
	}
	var s Sample
	if s.Factory, err = nameMember(members, "factory", ValidateName); err != nil {
		return Sample{}, err
	}
	if s.Device, err = nameMember(members, "device", ValidateDevice); err != nil {
		return Sample{}, err
	}
	if s.Class, err = nameMember(members, "class", ValidateName); err != nil {
		return Sample{}, err
	}
	if s.Time, err = timeMember(members["ts"]); err != nil {
		return Sample{}, err
	}
	if s.Seq, err = uintMember(members["seq"]); err != nil {
		return Sample{}, err
	}
	if raw, ok := members["tags"]; ok {
		if s.Tags, err = decodeStrings(raw, "tags", MaxTags, ValidateTag); err != nil {
			return Sample{}, err
		}
	}
	if raw, ok := members["units"]; ok {
		if s.Units, err = decodeStrings(raw, "units", 0, checkUnit); err != nil {
			return Sample{}, err
		}
	}
	if s.Fields, err = decodeFields(members["fields"]); err != nil {
		return Sample{}, err
	}
	if raw, ok := members["errors"]; ok {
		if s.Errors, err = decodeErrors(raw, s.Fields); err != nil {
			return Sample{}, err
		}
	}
	return s, nil
}

// decodeMembers splits one JSON object into its members, refusing repeated
// keys and anything after the object.
func decodeMembers(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := openObject(dec, ""); err != nil {
		return nil, err
	}
	members := make(map[string]json.RawMessage, len(sampleKeys[SchemaVersion]))
	for dec.More() {
		key, err := objectKey(dec, "")
		if err != nil {
			return nil, err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, &SampleError{Key: key, Err: truncated(err)}
		}
		if _, dup := members[key]; dup {
			return nil, &SampleError{Key: key, Err: errors.New("given twice")}
		}
		members[key] = bytes.TrimSpace(raw)
	}
	if err := closeObject(dec, ""); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &SampleError{Err: errors.New("data after the sample object: a record holds exactly one sample")}
	}
	return members, nil
}

func openObject(dec *json.Decoder, key string) error {
	tok, err := dec.Token()
	if err == io.EOF {
		return &SampleError{Key: key, Err: errors.New("empty, want a JSON object")}
	}
	if err != nil {
		return &SampleError{Key: key, Err: err}
	}
	if tok != json.Delim('{') {
		return &SampleError{Key: key, Err: fmt.Errorf("want a JSON object, got %v", describeToken(tok))}
	}
	return nil
}

func objectKey(dec *json.Decoder, parent string) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", &SampleError{Key: parent, Err: truncated(err)}
	}
	key, ok := tok.(string)
	if !ok {
		return "", &SampleError{Key: parent, Err: fmt.Errorf("want a key, got %v", describeToken(tok))}
	}
	return key, nil
}

func closeObject(dec *json.Decoder, key string) error {
	if _, err := dec.Token(); err != nil {
		return &SampleError{Key: key, Err: truncated(err)}
	}
	return nil
}

// truncated turns the io.EOF a json.Decoder returns inside an object into
// io.ErrUnexpectedEOF.
func truncated(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		return string(t)
	case string:
		return strconv.Quote(t)
	case nil:
		return "null"
	}
	return fmt.Sprint(tok)
}

// checkVersion returns the "v" of a record of a version DecodeSample
// reads, and tells a record of another version apart from a malformed
// one.
func checkVersion(raw json.RawMessage) (uint64, error) {
	if raw == nil {
		return 0, &SampleError{Key: "v", Err: errors.New("missing: a sample declares its schema version, 1 or 2")}
	}
	v, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return 0, &SampleError{Key: "v", Err: fmt.Errorf("want the integer 1 or 2, got %s", raw)}
	}
	if v < MinSchemaVersion || v > SchemaVersion {
		return 0, &VersionError{Version: v}
	}
	return v, nil
}

// checkKeys refuses keys not in known, the keys of the record's version,
// and reports the first missing one. Unknown keys are refused rather than
// skipped: a record this reader does not fully understand belongs in the
// dead-letter topic, and a new key comes with a new schema version.
func checkKeys(members map[string]json.RawMessage, known []string) error {
	var unknown []string
	for key := range members {
		if !slices.Contains(known, key) {
			unknown = append(unknown, key)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return &SampleError{Key: unknown[0], Err: fmt.Errorf("unknown key (want %s)", wantList(known))}
	}
	for _, key := range requiredKeys {
		if _, ok := members[key]; !ok {
			return &SampleError{Key: key, Err: errors.New("missing")}
		}
	}
	return nil
}

func stringMember(raw json.RawMessage, key string) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", &SampleError{Key: key, Err: fmt.Errorf("want a string, got %s", raw)}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &SampleError{Key: key, Err: err}
	}
	return s, nil
}

func nameMember(members map[string]json.RawMessage, key string, validate func(string) error) (string, error) {
	s, err := stringMember(members[key], key)
	if err != nil {
		return "", err
	}
	if err := validate(s); err != nil {
		return "", &SampleError{Key: key, Err: err}
	}
	return s, nil
}

func timeMember(raw json.RawMessage) (time.Time, error) {
	s, err := stringMember(raw, "ts")
	if err != nil {
		return time.Time{}, err
	}
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

func uintMember(raw json.RawMessage) (uint64, error) {
	u, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return 0, &SampleError{Key: "seq", Err: fmt.Errorf("want an unsigned 64-bit integer, got %s", raw)}
	}
	return u, nil
}

// decodeFields decodes the fields object: field names to bools, numbers
// and strings.
func decodeFields(raw json.RawMessage) (map[string]Value, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := openObject(dec, "fields"); err != nil {
		return nil, err
	}
	fields := make(map[string]Value)
	for dec.More() {
		name, err := fieldKey(dec, "fields")
		if err != nil {
			return nil, err
		}
		key := "fields." + name
		tok, err := dec.Token()
		if err != nil {
			return nil, &SampleError{Key: key, Err: truncated(err)}
		}
		v, err := tokenValue(tok)
		if err != nil {
			return nil, &SampleError{Key: key, Err: err}
		}
		if _, dup := fields[name]; dup {
			return nil, &SampleError{Key: key, Err: errors.New("given twice")}
		}
		fields[name] = v
	}
	return fields, closeObject(dec, "fields")
}

// decodeErrors decodes the errors object: field names to non-empty
// messages, none of them a field that has a value.
func decodeErrors(raw json.RawMessage, fields map[string]Value) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := openObject(dec, "errors"); err != nil {
		return nil, err
	}
	errs := make(map[string]string)
	for dec.More() {
		name, err := fieldKey(dec, "errors")
		if err != nil {
			return nil, err
		}
		key := "errors." + name
		tok, err := dec.Token()
		if err != nil {
			return nil, &SampleError{Key: key, Err: truncated(err)}
		}
		msg, ok := tok.(string)
		switch {
		case !ok:
			return nil, &SampleError{Key: key, Err: fmt.Errorf("want a string, got %v", describeToken(tok))}
		case msg == "":
			return nil, &SampleError{Key: key, Err: errors.New("empty message: say why the field has no value")}
		}
		if _, dup := errs[name]; dup {
			return nil, &SampleError{Key: key, Err: errors.New("given twice")}
		}
		if _, both := fields[name]; both {
			return nil, &SampleError{Key: key, Err: errors.New("the field also has a value under fields")}
		}
		errs[name] = msg
	}
	if err := closeObject(dec, "errors"); err != nil {
		return nil, err
	}
	if len(errs) == 0 {
		return nil, nil
	}
	return errs, nil
}

// decodeStrings decodes the tags or units object (parent): keys to
// strings, each pair checked by check, at most limit of them (0: no
// limit). It returns nil for an empty object.
func decodeStrings(raw json.RawMessage, parent string, limit int, check func(key, value string) error) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := openObject(dec, parent); err != nil {
		return nil, err
	}
	m := make(map[string]string)
	for dec.More() {
		k, err := objectKey(dec, parent)
		if err != nil {
			return nil, err
		}
		key := parent + "." + k
		tok, err := dec.Token()
		if err != nil {
			return nil, &SampleError{Key: key, Err: truncated(err)}
		}
		value, ok := tok.(string)
		if !ok {
			return nil, &SampleError{Key: key, Err: fmt.Errorf("want a string, got %v", describeToken(tok))}
		}
		if err := check(k, value); err != nil {
			return nil, &SampleError{Key: key, Err: err}
		}
		if _, dup := m[k]; dup {
			return nil, &SampleError{Key: key, Err: errors.New("given twice")}
		}
		if limit > 0 && len(m) == limit {
			return nil, &SampleError{Key: parent, Err: fmt.Errorf("more than %d entries", limit)}
		}
		m[k] = value
	}
	if err := closeObject(dec, parent); err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// checkUnit checks one member of units: a field name and its unit.
func checkUnit(name, unit string) error {
	if err := validateFieldName(name); err != nil {
		return err
	}
	return validateUnit(unit)
}

func fieldKey(dec *json.Decoder, parent string) (string, error) {
	name, err := objectKey(dec, parent)
	if err != nil {
		return "", err
	}
	if err := validateFieldName(name); err != nil {
		return "", &SampleError{Key: parent + "." + name, Err: err}
	}
	return name, nil
}

// seqMarker precedes the seq in AppendJSON's output: the strings before it
// (factory, device, class, ts) cannot hold a '"', so its first occurrence is
// the top-level seq.
var seqMarker = []byte(`","seq":`)

// SeqOf reads the seq of a sample encoded by AppendJSON, of schema
// version 1 or 2, without decoding the rest, for readers of their own
// spool. ok is false when data does not have AppendJSON's layout up to the
// seq; DecodeSample then decides. (Tags and units come after the seq.)
func SeqOf(data []byte) (seq uint64, ok bool) {
	if !bytes.HasPrefix(data, []byte(`{"v":2,"factory":"`)) && !bytes.HasPrefix(data, []byte(`{"v":1,"factory":"`)) {
		return 0, false
	}
	i := bytes.Index(data, seqMarker)
	if i < 0 {
		return 0, false
	}
	digits := data[i+len(seqMarker):]
	n := 0
	for n < len(digits) && '0' <= digits[n] && digits[n] <= '9' {
		n++
	}
	if n == 0 || n >= len(digits) || digits[n] != ',' {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(digits[:n]), 10, 64)
	return seq, err == nil
}
