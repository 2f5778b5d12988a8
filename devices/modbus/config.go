package modbus

import (
	"fmt"
	"net"
	"slices"
	"time"
)

// Transport is how a Conn reaches its devices.
type Transport string

// The transports: a framing (MBAP, RTU or ASCII) over a connection (a TCP
// socket or a serial port on this machine).
const (
	// TCP is Modbus TCP (MBAP framing) to a device or a TCP-to-RTU gateway.
	TCP Transport = "tcp"
	// RTU is Modbus RTU on a serial line (RS-485/RS-232): unit id, PDU,
	// CRC-16.
	RTU Transport = "rtu"
	// RTUOverTCP is RTU framing (no MBAP header) over a TCP socket: a
	// serial device server in raw or transparent mode (a Moxa NPort in
	// "TCP server" mode) that passes bytes between the socket and its
	// serial port.
	RTUOverTCP Transport = "rtu_over_tcp"
	// ASCII is Modbus ASCII on a serial line: ':', the unit id, PDU and
	// LRC in hexadecimal, CR LF.
	ASCII Transport = "ascii"
	// ASCIIOverTCP is ASCII framing over a TCP socket to a serial device
	// server in raw or transparent mode.
	ASCIIOverTCP Transport = "ascii_over_tcp"
)

// transports are the valid transports, in the order errors list them.
var transports = []Transport{TCP, RTU, RTUOverTCP, ASCII, ASCIIOverTCP}

// Serial reports whether t opens a serial port on this machine (rtu,
// ascii): the serial settings (baud_rate, data_bits, parity, stop_bits)
// apply to it and to no other transport.
func (t Transport) Serial() bool { return t == RTU || t == ASCII }

// Bus reports whether t carries serial-line framing (all but tcp), whether
// on this machine's port or through a device server: requests go to the
// units on a serial bus, where unit 0 is a broadcast no unit answers.
func (t Transport) Bus() bool { return t == RTU || t == RTUOverTCP || t == ASCII || t == ASCIIOverTCP }

// ConnConfig configures one Conn: one physical connection, shared by every
// unit behind it. Zero fields take their defaults in WithDefaults; YAML keys
// are the snake_case tags.
type ConnConfig struct {
	// Name identifies the connection in logs, errors, health and the
	// Observer. Default: Address.
	Name string `yaml:"name"`
	// Transport is "tcp" (default), "rtu", "rtu_over_tcp", "ascii" or
	// "ascii_over_tcp" (see the constants).
	Transport Transport `yaml:"transport"`
	// Address is host:port for tcp, rtu_over_tcp and ascii_over_tcp, or
	// the serial device path for rtu and ascii (/dev/ttyUSB0). Required;
	// there is no default port: Modbus TCP's is 502, a serial device
	// server's is its own (a Moxa NPort's first serial port in TCP server
	// mode: 4001).
	Address string `yaml:"address"`

	// BaudRate is the serial line speed in bit/s (rtu and ascii only).
	// Default 19200.
	BaudRate int `yaml:"baud_rate"`
	// DataBits is 7 or 8 (rtu and ascii only). Default 8 for rtu, 7 for
	// ascii, as the Modbus serial line specification.
	DataBits int `yaml:"data_bits"`
	// Parity is "N", "E" or "O" (rtu and ascii only). Default "E", as the
	// Modbus serial line specification; with "N" it asks for 2 stop bits.
	Parity string `yaml:"parity"`
	// StopBits is 1 or 2 (rtu and ascii only). Default 1.
	StopBits int `yaml:"stop_bits"`

	// Timeout bounds one request: the write, the wait for the reply, and
	// the connect (TCP dial) before it; with serial-line framing (all but
	// tcp) also the discard of stale input after an error. A caller's
	// context deadline that ends sooner shortens it. Over tcp a request may
	// time out up to a 64th of Timeout sooner: requests sent within that
	// time of each other share the connection's deadline. Default 1s.
	Timeout time.Duration `yaml:"timeout"`
	// BusyTries is how many times a read is sent while the device answers
	// exception 6 (server device busy), the first try included; 1 disables
	// the retry. Default 3.
	BusyTries int `yaml:"busy_tries"`
	// BusyBackoff is the wait before the first busy retry; it doubles for
	// each further retry. Default 50ms.
	BusyBackoff time.Duration `yaml:"busy_backoff"`
	// ReconnectMin is the wait after the first failed connect attempt
	// (or a connection that broke before its first reply); it doubles for
	// each further failure up to ReconnectMax, each wait jittered to
	// 50..100% of its value. Reads during the wait fail with ErrBackoff.
	// Default 100ms.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	// ReconnectMax caps the reconnect wait. Default 10s.
	ReconnectMax time.Duration `yaml:"reconnect_max"`

	// Device quirks. Some devices and serial gateways drop requests that
	// follow each other too closely, need a moment after a connect, or
	// hold few TCP connections and must get theirs back between scans.

	// PauseBetweenRequests is the least time from the end of one request
	// on this connection (its reply, or its failure) to the sending of the
	// next, whatever its unit; busy retries included. 0 (the default)
	// sends the next request at once. At most MaxQuirkPause.
	PauseBetweenRequests time.Duration `yaml:"pause_between_requests"`
	// PauseAfterConnect is the least time from a connect (TCP dial or
	// serial port open) to the first request on the new connection. It
	// does not count against Timeout. Default 0; at most MaxQuirkPause.
	PauseAfterConnect time.Duration `yaml:"pause_after_connect"`
	// CloseAfterScan closes the connection (or serial port) once a scan
	// of its devices is done, before the Poller waits for the next one;
	// the next scan connects again. For devices that accept only one or
	// two TCP clients, shared with a SCADA or an engineering tool.
	// Default false: the connection stays open between scans.
	CloseAfterScan bool `yaml:"close_after_scan"`
}

// MaxQuirkPause bounds PauseBetweenRequests and PauseAfterConnect.
const MaxQuirkPause = 10 * time.Second

// Default values of ConnConfig.
const (
	DefaultTimeout      = time.Second
	DefaultBusyTries    = 3
	DefaultBusyBackoff  = 50 * time.Millisecond
	DefaultReconnectMin = 100 * time.Millisecond
	DefaultReconnectMax = 10 * time.Second
	DefaultBaudRate     = 19200
)

// DefaultConnConfig returns the defaults of a TCP connection; set Address.
func DefaultConnConfig() ConnConfig {
	return ConnConfig{}.WithDefaults()
}

// WithDefaults returns c with every zero field set to its default. Serial
// fields get defaults only for the serial transports (rtu, ascii).
func (c ConnConfig) WithDefaults() ConnConfig {
	if c.Transport == "" {
		c.Transport = TCP
	}
	if c.Name == "" {
		c.Name = c.Address
	}
	if c.Transport.Serial() {
		if c.BaudRate == 0 {
			c.BaudRate = DefaultBaudRate
		}
		if c.DataBits == 0 {
			c.DataBits = 8
			if c.Transport == ASCII {
				c.DataBits = 7
			}
		}
		if c.Parity == "" {
			c.Parity = "E"
		}
		if c.StopBits == 0 {
			c.StopBits = 1
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.BusyTries == 0 {
		c.BusyTries = DefaultBusyTries
	}
	if c.BusyBackoff == 0 {
		c.BusyBackoff = DefaultBusyBackoff
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = DefaultReconnectMax
	}
	return c
}

// Validate reports the first invalid field of c (after WithDefaults),
// naming it and its value. The error wraps ErrInvalidConfig.
func (c ConnConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: connection %q: %s", ErrInvalidConfig, c.Name, fmt.Sprintf(format, args...))
	}
	switch c.Transport {
	case TCP, RTUOverTCP, ASCIIOverTCP:
		if _, _, err := net.SplitHostPort(c.Address); err != nil {
			port := "Modbus TCP's port is 502"
			if c.Transport != TCP {
				port = "the device server's port, e.g. 4001 for a Moxa NPort's first serial port"
			}
			return bad("address: %q is not host:port (%v; %s)", c.Address, err, port)
		}
		for _, f := range []struct {
			name string
			set  bool
		}{{"baud_rate", c.BaudRate != 0}, {"data_bits", c.DataBits != 0}, {"parity", c.Parity != ""}, {"stop_bits", c.StopBits != 0}} {
			if f.set {
				return bad("%s is set but transport is %s (serial settings are for transport rtu or ascii, a serial port on this machine; set them on the device server)", f.name, c.Transport)
			}
		}
	case RTU, ASCII:
		if c.Address == "" {
			return bad("address: required (the serial device path, e.g. /dev/ttyUSB0)")
		}
		if !slices.Contains(baudRates, c.BaudRate) {
			return bad("baud_rate: %d is not a standard rate (%v)", c.BaudRate, baudRates)
		}
		if c.DataBits != 7 && c.DataBits != 8 {
			return bad("data_bits: %d must be 7 or 8", c.DataBits)
		}
		if c.Parity != "N" && c.Parity != "E" && c.Parity != "O" {
			return bad("parity: %q must be N, E or O", c.Parity)
		}
		if c.StopBits != 1 && c.StopBits != 2 {
			return bad("stop_bits: %d must be 1 or 2", c.StopBits)
		}
	default:
		return bad("transport: %q must be one of %v", c.Transport, transports)
	}
	switch {
	case c.Name == "":
		return bad("name: required")
	case c.Timeout < time.Millisecond || c.Timeout > time.Minute:
		return bad("timeout: %v must be within 1ms..1m", c.Timeout)
	case c.BusyTries < 1 || c.BusyTries > 10:
		return bad("busy_tries: %d must be within 1..10", c.BusyTries)
	case c.BusyBackoff < 0 || c.BusyBackoff > 10*time.Second:
		return bad("busy_backoff: %v must be within 0..10s", c.BusyBackoff)
	case c.ReconnectMin < time.Millisecond:
		return bad("reconnect_min: %v must be at least 1ms", c.ReconnectMin)
	case c.ReconnectMax < c.ReconnectMin || c.ReconnectMax > time.Hour:
		return bad("reconnect_max: %v must be within reconnect_min (%v)..1h", c.ReconnectMax, c.ReconnectMin)
	case c.PauseBetweenRequests < 0 || c.PauseBetweenRequests > MaxQuirkPause:
		return bad("pause_between_requests: %v must be within 0..%v", c.PauseBetweenRequests, MaxQuirkPause)
	case c.PauseAfterConnect < 0 || c.PauseAfterConnect > MaxQuirkPause:
		return bad("pause_after_connect: %v must be within 0..%v", c.PauseAfterConnect, MaxQuirkPause)
	}
	return nil
}

// baudRates are the rates goburrow/serial can set on Linux.
var baudRates = []int{50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400,
	57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000,
	2500000, 3000000, 3500000, 4000000}

// PollerConfig configures a Poller. Zero fields take their defaults in
// WithDefaults; YAML keys are the snake_case tags.
type PollerConfig struct {
	// FailureThreshold is how many consecutive failed polls (polls without
	// a sample) a device may have before it is polled less often. Default 3.
	FailureThreshold int `yaml:"failure_threshold"`
	// MaxBackoff caps the slowed-down poll period of a failing device:
	// after FailureThreshold failures the period doubles with every
	// further failure (2, 4, 8... times the schedule's period) up to
	// MaxBackoff, rounded up to the device's schedule. A schedule whose
	// period is already longer is not slowed down. Default 60s.
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// Default values of PollerConfig.
const (
	DefaultFailureThreshold = 3
	DefaultMaxBackoff       = time.Minute
)

// DefaultPollerConfig returns the defaults.
func DefaultPollerConfig() PollerConfig { return PollerConfig{}.WithDefaults() }

// WithDefaults returns c with every zero field set to its default.
func (c PollerConfig) WithDefaults() PollerConfig {
	if c.FailureThreshold == 0 {
		c.FailureThreshold = DefaultFailureThreshold
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	return c
}

// Validate reports the first invalid field of c (after WithDefaults).
func (c PollerConfig) Validate() error {
	switch {
	case c.FailureThreshold < 1:
		return fmt.Errorf("%w: failure_threshold: %d must be at least 1", ErrInvalidConfig, c.FailureThreshold)
	case c.MaxBackoff < MinInterval || c.MaxBackoff > 24*time.Hour:
		return fmt.Errorf("%w: max_backoff: %v must be within %v..24h", ErrInvalidConfig, c.MaxBackoff, MinInterval)
	}
	return nil
}
