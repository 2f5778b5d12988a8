package devices

// This file keeps the encoding/json-based sample decoder that DecodeSample
// was until the Decoder replaced it (issue 16), unchanged but for its name:
// FuzzDecodeSampleAgainstStd and BenchmarkDecodeSample hold the Decoder to
// it. Its error ordering is the specification the Decoder follows.

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

// decodeSampleStd decodes a sample of schema version 1 or 2 strictly. It
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
func decodeSampleStd(data []byte) (Sample, error) {
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

// requiredKeys are the keys every sample has, of either version
// (requiredKeyIDs).
var requiredKeys = []string{"v", "factory", "device", "class", "ts", "seq", "fields"}

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
