package modbus

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	gmodbus "github.com/goburrow/modbus"
	"github.com/goburrow/serial"
)

// streamTransport runs a serial-line framing, RTU or ASCII, over a byte
// stream: a serial port on this machine (transports rtu, ascii) or a TCP
// socket to a serial device server in raw mode (rtu_over_tcp,
// ascii_over_tcp). It keeps goburrow's packager of the framing (Encode,
// Verify, Decode: unit id, CRC or LRC) and replaces goburrow's serial
// transporters with its own Send, because goburrow's RTU transporter
//
//   - sizes the reply from the request, not from the reply's byte count, so
//     a short reply is read as a timeout and its bytes stay in the buffer;
//   - misreads exception replies (it tests function & 0x80, always 0 for a
//     read request, instead of function | 0x80), so a 5-byte exception
//     frame arriving in pieces is cut after 4 bytes;
//
// its ASCII transporter takes whatever a read returns once it ends in
// CR LF, however long, whatever precedes it, and both
//
//   - never discard stale input: a serial-line reply carries no
//     transaction id, so a late reply still in the buffer would be taken,
//     CRC (or LRC) and all, as the answer to the next request of the same
//     unit and function.
//
// Send frames the reply itself (readReply: from the RTU header's byte
// count, or from ':' to CR LF for ASCII) and keeps RTU's 3.5-character gap
// between frames on a serial port. Before it writes the first request
// after an error, a connect or a reconnect it discards input until the
// stream has been quiet for a while: one read tick normally, a whole
// Timeout after a timeout, so that a reply up to one Timeout late is
// discarded instead of taken as the answer to the next request
// (libmodbus's error recovery waits the same way). The same holds over
// TCP: a device server passes a late reply of its serial line to whichever
// connection is open, the new one included. A reply later than that can
// still be mistaken for the next one of the same unit and function; no
// serial-line master can tell.
type streamTransport struct {
	gmodbus.Packager // goburrow's RTU or ASCII packager; its transporter is not used

	setUnitID func(uint8) // sets the packager's unit id
	open      func(timeout time.Duration) (stream, error)
	readReply func(t *streamTransport, req []byte, deadline time.Time) ([]byte, error)
	gap       time.Duration // silence kept between frames: RTU's 3.5 characters on a serial port, else 0

	s        stream
	timeout  time.Duration // per request, set by setTimeout
	quiet    time.Duration // before the next write, wait for this much silence; 0 when clean
	lastRead time.Time     // when the last byte arrived, for the frame gap
}

// streamTick is a serial port's read timeout: the granularity of request
// deadlines on a serial port, and the quiet that ends a drain.
const streamTick = 10 * time.Millisecond

// Errors of a stream. Neither reaches a caller unwrapped.
var (
	// errStreamTimeout is a stream read whose deadline passed first.
	errStreamTimeout = errors.New("deadline passed")
	// errReplyTimeout is a request whose reply did not arrive in time;
	// classify sees a timeout.
	errReplyTimeout = errors.New("no complete reply")
)

// stream is the byte stream a streamTransport frames: a serial port or a
// TCP connection.
type stream interface {
	// readBy reads into b what arrives before deadline: at least one
	// byte, or none and errStreamTimeout.
	readBy(b []byte, deadline time.Time) (int, error)
	// writeBy writes b, giving up at deadline where the stream can.
	writeBy(b []byte, deadline time.Time) error
	Close() error
}

// newStreamTransport returns the transport of cfg, whose Transport is one
// with serial-line framing.
func newStreamTransport(cfg ConnConfig) *streamTransport {
	t := &streamTransport{timeout: cfg.Timeout}
	switch cfg.Transport {
	case RTU, RTUOverTCP:
		h := gmodbus.NewRTUClientHandler(cfg.Address)
		t.Packager, t.setUnitID, t.readReply = h, func(u uint8) { h.SlaveId = u }, readRTUReply
	default:
		h := gmodbus.NewASCIIClientHandler(cfg.Address)
		t.Packager, t.setUnitID, t.readReply = h, func(u uint8) { h.SlaveId = u }, readASCIIReply
	}
	if cfg.Transport.Serial() {
		sc := serial.Config{
			Address:  cfg.Address,
			BaudRate: cfg.BaudRate,
			DataBits: cfg.DataBits,
			StopBits: cfg.StopBits,
			Parity:   cfg.Parity,
			Timeout:  streamTick,
		}
		t.open = func(time.Duration) (stream, error) {
			p, err := serial.Open(&sc)
			if err != nil {
				return nil, err
			}
			return serialStream{p}, nil
		}
		if cfg.Transport == RTU {
			t.gap = rtuFrameGap(cfg.BaudRate)
		}
	} else {
		t.open = func(timeout time.Duration) (stream, error) {
			nc, err := net.DialTimeout("tcp", cfg.Address, timeout)
			if err != nil {
				return nil, err
			}
			return netStream{nc}, nil
		}
	}
	return t
}

func (t *streamTransport) setTimeout(d time.Duration) { t.timeout = d }

// encode returns the request frame of pdu (function code and data) to
// unit, as goburrow's packager frames it.
func (t *streamTransport) encode(unit uint8, pdu []byte) ([]byte, error) {
	t.setUnitID(unit)
	return t.Encode(&gmodbus.ProtocolDataUnit{FunctionCode: pdu[0], Data: pdu[1:]})
}

// verify checks the reply frame's unit id and CRC or LRC, as goburrow's
// packager does.
func (t *streamTransport) verify(req, resp []byte) error { return t.Verify(req, resp) }

// decode returns the PDU of a reply frame, as goburrow's packager does.
func (t *streamTransport) decode(resp []byte) (uint8, []byte, error) {
	p, err := t.Decode(resp)
	if err != nil {
		return 0, nil, err
	}
	return p.FunctionCode, p.Data, nil
}

// Connect opens the serial port or dials the device server. Bytes that
// arrive before the first request (a device server may hold serial input
// from while no client was connected) are discarded.
func (t *streamTransport) Connect() error {
	if t.s != nil {
		return nil
	}
	s, err := t.open(t.timeout)
	if err != nil {
		return err
	}
	t.s = s
	t.quiet = max(t.quiet, streamTick)
	return nil
}

// Close closes the serial port or the connection.
func (t *streamTransport) Close() error {
	if t.s == nil {
		return nil
	}
	err := t.s.Close()
	t.s = nil
	return err
}

// send writes one request frame and reads its reply frame. Its timeout
// starts after the wait for quiet and the frame gap, not at start.
func (t *streamTransport) send(adu []byte, _ time.Duration) ([]byte, error) {
	if t.s == nil {
		return nil, errors.New("not connected")
	}
	if t.quiet > 0 {
		if err := t.drain(t.quiet); err != nil {
			return nil, err
		}
	}
	if gap := t.gap - time.Since(t.lastRead); t.gap > 0 && gap > 0 {
		time.Sleep(gap)
	}
	deadline := time.Now().Add(t.timeout)
	t.quiet = streamTick // until a whole reply has been read
	if err := t.s.writeBy(adu, deadline); err != nil {
		return nil, err
	}
	reply, err := t.readReply(t, adu, deadline)
	if err != nil {
		return nil, err
	}
	t.quiet = 0
	return reply, nil
}

// read reads what arrives before deadline into b: at least one byte, or
// errReplyTimeout, after which the next request waits for a whole Timeout
// of silence (the reply may still come).
func (t *streamTransport) read(b []byte, deadline time.Time) (int, error) {
	n, err := t.s.readBy(b, deadline)
	if n > 0 {
		t.lastRead = time.Now()
	}
	if errors.Is(err, errStreamTimeout) {
		t.quiet = t.timeout
		return n, errReplyTimeout
	}
	return n, err
}

// readFull fills b before deadline.
func (t *streamTransport) readFull(b []byte, deadline time.Time) error {
	for got := 0; got < len(b); {
		n, err := t.read(b[got:], deadline)
		got += n
		if err != nil {
			return err
		}
	}
	return nil
}

// drain discards input until the stream has been quiet for quiet: the rest
// of a late or malformed reply. It gives up, with a timeout, if the stream
// does not go quiet within quiet plus the request timeout.
func (t *streamTransport) drain(quiet time.Duration) error {
	var buf [256]byte
	start := time.Now()
	last := start
	for {
		_, err := t.s.readBy(buf[:], last.Add(quiet))
		now := time.Now()
		switch {
		case errors.Is(err, errStreamTimeout):
			t.quiet = 0
			return nil
		case err != nil:
			return err
		}
		last, t.lastRead = now, now
		if now.Sub(start) > quiet+t.timeout {
			return fmt.Errorf("stale input did not stop for %v: %w", quiet, errReplyTimeout)
		}
	}
}

// rtuFrameGap is the silence the Modbus serial line specification requires
// between RTU frames: 3.5 characters of 11 bits, or 1.75 ms above 19200
// bit/s.
func rtuFrameGap(baud int) time.Duration {
	if baud > 19200 {
		return 1750 * time.Microsecond
	}
	return time.Duration(3.5 * 11 * float64(time.Second) / float64(baud))
}

// serialStream is a goburrow/serial port opened with Timeout streamTick:
// a Read returns serial.ErrTimeout after a tick without input.
type serialStream struct{ port serial.Port }

func (s serialStream) readBy(b []byte, deadline time.Time) (int, error) {
	for {
		if time.Now().After(deadline) {
			return 0, errStreamTimeout
		}
		n, err := s.port.Read(b)
		switch {
		case n > 0:
			return n, nil
		case errors.Is(err, serial.ErrTimeout):
		case err != nil:
			return 0, err
		default:
			return 0, io.ErrUnexpectedEOF
		}
	}
}

// writeBy writes b; a serial port's write does not wait for a peer, so
// it ignores deadline.
func (s serialStream) writeBy(b []byte, _ time.Time) error {
	_, err := s.port.Write(b)
	return err
}

func (s serialStream) Close() error { return s.port.Close() }

// netStream is a TCP connection to a serial device server.
type netStream struct{ c net.Conn }

func (s netStream) readBy(b []byte, deadline time.Time) (int, error) {
	if err := s.c.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	n, err := s.c.Read(b)
	switch {
	case n > 0:
		return n, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, errStreamTimeout
	case err != nil:
		return 0, err
	}
	return 0, io.ErrUnexpectedEOF
}

func (s netStream) writeBy(b []byte, deadline time.Time) error {
	if err := s.c.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := s.c.Write(b)
	return err
}

func (s netStream) Close() error { return s.c.Close() }
