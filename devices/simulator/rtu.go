package simulator

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/goburrow/serial"
)

// SerialConfig is a serial line to serve Modbus RTU or ASCII on. The
// fields and their defaults are those of a gateway connections entry with
// transport rtu or ascii.
type SerialConfig struct {
	Device   string  // the serial device, /dev/ttyUSB0; required
	Framing  Framing // FramingRTU (the default) or FramingASCII
	BaudRate int     // bit/s; default 19200
	DataBits int     // 7 or 8; default 8 for RTU, 7 for ASCII
	Parity   string  // N, E or O; default E
	StopBits int     // 1 or 2; default 1
}

// rtuPoll is how long one read of the serial line waits for a byte: the
// longest a served line takes to notice Close or its context, and the
// silence after which a partial RTU frame is discarded.
const rtuPoll = 50 * time.Millisecond

// Sizes of an RTU frame: unit id, PDU, CRC-16 (little-endian).
const (
	rtuMaxFrame = 1 + maxPDU + 2
	rtuMinFrame = 4 // unit, function, CRC
)

// ServeSerial opens the serial line cfg and serves the server's units on it
// as Modbus RTU (or ASCII) slaves until ctx ends or Close is called; it
// closes the line when it returns, and returns nil then, or the error that
// stopped it. One line serves one request at a time, as a bus does. See
// doc.go (Serial lines) for the framing and how faults apply.
func (s *Server) ServeSerial(ctx context.Context, cfg SerialConfig) error {
	if cfg.Device == "" {
		return fmt.Errorf("simulator: serial: no device: %w", ErrConfig)
	}
	serve := s.ServeRTU
	switch cfg.Framing {
	case "", FramingRTU:
	case FramingASCII:
		serve = s.ServeASCII
	default:
		return fmt.Errorf("simulator: serial %s: framing %q: want %q or %q: %w", cfg.Device, cfg.Framing, FramingRTU, FramingASCII, ErrConfig)
	}
	sc := &serial.Config{Address: cfg.Device, BaudRate: cfg.BaudRate, DataBits: cfg.DataBits,
		Parity: cfg.Parity, StopBits: cfg.StopBits, Timeout: rtuPoll}
	if sc.BaudRate == 0 {
		sc.BaudRate = 19200
	}
	if sc.DataBits == 0 {
		sc.DataBits = 8
		if cfg.Framing == FramingASCII {
			sc.DataBits = 7
		}
	}
	if sc.Parity == "" {
		sc.Parity = "E"
	}
	if sc.StopBits == 0 {
		sc.StopBits = 1
	}
	port, err := serial.Open(sc)
	if err != nil {
		return fmt.Errorf("simulator: open serial %s: %w", cfg.Device, err)
	}
	defer port.Close()
	return serve(ctx, port)
}

// ServeRTU serves the server's units as Modbus RTU slaves on port until ctx
// ends, Close is called or port fails. A Read of port must return within a
// short time when nothing arrives, with an error that is, or wraps,
// os.ErrDeadlineExceeded or serial.ErrTimeout (as goburrow/serial with a
// Timeout does): that is how ServeRTU sees silence on the line and notices
// that it must stop. The caller closes port.
func (s *Server) ServeRTU(ctx context.Context, port io.ReadWriter) error {
	id := s.stats.connections.Add(1)
	if err := s.newLine(ctx, port, id, s.log.With("transport", "rtu"), false).serveRTU(); err != nil {
		return fmt.Errorf("simulator: rtu: %w", err)
	}
	return nil
}

// serveRTU serves RTU frames until the line stops.
func (l *line) serveRTU() error {
	buf := make([]byte, 0, 2*rtuMaxFrame)
	var chunk [rtuMaxFrame]byte
	for !l.stopped() {
		n, silent, stop, err := l.read(chunk[:])
		if stop {
			return err
		}
		buf = append(buf, chunk[:n]...)
		if len(buf) > rtuMaxFrame { // no silence, no frame: noise on the line
			l.s.stats.badFrames.Add(1)
			l.log.Warn("simulator: rtu: discarding bytes that frame no request", "bytes", len(buf))
			buf = buf[:0]
		}
		for len(buf) > 0 {
			size := rtuFrameSize(buf)
			if size < 0 || size > rtuMaxFrame { // unknown length: the frame ends at silence
				if !silent {
					break
				}
				size = len(buf)
			}
			if len(buf) < size {
				if silent { // the rest never came
					l.s.stats.badFrames.Add(1)
					l.log.Warn("simulator: rtu: discarding a truncated frame", "bytes", len(buf), "want", size)
					buf = buf[:0]
				}
				break
			}
			f := buf[:size]
			if size < rtuMinFrame || crc16(f[:size-2]) != binary.LittleEndian.Uint16(f[size-2:]) {
				// Out of step: drop everything up to the next silence.
				l.s.stats.badFrames.Add(1)
				l.log.Warn("simulator: rtu: discarding a frame with a bad CRC", "bytes", len(buf))
				buf = buf[:0]
				break
			}
			if ok, err := l.answer(f[0], f[1:size-2], appendRTU); !ok {
				return err
			}
			buf = buf[:copy(buf, buf[size:])]
		}
	}
	return nil
}

// appendRTU appends the RTU frame of pdu from unit to dst.
func appendRTU(dst []byte, unit uint8, pdu []byte) []byte {
	dst = append(append(dst, unit), pdu...)
	start := len(dst) - 1 - len(pdu)
	return binary.LittleEndian.AppendUint16(dst, crc16(dst[start:]))
}

// rtuFrameSize is the size of the request frame that starts buf, as far as
// its first bytes tell (more than len(buf) when more bytes are needed to
// know), or -1 for a
// function whose length the simulator cannot tell (the frame then ends at
// the next silence).
func rtuFrameSize(buf []byte) int {
	if len(buf) < 2 {
		return len(buf) + 1 // need at least the function code
	}
	switch buf[1] {
	case 0x01, 0x02, 0x03, 0x04, 0x05, 0x06:
		return 8 // unit, function, address, quantity or value, CRC
	case 0x0F, 0x10:
		if len(buf) < 7 {
			return 7
		}
		return 9 + int(buf[6]) // ... quantity, byte count, data, CRC
	}
	return -1
}

// crc16 is the Modbus RTU CRC (polynomial 0xA001, initial 0xFFFF).
func crc16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, x := range b {
		crc ^= uint16(x)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
