package modbus

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/factorywire/factorywire/devices"
)

// Errors of this package. Errors carrying detail (*ConnError, *LengthError)
// match these with errors.Is; *ExceptionError is matched with errors.As.
var (
	// ErrClosed is the error of a Read on a closed Conn, and of a Read
	// still queued when Close is called.
	ErrClosed = errors.New("modbus: connection closed")

	// ErrBackoff is the error of a Read that arrives while the Conn waits
	// before its next connect attempt (see ConnConfig.ReconnectMin). The
	// Read fails at once without touching the network; *ConnError.Err is
	// the last connect error.
	ErrBackoff = errors.New("modbus: waiting to reconnect after failed connects")

	// ErrConnect is the error of a Read whose connect attempt failed (the
	// TCP dial or the serial port open).
	ErrConnect = errors.New("modbus: connect failed")

	// ErrTimeout is the error of a request whose reply did not arrive
	// within ConnConfig.Timeout (or the caller's deadline, if sooner). The
	// connection is closed: a late reply must not answer the next request.
	ErrTimeout = errors.New("modbus: request timed out")

	// ErrTransport is the error of a request whose connection broke: end
	// of file, connection reset, a failed write.
	ErrTransport = errors.New("modbus: connection broken")

	// ErrFraming is the error of a reply that does not belong to the
	// request or is malformed: transaction, protocol or unit id mismatch,
	// bad MBAP length, bad CRC, another function code, a malformed
	// exception reply. The connection is closed.
	ErrFraming = errors.New("modbus: malformed or mismatched reply")

	// ErrReplyLength is wrapped by *LengthError: a reply whose byte count
	// or data length does not match the quantity requested.
	ErrReplyLength = errors.New("modbus: reply length does not match the request")

	// ErrInvalidRead is the error of a Read with arguments no device could
	// answer (unknown table, quantity 0 or above the table's maximum, a
	// range past address 65535, unit 0 or above 247 on a serial line).
	ErrInvalidRead = errors.New("modbus: invalid read request")

	// ErrRunning is returned by a second call of Poller.Run.
	ErrRunning = errors.New("modbus: poller already running")

	// ErrStopped is returned by Poller.Change once Run has returned, or
	// when Run ends during the change.
	ErrStopped = errors.New("modbus: poller stopped")

	// ErrInvalidConfig is wrapped by the errors of the Validate methods and
	// of NewPoller; the message names the field and its value.
	ErrInvalidConfig = errors.New("modbus: invalid config")
)

// ExceptionError is a well-formed exception reply: the device (or the
// gateway in front of it) understood the request and refused it. It never
// closes the connection. Code devices.ExceptionServerDeviceBusy is retried (see
// ConnConfig.BusyTries) before it is returned.
type ExceptionError struct {
	Unit     uint8
	Function uint8 // the request's function code, without the 0x80 bit
	Code     devices.Exception
}

func (e *ExceptionError) Error() string {
	return fmt.Sprintf("modbus: unit %d, function %d: exception %d (%s)", e.Unit, e.Function, uint8(e.Code), e.Code)
}

// UnitDown reports whether the exception says the unit, not the request,
// is the problem: a gateway without a path to it (0x0A) or whose target did
// not answer (0x0B).
func (e *ExceptionError) UnitDown() bool {
	return e.Code == devices.ExceptionGatewayPathUnavailable || e.Code == devices.ExceptionGatewayTargetFailedToRespond
}

// LengthError is a read reply whose byte count or data does not match the
// quantity asked for: a short reply (goburrow/modbus v0.1.0 accepts any
// byte count that matches the data it carries). The connection is closed
// and reopened at the next request, as after any framing error.
type LengthError struct {
	Unit     uint8
	Function uint8
	Address  uint16
	Quantity uint16
	Count    int // the byte count the reply declares
	Got      int // the data bytes the reply carries
	Want     int // 2*Quantity for registers, (Quantity+7)/8 for bits
}

func (e *LengthError) Error() string {
	return fmt.Sprintf("modbus: unit %d, function %d, address %d, quantity %d: reply declares %d and carries %d data bytes, want %d",
		e.Unit, e.Function, e.Address, e.Quantity, e.Count, e.Got, e.Want)
}

// Unwrap returns ErrReplyLength.
func (e *LengthError) Unwrap() error { return ErrReplyLength }

// ErrorKind classifies the outcome of a request for counters and logs.
type ErrorKind uint8

// The error kinds, in the order KindOf checks them.
const (
	KindNone      ErrorKind = iota // no error
	KindCanceled                   // the caller's context ended
	KindClosed                     // ErrClosed
	KindInvalid                    // ErrInvalidRead
	KindBackoff                    // ErrBackoff
	KindConnect                    // ErrConnect
	KindTimeout                    // ErrTimeout
	KindTransport                  // ErrTransport
	KindFraming                    // ErrFraming
	KindLength                     // *LengthError
	KindException                  // *ExceptionError
	KindOther                      // none of the above
)

var kindNames = [...]string{
	KindNone:      "none",
	KindCanceled:  "canceled",
	KindClosed:    "closed",
	KindInvalid:   "invalid",
	KindBackoff:   "backoff",
	KindConnect:   "connect",
	KindTimeout:   "timeout",
	KindTransport: "transport",
	KindFraming:   "framing",
	KindLength:    "length",
	KindException: "exception",
	KindOther:     "other",
}

// String returns the kind's lower-case name, usable as a metric label.
func (k ErrorKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// sentinel is the package error a *ConnError of kind k matches.
func (k ErrorKind) sentinel() error {
	switch k {
	case KindClosed:
		return ErrClosed
	case KindBackoff:
		return ErrBackoff
	case KindConnect:
		return ErrConnect
	case KindTimeout:
		return ErrTimeout
	case KindTransport:
		return ErrTransport
	case KindFraming:
		return ErrFraming
	}
	return nil
}

// ConnectionLevel reports whether errors of the kind say the connection
// (not the request) failed: the poller stops a poll at the first one.
func (k ErrorKind) ConnectionLevel() bool {
	switch k {
	case KindClosed, KindBackoff, KindConnect, KindTimeout, KindTransport, KindFraming:
		return true
	}
	return false
}

// KindOf classifies err. It never returns KindNone for a non-nil error.
func KindOf(err error) ErrorKind {
	if err == nil {
		return KindNone
	}
	var ce *ConnError
	var le *LengthError
	var ee *ExceptionError
	switch {
	case errors.As(err, &ce):
		return ce.Kind
	case errors.As(err, &le):
		return KindLength
	case errors.As(err, &ee):
		return KindException
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return KindCanceled
	case errors.Is(err, ErrClosed):
		return KindClosed
	case errors.Is(err, ErrInvalidRead):
		return KindInvalid
	}
	return KindOther
}

// ConnError is a request that failed at the connection level: the Conn
// could not connect, the connection broke, timed out or returned a reply
// that does not belong to the request. It matches the sentinel of its Kind
// with errors.Is (ErrTimeout, ErrTransport, ...) and unwraps to the cause
// (a net.Error, io.EOF, goburrow's message).
type ConnError struct {
	Conn     string // ConnConfig.Name
	Unit     uint8
	Function uint8
	Kind     ErrorKind
	Err      error // the cause; nil for KindClosed
}

func (e *ConnError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "modbus: %s: unit %d, function %d: ", e.Conn, e.Unit, e.Function)
	if s := e.Kind.sentinel(); s != nil {
		b.WriteString(strings.TrimPrefix(s.Error(), "modbus: "))
	} else {
		b.WriteString(e.Kind.String())
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *ConnError) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's kind.
func (e *ConnError) Is(target error) bool {
	s := e.Kind.sentinel()
	return s != nil && target == s
}
