package devices

import "fmt"

// Exception is a Modbus exception code, the second byte of an exception
// reply (function code | 0x80, code).
type Exception uint8

// The exception codes of the Modbus application protocol specification
// v1.1b3, section 7.
const (
	ExceptionIllegalFunction              Exception = 0x01
	ExceptionIllegalDataAddress           Exception = 0x02
	ExceptionIllegalDataValue             Exception = 0x03
	ExceptionServerDeviceFailure          Exception = 0x04
	ExceptionAcknowledge                  Exception = 0x05
	ExceptionServerDeviceBusy             Exception = 0x06
	ExceptionMemoryParityError            Exception = 0x08
	ExceptionGatewayPathUnavailable       Exception = 0x0A
	ExceptionGatewayTargetFailedToRespond Exception = 0x0B
)

// String returns the specification's name of the code.
func (e Exception) String() string {
	switch e {
	case ExceptionIllegalFunction:
		return "illegal function"
	case ExceptionIllegalDataAddress:
		return "illegal data address"
	case ExceptionIllegalDataValue:
		return "illegal data value"
	case ExceptionServerDeviceFailure:
		return "server device failure"
	case ExceptionAcknowledge:
		return "acknowledge"
	case ExceptionServerDeviceBusy:
		return "server device busy"
	case ExceptionMemoryParityError:
		return "memory parity error"
	case ExceptionGatewayPathUnavailable:
		return "gateway path unavailable"
	case ExceptionGatewayTargetFailedToRespond:
		return "gateway target device failed to respond"
	}
	return fmt.Sprintf("unknown exception 0x%02x", uint8(e))
}
