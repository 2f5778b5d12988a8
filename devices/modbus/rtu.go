package modbus

import (
	"errors"
	"fmt"
	"io"
	"time"

	gmodbus "github.com/goburrow/modbus"
	"github.com/goburrow/serial"
)

// rtuTransport is Modbus RTU on a serial line: goburrow's RTU packager
// (unit id, CRC) on a goburrow/serial port, with this package's own Send in
// place of goburrow's rtuSerialTransporter, which
//
//   - sizes the reply from the request, not from the reply's byte count, so
//     a short reply is read as a timeout and its bytes stay in the buffer;
//   - misreads exception replies (it tests function & 0x80, always 0 for a
//     read request, instead of function | 0x80), so a 5-byte exception
//     frame arriving in pieces is cut after 4 bytes;
//   - never discards stale input: an RTU reply carries no transaction id,
//     so a late reply still in the buffer would be taken, CRC and all, as
//     the answer to the next request of the same unit and function.
//
// Send frames the reply from its own header and keeps the 3.5-character
// gap between frames. Before it writes the first request after an error or
// a reconnect it discards input until the line has been quiet for a while:
// one read tick normally, a whole Timeout after a timeout, so that a reply
// up to one Timeout late is discarded instead of taken as the answer to
// the next request (libmodbus's error recovery waits the same way). A
// reply later than that can still be mistaken for the next one of the same
// unit and function; no RTU master can tell.
type rtuTransport struct {
	*gmodbus.RTUClientHandler // packager; its own transporter is not used

	cfg      serial.Config
	port     serial.Port
	timeout  time.Duration // per request, set by setTimeout
	quiet    time.Duration // before the next write, wait for this much silence; 0 when clean
	lastRead time.Time     // when the last byte arrived, for the frame gap
}

// rtuTick is the serial port's read timeout: the granularity of request
// deadlines and of the quiet period that ends a drain.
const rtuTick = 10 * time.Millisecond

// rtuMaxFrame is the longest RTU frame: unit, 253-byte PDU, CRC.
const rtuMaxFrame = 256

func newRTUTransport(cfg ConnConfig) *rtuTransport {
	h := gmodbus.NewRTUClientHandler(cfg.Address)
	return &rtuTransport{
		RTUClientHandler: h,
		cfg: serial.Config{
			Address:  cfg.Address,
			BaudRate: cfg.BaudRate,
			DataBits: cfg.DataBits,
			StopBits: cfg.StopBits,
			Parity:   cfg.Parity,
			Timeout:  rtuTick,
		},
		timeout: cfg.Timeout,
	}
}

func (t *rtuTransport) setUnit(u uint8)            { t.SlaveId = u }
func (t *rtuTransport) setTimeout(d time.Duration) { t.timeout = d }

// Connect opens the serial port. Bytes already waiting are discarded
// before the first request.
func (t *rtuTransport) Connect() error {
	if t.port != nil {
		return nil
	}
	p, err := serial.Open(&t.cfg)
	if err != nil {
		return err
	}
	t.port = p
	t.quiet = max(t.quiet, rtuTick)
	return nil
}

// Close closes the serial port.
func (t *rtuTransport) Close() error {
	if t.port == nil {
		return nil
	}
	err := t.port.Close()
	t.port = nil
	return err
}

// errRTUTimeout is a request deadline passing; classify sees a timeout.
var errRTUTimeout = fmt.Errorf("no complete reply: %w", serial.ErrTimeout)

// Send writes one request frame and reads its reply frame.
func (t *rtuTransport) Send(adu []byte) ([]byte, error) {
	if t.port == nil {
		return nil, errors.New("serial port not open")
	}
	if t.quiet > 0 {
		if err := t.drain(t.quiet); err != nil {
			return nil, err
		}
	}
	if gap := t.frameGap() - time.Since(t.lastRead); gap > 0 {
		time.Sleep(gap)
	}
	deadline := time.Now().Add(t.timeout)
	t.quiet = rtuTick // until a whole reply has been read
	if _, err := t.port.Write(adu); err != nil {
		return nil, err
	}
	var buf [rtuMaxFrame]byte
	// Unit, function and, for a read reply, the byte count.
	if err := t.readFull(buf[:3], deadline); err != nil {
		return nil, err
	}
	n, err := rtuFrameLength(adu[1], buf[:3])
	if err != nil {
		return nil, err
	}
	if err := t.readFull(buf[3:n], deadline); err != nil {
		return nil, err
	}
	t.quiet = 0
	return append([]byte(nil), buf[:n]...), nil
}

// rtuFrameLength returns the length of the reply frame to a request with
// function fc, from the reply's first three bytes (unit, function, byte
// count or exception code).
func rtuFrameLength(fc byte, head []byte) (int, error) {
	switch {
	case fc < 1 || fc > 4:
		return 0, fmt.Errorf("cannot frame the reply to function %d", fc)
	case head[1] == fc|0x80:
		return 5, nil // unit, function, code, CRC
	case head[1] != fc:
		return 0, fmt.Errorf("reply has function code %d, want %d", head[1], fc)
	}
	n := 3 + int(head[2]) + 2 // unit, function, count, data, CRC
	if n > rtuMaxFrame {
		return 0, fmt.Errorf("reply byte count %d makes a frame of %d bytes, more than %d", head[2], n, rtuMaxFrame)
	}
	return n, nil
}

// readFull fills b before deadline.
func (t *rtuTransport) readFull(b []byte, deadline time.Time) error {
	for got := 0; got < len(b); {
		if time.Now().After(deadline) {
			// The reply may still come: wait a whole timeout of
			// silence before the next request.
			t.quiet = t.timeout
			return errRTUTimeout
		}
		n, err := t.port.Read(b[got:])
		got += n
		if n > 0 {
			t.lastRead = time.Now()
		}
		switch {
		case errors.Is(err, serial.ErrTimeout):
		case err != nil:
			return err
		case n == 0:
			return io.ErrUnexpectedEOF
		}
	}
	return nil
}

// drain discards input until the line has been quiet for quiet: the rest
// of a late or malformed reply. It gives up, with a timeout, if the line
// does not go quiet within quiet plus the request timeout.
func (t *rtuTransport) drain(quiet time.Duration) error {
	var buf [rtuMaxFrame]byte
	start := time.Now()
	last := start
	for {
		n, err := t.port.Read(buf[:])
		now := time.Now()
		switch {
		case errors.Is(err, serial.ErrTimeout):
			if now.Sub(last) >= quiet {
				t.quiet = 0
				return nil
			}
			continue
		case err != nil:
			return err
		case n == 0:
			return io.ErrUnexpectedEOF
		}
		last, t.lastRead = now, now
		if now.Sub(start) > quiet+t.timeout {
			return fmt.Errorf("line did not go quiet for %v: %w", quiet, errRTUTimeout)
		}
	}
}

// frameGap is the silence the Modbus serial line specification requires
// between frames: 3.5 characters of 11 bits, or 1.75 ms above 19200 bit/s.
func (t *rtuTransport) frameGap() time.Duration {
	if t.cfg.BaudRate > 19200 {
		return 1750 * time.Microsecond
	}
	return time.Duration(3.5 * 11 * float64(time.Second) / float64(t.cfg.BaudRate))
}
