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

// SchemaVersion is the sample schema version AppendJSON writes and
// DecodeSample reads: the "v" of every record.
const SchemaVersion = 1

// ContentType is the value of the content-type header of every sample
// record.
const ContentType = "application/json"

// timeLayout writes a sample's ts: RFC 3339, UTC, milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// Sample is one poll of one device: every field read in that cycle, with
// one timestamp and the device's sequence number. A field appears either
// in Fields, with its value, or in Errors, with why it has none, never in
// both.
type Sample struct {
	Factory string            // factory name, as ValidateName accepts
	Device  string            // device id, the record key, as ValidateDevice accepts
	Class   string            // device class name, as ValidateName accepts
	Time    time.Time         // when the poll started; kept to the millisecond
	Seq     uint64            // per device, one more than the device's previous sample
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

// AppendJSON appends the sample as a schema version 1 JSON object and
// returns the extended buffer. The output is deterministic: keys in the
// order v, factory, device, class, ts, seq, fields, errors, and field names
// sorted. errors is omitted when empty. Values are written as
// Value.AppendJSON writes them. AppendJSON does not validate the sample:
// the producer owns valid names and a Time within years 0000 to 9999.
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
	dst = append(dst, `,"fields":{`...)
	var buf [64]string
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
		dst = append(dst, `,"errors":{`...)
		for i, name := range sortedKeys(buf[:0], s.Errors) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, name)
			dst = append(dst, ':')
			dst = appendString(dst, s.Errors[name])
		}
		dst = append(dst, '}')
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

// sampleKeys are the top-level keys of a version 1 sample; all but errors
// are required.
var sampleKeys = []string{"v", "factory", "device", "class", "ts", "seq", "fields", "errors"}

// DecodeSample decodes a schema version 1 sample strictly. It returns a
// *VersionError if "v" is an integer other than 1, whatever else the
// record holds, and otherwise a *SampleError for the first problem found:
// input that is not one JSON object, an unknown or repeated key, a missing
// required key, an invalid factory, class or device name, a ts that is not
// RFC 3339, a seq that is not an unsigned integer, a field value that is
// not a bool, number or string, an invalid field name, or a field present
// under both fields and errors.
//
// ts may carry any offset and precision; Time is converted to UTC and
// truncated to the millisecond. Fields is never nil; Errors is nil when
// the record has none.
func DecodeSample(data []byte) (Sample, error) {
	members, err := decodeMembers(data)
	if err != nil {
		return Sample{}, err
	}
	if err := checkVersion(members["v"]); err != nil {
		return Sample{}, err
	}
	if err := checkKeys(members); err != nil {
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
	members := make(map[string]json.RawMessage, len(sampleKeys))
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

// checkVersion accepts a "v" of 1, and tells a record of another version
// apart from a malformed one.
func checkVersion(raw json.RawMessage) error {
	if raw == nil {
		return &SampleError{Key: "v", Err: errors.New("missing: a sample declares its schema version, 1")}
	}
	v, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return &SampleError{Key: "v", Err: fmt.Errorf("want the integer %d, got %s", SchemaVersion, raw)}
	}
	if v != SchemaVersion {
		return &VersionError{Version: v}
	}
	return nil
}

// checkKeys refuses unknown keys and reports the first missing one.
// Unknown keys are refused rather than skipped: a record this reader does
// not fully understand belongs in the dead-letter topic, and a new key
// comes with a new schema version.
func checkKeys(members map[string]json.RawMessage) error {
	var unknown []string
	for key := range members {
		if !slices.Contains(sampleKeys, key) {
			unknown = append(unknown, key)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return &SampleError{Key: unknown[0], Err: fmt.Errorf("unknown key (want %s)", wantList(sampleKeys))}
	}
	for _, key := range sampleKeys[:len(sampleKeys)-1] {
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

// SeqOf reads the seq of a sample encoded by AppendJSON without decoding
// the rest, for readers of their own spool. ok is false when data does not
// have AppendJSON's layout up to the seq; DecodeSample then decides.
func SeqOf(data []byte) (seq uint64, ok bool) {
	if !bytes.HasPrefix(data, []byte(`{"v":1,"factory":"`)) {
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
