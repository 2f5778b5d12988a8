package devices

import (
	"errors"
	"fmt"
)

// Errors a caller can test for with errors.Is.
var (
	// ErrByteCount means a Modbus response does not hold exactly the bytes
	// its request asked for (2 per register, 1 per 8 bits). A client that
	// accepts short replies would otherwise decode stale or shifted data.
	// It comes wrapped in a *ByteCountError.
	ErrByteCount = errors.New("devices: response byte count does not match the request")

	// ErrNotFinite means a float read from a device is NaN or infinite,
	// which a JSON sample cannot carry: the field's error says so instead.
	ErrNotFinite = errors.New("devices: value is not a finite number")

	// ErrRange means a value does not fit the field's type once the
	// inverse of its scale and offset is applied.
	ErrRange = errors.New("devices: value out of range for the field")

	// ErrKind means a value's kind does not suit the field: a string for a
	// number, a number for a bool.
	ErrKind = errors.New("devices: value kind does not suit the field")

	// ErrMalformedSample means a record is not a valid sample of a schema
	// version DecodeSample reads (1 or 2). Every error DecodeSample returns other than a version error
	// matches it; a sink sends such records to the dead-letter topic.
	ErrMalformedSample = errors.New("devices: malformed sample")

	// ErrSchemaVersion means a sample declares a schema version this code
	// does not read, as a newer producer would write. It comes wrapped in a
	// *VersionError. The fix is to upgrade the reader, not to discard the
	// record.
	ErrSchemaVersion = errors.New("devices: sample schema version not supported")
)

// MapError is one problem in a register-map file. Parse and Load return
// every problem they find, joined with errors.Join, so a user fixes a file
// in one pass.
type MapError struct {
	File  string // file name as given to Parse or Load
	Line  int    // 1-based line of the offending value; 0 if unknown
	Field string // name of the field concerned; empty for class-level problems
	Err   error  // what is wrong and, where it helps, how to fix it
}

// Error returns "file:line: field "name": problem".
func (e *MapError) Error() string {
	s := e.File
	if e.Line > 0 {
		s += fmt.Sprintf(":%d", e.Line)
	}
	if e.Field != "" {
		s += fmt.Sprintf(": field %q", e.Field)
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the underlying problem.
func (e *MapError) Unwrap() error { return e.Err }

// ByteCountError reports a response whose length does not match its read.
type ByteCountError struct {
	Table    Table
	Address  uint16
	Quantity uint16
	Want     int // bytes the request asked for
	Got      int // bytes the response holds
}

// Error says which read got how many bytes.
func (e *ByteCountError) Error() string {
	return fmt.Sprintf("%v: %s read of %d at address %d: response holds %d bytes, want %d",
		ErrByteCount, e.Table, e.Quantity, e.Address, e.Got, e.Want)
}

// Unwrap returns ErrByteCount.
func (e *ByteCountError) Unwrap() error { return ErrByteCount }

// SampleError reports what is wrong in a sample record and under which
// key. It matches ErrMalformedSample with errors.Is.
type SampleError struct {
	Key string // the JSON key concerned: "seq", "fields.pressure"; empty for the whole record
	Err error  // what is wrong
}

// Error returns `devices: malformed sample: key "seq": problem`.
func (e *SampleError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%v: %v", ErrMalformedSample, e.Err)
	}
	return fmt.Sprintf("%v: key %q: %v", ErrMalformedSample, e.Key, e.Err)
}

// Unwrap returns the underlying problem.
func (e *SampleError) Unwrap() error { return e.Err }

// Is reports whether target is ErrMalformedSample.
func (e *SampleError) Is(target error) bool { return target == ErrMalformedSample }

// VersionError reports a sample of a schema version DecodeSample does not
// read: not MinSchemaVersion to SchemaVersion.
type VersionError struct {
	Version uint64 // the version the record declares
}

// Error returns "devices: sample schema version N not supported".
func (e *VersionError) Error() string {
	return fmt.Sprintf("devices: sample schema version %d not supported", e.Version)
}

// Unwrap returns ErrSchemaVersion.
func (e *VersionError) Unwrap() error { return ErrSchemaVersion }
