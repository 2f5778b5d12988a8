package simulator

import "errors"

// Errors returned by this package. Errors that carry detail wrap one of
// these, so callers match them with errors.Is.
var (
	// ErrClosed is returned by AddUnit and AddDevice after Close.
	ErrClosed = errors.New("simulator: server closed")

	// ErrUnitID is returned by AddUnit for a unit id the simulator does
	// not serve: 248 to 254 are reserved by the Modbus serial line
	// specification. Use 1 to 247 for units behind a simulated gateway,
	// 255 (or 0) for a native Modbus TCP device.
	ErrUnitID = errors.New("simulator: reserved unit id (use 0, 1..247 or 255)")

	// ErrUnitExists is returned by AddUnit for a unit id already served.
	ErrUnitExists = errors.New("simulator: unit already exists")

	// ErrSize is returned by AddUnit for a table size outside 0..65536.
	ErrSize = errors.New("simulator: table size out of range 0..65536")

	// ErrTable is returned by the Unit accessors for a table of the wrong
	// kind: SetBits and Bits take Coils or DiscreteInputs, SetRegisters and
	// Registers take HoldingRegisters or InputRegisters.
	ErrTable = errors.New("simulator: wrong table for this operation")

	// ErrAddressRange is returned by the Unit accessors when the addresses
	// run past the end of the unit's table.
	ErrAddressRange = errors.New("simulator: address out of range")

	// ErrFault is wrapped by the error SetFaults returns for a Fault whose
	// fields do not make sense together; the message names the field.
	ErrFault = errors.New("simulator: invalid fault")

	// ErrConfig is wrapped by the error New returns for an invalid Config;
	// the message names the field and its value.
	ErrConfig = errors.New("simulator: invalid config")

	// ErrDevice is wrapped by the error AddDevice returns for a device
	// class the simulator cannot serve; the message names the field.
	ErrDevice = errors.New("simulator: cannot simulate device")
)

// Reasons a connection is closed for a malformed frame. They are logged,
// never returned: a frame error is the client's problem.
var (
	errProtocolID = errors.New("protocol id is not 0")
	errLength     = errors.New("MBAP length outside 2..254")
	errTruncated  = errors.New("truncated frame")
)
