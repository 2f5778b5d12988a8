// Package simulator is a Modbus device simulator with fault injection: it
// serves Modbus TCP, RTU and ASCII on serial lines, and RTU and ASCII over
// TCP (a serial device server in raw mode).
// Tests, benchmarks and the demo run it in-process: a Server listens (on a
// free loopback port by default, see Addr) and serves units, each a
// simulated device with its four tables, whose values tests set through
// the Unit accessors or generators derive from a register map (AddDevice).
// Faults, set at run time per server or per unit, make it misbehave at the
// frame level the way real devices and gateways do.
//
// # Why not a Modbus server library
//
// The simulator writes its own MBAP framing instead of building on
// github.com/simonvetter/modbus. The faults a poller must survive live
// below a request handler: a short reply whose MBAP length agrees with the
// short PDU, a reply late enough that the client has already sent its next
// request, a wrong transaction id, a connection closed without a reply. A
// handler-level library builds and sends the frame itself, so it can only
// return data or an exception; it cannot produce any of these.
//
// # Protocol
//
// A request is an ADU: the 7-byte MBAP header, then the PDU.
//
//	offset  size  field
//	0       2     transaction id   echoed in the reply
//	2       2     protocol id      must be 0
//	4       2     length           bytes that follow: unit id + PDU, 2..254
//	6       1     unit id          selects the Unit
//	7       n     PDU              function code, then data; n = length-1, at most 253
//
// The frame is untrusted input. A protocol id other than 0, a length
// outside 2..254 (an ADU is at most 260 bytes), or a frame that stops
// short (the client closes mid-frame, or the rest does not arrive within
// Config.FrameTimeout of its first byte) closes the connection after the
// replies to the requests before it; the server logs a warning naming the
// remote address and what was wrong, and counts it in Stats.BadFrames. A
// connection idle between frames is never closed.
//
// Each connection is served by one goroutine that reads a request, answers
// it, and reads the next, as a device does: pipelined requests are
// answered in order, and a delayed reply delays the ones after it. Any
// number of connections are served at once, and one connection may address
// any number of units.
//
// Supported functions, with the checks made in the specification's order
// (function, then quantity and value, then address range):
//
//	code  function                  request data                      exception 3 when                    reply data
//	0x01  read coils                addr, qty                         qty outside 1..2000                 byte count, bits LSB first
//	0x02  read discrete inputs      addr, qty                         qty outside 1..2000                 byte count, bits LSB first
//	0x03  read holding registers    addr, qty                         qty outside 1..125                  byte count, registers big-endian
//	0x04  read input registers      addr, qty                         qty outside 1..125                  byte count, registers big-endian
//	0x05  write single coil         addr, value                       value not 0xFF00 or 0x0000          echo of the request
//	0x06  write single register     addr, value                       -                                   echo of the request
//	0x0F  write multiple coils      addr, qty, byte count, bits       qty outside 1..1968, count wrong    addr, qty
//	0x10  write multiple registers  addr, qty, byte count, registers  qty outside 1..123, count wrong     addr, qty
//
// A PDU whose data has the wrong length for its function is exception 3;
// addresses past the end of the unit's table (Sizes) are exception 2,
// illegal data address; any other function code is exception 1, illegal
// function. An exception reply is the function code with bit 7 set and the
// exception code: 83 02 for an out-of-range read of holding registers.
//
// # Serial lines
//
// ServeSerial (or ServeRTU and ServeASCII on any port) serves the same
// units as Modbus RTU or ASCII slaves on a serial line
// (SerialConfig.Framing). Config.Framing makes every TCP connection such a
// line instead of Modbus TCP: RTU or ASCII over TCP, as a serial device
// server in raw (transparent) mode passes them. Config.NoTCP serves a line
// without a TCP listener.
//
// RTU: a request is the unit id, the PDU and the CRC-16 (polynomial
// 0xA001, low byte first), the reply likewise. Frames are cut by length,
// known from the function code (8 bytes for functions 1 to 6, 9 + byte
// count for 15 and 16); a frame of another function ends at the first
// silence of the line (a read of the port that times out, 50ms) and is
// answered exception 1 if its CRC holds. A frame with a bad CRC, one cut
// short by silence, or bytes that frame nothing are discarded up to the
// next silence.
//
// ASCII: a frame is ':', the unit id, the PDU and the LRC (the two's
// complement of the 8-bit sum of unit and PDU) as pairs of hexadecimal
// digits (either case in a request; replies in upper case), then CR LF,
// at most 513 characters:
//
//	request   :1103006B00037E<CR><LF>    unit 0x11, read holding registers 0x006B, 3 registers, LRC 0x7E
//
// Silence does not end an ASCII frame; a ':' starts a new one. Bytes
// before a ':', a frame cut short by the ':' of another, a frame with a
// character other than a hexadecimal digit, an odd number of digits, no
// CR before its LF, more than 513 characters or a bad LRC are discarded.
//
// Every discarded frame is counted in Stats.BadFrames and logged; the
// master times out, as on a real bus, and the next frame is served. Unit
// id 0 is a broadcast: executed, never answered. Faults apply as on Modbus
// TCP, except those that need a transaction id or a connection: a
// FaultWrongTransactionID answers with the unit id's top bit flipped, a
// reply from another unit, and FaultDrop sends nothing on a serial line
// (there is no connection to close) but closes an RTU or ASCII over TCP
// connection. A serial line counts as one connection in Stats, and so does
// each TCP connection.
//
// # Units
//
// Units are addressed by unit id: 1 to 247 for devices behind a simulated
// TCP-to-RTU gateway, 255 (or 0) for a native Modbus TCP device; 248 to 254
// are reserved. A request for an id without a unit is answered according
// to Config.MissingUnit: exception 0x0B, gateway target device failed to
// respond (the default, as a gateway whose serial device is silent),
// exception 0x0A, gateway path unavailable, or nothing at all (the client
// times out, the connection stays open). RemoveUnit takes a unit off line.
//
// A unit's tables are guarded by one mutex, so a request reads or writes
// them atomically while tests and generators change them.
//
// # Faults
//
// Server.SetFaults and Unit.SetFaults install faults; each Fault matches
// requests by function code and address range, fires on every Every-th
// match, with a seeded Probability, at most Times times, and is consulted
// in order: the server's first (they also act on ids without a unit), then
// the unit's; the first fault that fires decides the reply. Fault.Delay
// delays whatever the fault sends. Stats.Faults counts the faults fired.
//
// The bytes of each kind, for a read of holding registers 0..2 holding
// 0x000A, 0x000B, 0x000C, transaction id 0x0101, unit 1:
//
//	request              01 01 00 00 00 06 01 03 00 00 00 03
//	normal reply         01 01 00 00 00 09 01 03 06 00 0A 00 0B 00 0C
//	FaultDelay           the normal reply, Delay later
//	FaultException (4)   01 01 00 00 00 03 01 83 04                      request not executed
//	FaultShortReply      01 01 00 00 00 07 01 03 04 00 0A 00 0B          one register short, length consistent
//	FaultWrongTransactionID
//	                     81 01 00 00 00 09 01 03 06 00 0A 00 0B 00 0C    transaction id ^ 0x8000
//	FaultDrop            nothing; the server closes the connection (FIN), request not executed
//	FaultNoReply         nothing; the connection stays open, request not executed
//
// A short reply to a read of coils or discrete inputs is one byte short
// (byte count and data). This is what jsmodbus sends for an out-of-range
// read, and goburrow/modbus v0.1.0 accepts it as a successful read of
// fewer registers. A FaultDelay longer than the client's timeout is a late
// reply: goburrow keeps the connection after a timeout, reads the late
// reply as the answer to its next request and fails with a transaction id
// mismatch, one reply behind from then on. FaultException with
// devices.ExceptionServerDeviceBusy and Times N is a device busy N times that then
// answers normally.
//
//	s.Unit(1).SetFaults(simulator.Fault{Kind: simulator.FaultDelay, Delay: 2 * time.Second, Every: 3})
//	s.Unit(1).SetFaults(simulator.Fault{Kind: simulator.FaultException, Exception: devices.ExceptionServerDeviceBusy, Times: 2})
//	s.SetFaults(simulator.Fault{Kind: simulator.FaultDrop, Probability: 0.01, Seed: 1})
//	s.Unit(1).ClearFaults()
//
// # Generated values
//
// AddDevice serves a devices.Class: the unit's tables are sized to its
// fields, and every field holds a value that is a pure function of the
// device's Seed, the field's name and the tick, where tick = Config.Clock()
// in Unix nanoseconds / Config.TickPeriod (default 100ms). Generators work
// in raw register values, which the field's scale and offset then turn into
// engineering values:
//
//	bool                  toggles every 10 to 100 ticks, with a phase of its own
//	uint32, uint64        a counter: a base below 1000 plus 1 to 10 per tick, wrapping at 32 bits for uint32
//	uint16                a bounded walk in 0..1000: straight lines between pseudo-random anchors 20 to 99 ticks apart
//	int16, int32, int64   the same walk in -1000..1000
//	float32, float64      a centre in 10..1000, a sine of amplitude centre/5 and period 600 to 2999 ticks,
//	                      noise within ±amplitude/50, rounded to 2 decimals
//	string                constant: "SIM-" and 8 hex digits derived from the seed, cut to the field's length
//
// Device.Value returns what a client reading a field at a tick decodes, so
// a test can compare a poller's samples with it exactly.
//
// Values are computed on demand rather than by a ticker goroutine: when a
// request (or a Unit accessor) finds the tick changed, the unit's fields
// are regenerated under its mutex before it is served. This needs no
// goroutine and no lifecycle, a test that fixes Config.Clock fixes every
// value, and all fields of one reply come from the same tick. A client
// write to a field's registers lasts until the next tick; other addresses
// keep what was written.
//
// # Usage
//
//	s, err := simulator.New(simulator.Config{Logger: logger})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	u, err := s.AddUnit(1, simulator.Sizes{HoldingRegisters: 100, Coils: 16})
//	if err != nil {
//		return err
//	}
//	u.SetRegisters(devices.HoldingRegisters, 0, []uint16{0x0102, 0x0304})
//	class, err := devices.Load("configs/devices/press.yaml")
//	if err != nil {
//		return err
//	}
//	if _, err := s.AddDevice(2, simulator.Device{Class: class, Seed: 2}); err != nil {
//		return err
//	}
//	h := modbus.NewTCPClientHandler(s.Addr().String())
//	h.SlaveId = 1
//	regs, err := modbus.NewClient(h).ReadHoldingRegisters(0, 2)
//
// Server.Stats counts connections, bad frames, replies, requests per
// function, exceptions per code and faults per kind: tests assert on them,
// benchmarks report them. Config.OnRequest sees each request as it
// arrives, with its connection's number and its receive time, for tests
// that assert on the order and spacing of a client's requests.
package simulator
