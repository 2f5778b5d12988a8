package simulator

import (
	"bufio"
	"errors"
	"github.com/factorywire/factorywire/devices"
	"io"
	"log/slog"
	"net"
	"time"
)

// conn serves one client connection with one goroutine: read a request,
// answer it, read the next. A Modbus device serves one request at a time,
// so this is both the simplest loop and the faithful one: pipelined
// requests are answered in order, and a delayed reply delays the replies
// after it exactly as a slow device would.
type conn struct {
	s   *Server
	id  uint64 // Request.Conn
	nc  net.Conn
	log *slog.Logger
	fr  frameReader
	bw  *bufio.Writer
	pdu []byte // reply PDU buffer
	out []byte // reply ADU buffer
}

func newConn(s *Server, nc net.Conn, id uint64) *conn {
	c := &conn{
		s:   s,
		id:  id,
		nc:  nc,
		log: s.log.With("remote", nc.RemoteAddr().String(), "local", nc.LocalAddr().String()),
		bw:  bufio.NewWriterSize(nc, 4096),
		pdu: make([]byte, 0, maxPDU),
		out: make([]byte, 0, maxADU),
	}
	c.fr = frameReader{br: bufio.NewReaderSize(nc, 4096), conn: nc, timeout: s.cfg.FrameTimeout}
	return c
}

// serve answers requests until the client leaves, sends a malformed frame,
// a FaultDrop fires, or the server closes. It closes the socket.
func (c *conn) serve() {
	defer c.nc.Close()
	c.log.Debug("simulator: connection opened")
	for {
		f, err := c.fr.next()
		if err != nil {
			// Requests before a malformed frame are answered.
			c.bw.Flush()
			c.readFailed(err)
			return
		}
		if !c.answer(f) {
			return
		}
	}
}

// readFailed logs why reading stopped: a malformed frame is worth a
// warning, a client leaving or the server closing is not.
func (c *conn) readFailed(err error) {
	switch {
	case errors.Is(err, errProtocolID), errors.Is(err, errLength), errors.Is(err, errTruncated):
		c.s.stats.badFrames.Add(1)
		c.log.Warn("simulator: closing connection: malformed frame", "err", err)
	case c.s.ctx.Err() != nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		c.log.Debug("simulator: connection closed")
	default:
		c.log.Debug("simulator: connection closed", "err", err)
	}
}

// answer handles one request: faults, unit lookup, execution, reply. It
// returns false when the connection must close.
func (c *conn) answer(f frame) bool {
	pdu, kind, v := c.s.respond(c.id, f.unit, f.pdu, c.pdu[:0], c.wait)
	switch v {
	case verdictStop:
		return false
	case verdictDrop:
		c.bw.Flush()
		c.log.Info("simulator: fault: dropping connection", "txid", f.txid, "unit", f.unit, "function", f.pdu[0])
		return false
	case verdictSilent:
		return true
	}
	txid := f.txid
	if kind == FaultWrongTransactionID {
		txid ^= 0x8000
	}
	c.out = appendFrame(c.out[:0], txid, f.unit, pdu)
	if _, err := c.bw.Write(c.out); err != nil {
		return false
	}
	c.s.stats.replies.Add(1)
	// Flush once no further request is buffered: pipelined requests get
	// their replies in one write.
	if c.fr.br.Buffered() == 0 {
		if err := c.bw.Flush(); err != nil {
			return false
		}
	}
	return true
}

// verdict is what respond tells a transport to do with a request.
type verdict uint8

const (
	verdictReply  verdict = iota // send the reply PDU
	verdictSilent                // send nothing, keep serving
	verdictDrop                  // FaultDrop: send nothing, close the connection
	verdictStop                  // a fault delay was cut short by Close, or wait failed: stop serving
)

// respond handles one request PDU for unit, whatever the transport: it
// counts it, consults the faults (calling wait for their delay), executes
// it and returns the reply PDU (appended to buf), the kind of the fault
// that fired (0 if none) and what to do. The transport frames the reply;
// it applies FaultWrongTransactionID, which respond cannot.
func (s *Server) respond(connID uint64, unit uint8, req, buf []byte, wait func(time.Duration) bool) ([]byte, FaultKind, verdict) {
	fc := req[0]
	s.stats.requests[fc].Add(1)
	if s.cfg.OnRequest != nil {
		s.cfg.OnRequest(Request{Conn: connID, Unit: unit, Function: fc, Received: time.Now()})
	}
	u := s.units[unit].Load()
	fault, fired := s.faults.fire(req)
	if !fired && u != nil {
		fault, fired = u.faults.fire(req)
	}
	if fired {
		s.stats.faults[fault.Kind].Add(1)
		if fault.Delay > 0 && !wait(fault.Delay) {
			return nil, fault.Kind, verdictStop
		}
		switch fault.Kind {
		case FaultDrop:
			return nil, fault.Kind, verdictDrop
		case FaultNoReply:
			return nil, fault.Kind, verdictSilent
		}
	}

	var pdu []byte
	switch {
	case fault.Kind == FaultException:
		pdu = appendException(buf, fc, fault.Exception)
	case u == nil:
		switch s.cfg.MissingUnit {
		case MissingUnitSilent:
			return nil, 0, verdictSilent
		case MissingUnitPathUnavailable:
			pdu = appendException(buf, fc, devices.ExceptionGatewayPathUnavailable)
		default:
			pdu = appendException(buf, fc, devices.ExceptionGatewayTargetFailedToRespond)
		}
	default:
		pdu = u.serve(req, buf)
	}
	if fault.Kind == FaultShortReply {
		pdu = shorten(pdu)
	}
	if isException(pdu) {
		s.stats.exceptions[pdu[1]].Add(1)
	}
	return pdu, fault.Kind, verdictReply
}

// wait sends the replies already buffered, then sleeps for d. It returns
// false if the server closed meanwhile or the flush failed.
func (c *conn) wait(d time.Duration) bool {
	if err := c.bw.Flush(); err != nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.s.ctx.Done():
		return false
	}
}

// serve executes a request PDU against the unit and appends the reply PDU
// to dst.
func (u *Unit) serve(pdu, dst []byte) []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.refresh()
	return u.execute(pdu, dst)
}
