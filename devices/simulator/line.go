package simulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/goburrow/serial"
)

// Framing is how requests and replies are framed on a TCP connection or a
// serial line.
type Framing string

// The framings.
const (
	// FramingMBAP is Modbus TCP: the MBAP header (transaction id,
	// protocol id, length, unit id), then the PDU. TCP only; the default
	// there.
	FramingMBAP Framing = "mbap"
	// FramingRTU is Modbus RTU: the unit id, the PDU, the CRC-16. The
	// default on a serial line; on TCP it is RTU over TCP, as a serial
	// device server in raw mode passes it.
	FramingRTU Framing = "rtu"
	// FramingASCII is Modbus ASCII: ':', the unit id, PDU and LRC in
	// hexadecimal, CR LF. On a serial line, or over TCP.
	FramingASCII Framing = "ascii"
)

// line serves one serial line, or one TCP connection with a serial-line
// framing (RTU or ASCII over TCP): one request at a time, as a bus.
type line struct {
	s    *Server
	ctx  context.Context
	port io.ReadWriter // reads time out after a short while without input
	id   uint64        // Request.Conn
	log  *slog.Logger
	conn bool // a TCP connection: FaultDrop closes it
	pdu  []byte
	out  []byte
}

func (s *Server) newLine(ctx context.Context, port io.ReadWriter, id uint64, log *slog.Logger, conn bool) *line {
	return &line{s: s, ctx: ctx, port: port, id: id, log: log, conn: conn,
		pdu: make([]byte, 0, maxPDU), out: make([]byte, 0, asciiMaxFrame)}
}

// stopped reports whether the line's context or the server has ended.
func (l *line) stopped() bool { return l.ctx.Err() != nil || l.s.ctx.Err() != nil }

// wait sleeps for d; false if the line or server stopped meanwhile.
func (l *line) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.ctx.Done():
		return false
	case <-l.s.ctx.Done():
		return false
	}
}

// read reads into b. silent reports that the read timed out: the line is
// quiet. A nil error with stop set means the line stopped (or a TCP
// client left): serving ends without error.
func (l *line) read(b []byte) (n int, silent, stop bool, err error) {
	n, err = l.port.Read(b)
	switch {
	case err == nil:
		return n, false, false, nil
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, serial.ErrTimeout):
		return n, true, l.stopped(), nil
	case l.stopped(), l.conn && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)):
		return n, false, true, nil
	}
	return n, false, true, fmt.Errorf("read: %w", err)
}

// answer executes one request of unit and writes its reply, framed by
// frame. It returns false when serving must end (a fault closed the
// connection, the server stopped, a write failed), with the write's error.
func (l *line) answer(unit uint8, req []byte, frame func(dst []byte, unit uint8, pdu []byte) []byte) (bool, error) {
	reply, kind, v := l.s.respond(l.id, unit, req, l.pdu[:0], l.wait)
	switch v {
	case verdictStop:
		return false, nil
	case verdictDrop:
		if l.conn {
			l.log.Info("simulator: fault: dropping connection", "unit", unit, "function", req[0])
			return false, nil
		}
		l.log.Info("simulator: fault: dropping the reply (a serial line has no connection to close)", "unit", unit, "function", req[0])
		return true, nil
	case verdictSilent:
		return true, nil
	}
	if unit == 0 { // broadcast: executed, never answered
		return true, nil
	}
	if kind == FaultWrongTransactionID { // no transaction id: answer as another unit
		unit ^= 0x80
	}
	l.out = frame(l.out[:0], unit, reply)
	if _, err := l.port.Write(l.out); err != nil {
		if l.stopped() || l.conn {
			return false, nil
		}
		return false, fmt.Errorf("write: %w", err)
	}
	l.s.stats.replies.Add(1)
	return true, nil
}

// pollingConn is a TCP connection served with a serial-line framing: its
// reads give up after rtuPoll, as a serial port opened with a timeout
// does, so the line sees silence.
type pollingConn struct{ net.Conn }

func (c pollingConn) Read(b []byte) (int, error) {
	if err := c.SetReadDeadline(time.Now().Add(rtuPoll)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}
