package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// Modbus TCP framing (transport tcp): the MBAP header, then the PDU.
//
//	transaction id  protocol id (0)  length  unit  function  data
//	2               2                2       1     1         0..252    bytes; at most 260
//
// length counts the bytes after it: the unit id and the PDU, 2..254.

const (
	mbapHeader = 7   // transaction id, protocol id, length, unit id
	tcpMaxADU  = 260 // MBAP header and the longest PDU (253 bytes)
)

// tcpTransport is Modbus TCP over one TCP connection. It frames requests
// and replies itself, with the checks goburrow/modbus's TCP handler makes
// (transaction, protocol and unit id of the reply equal to the request's;
// an MBAP length within 2..254), but in buffers of its own reused for
// every request, and reads a reply with as few reads as it arrives in
// (one, when it arrives whole) where goburrow reads the header and the rest
// apart, allocating per request. It is owned by the holder of the Conn's
// turn.
//
// A read may return more than the reply (a device that sends something
// after it): those bytes are kept and come first at the next request, as
// they would come first from the socket, so the next reply fails its
// transaction id check and the connection is closed.
type tcpTransport struct {
	address string
	timeout time.Duration // per request, set by setTimeout

	nc       net.Conn      // nil while not connected
	deadline time.Duration // the connection's deadline, as last set, on the mono clock; 0 when none
	txid     uint16        // of the last request; the first is 1, as goburrow's

	req  [tcpMaxADU]byte // the request frame
	buf  [tcpMaxADU]byte // the reply, then bytes read past it
	n    int             // bytes in buf
	next int             // where the bytes past the last reply start in buf; 0 when none
}

func newTCPTransport(cfg ConnConfig) *tcpTransport {
	return &tcpTransport{address: cfg.Address, timeout: cfg.Timeout}
}

func (t *tcpTransport) setTimeout(d time.Duration) { t.timeout = d }

// Connect dials the device, within the timeout.
func (t *tcpTransport) Connect() error {
	if t.nc != nil {
		return nil
	}
	nc, err := net.DialTimeout("tcp", t.address, t.timeout)
	if err != nil {
		return err
	}
	t.nc, t.deadline, t.n, t.next = nc, 0, 0, 0
	return nil
}

// Close closes the connection; bytes read and not used are discarded.
func (t *tcpTransport) Close() error {
	if t.nc == nil {
		return nil
	}
	err := t.nc.Close()
	t.nc, t.n, t.next = nil, 0, 0
	return err
}

// encode returns the request frame of pdu (function code and data) to
// unit, with the next transaction id. It is valid until the next call.
func (t *tcpTransport) encode(unit uint8, pdu []byte) ([]byte, error) {
	if len(pdu) > tcpMaxADU-mbapHeader {
		return nil, fmt.Errorf("PDU of %d bytes is longer than %d", len(pdu), tcpMaxADU-mbapHeader)
	}
	t.txid++
	b := t.req[:mbapHeader+len(pdu)]
	binary.BigEndian.PutUint16(b, t.txid)
	binary.BigEndian.PutUint16(b[2:], 0)
	binary.BigEndian.PutUint16(b[4:], uint16(1+len(pdu)))
	b[6] = unit
	copy(b[mbapHeader:], pdu)
	return b, nil
}

// deadlineSlack is the part of the timeout by which a request's deadline
// may come early: the connection's deadline is moved only when it would
// move later by more than Timeout/deadlineSlack (or earlier at all), so a
// scan's requests, microseconds apart, share one. Setting it per request
// (a runtime timer change each time) was a few percent of the poller's
// CPU flat out.
const deadlineSlack = 64

// send writes the request frame adu and reads one reply frame, by the
// MBAP length, before start plus the timeout (or up to a 64th of the
// timeout sooner, see deadlineSlack). The reply is valid until the next
// call.
func (t *tcpTransport) send(adu []byte, start time.Duration) ([]byte, error) {
	if t.nc == nil {
		return nil, errors.New("not connected")
	}
	if d := start + t.timeout; d < t.deadline || d-t.deadline > t.timeout/deadlineSlack {
		if err := t.nc.SetDeadline(monoTime(d)); err != nil {
			return nil, err
		}
		t.deadline = d
	}
	if _, err := t.nc.Write(adu); err != nil {
		return nil, err
	}
	if t.next > 0 {
		t.n = copy(t.buf[:], t.buf[t.next:t.n])
		t.next = 0
	}
	frame := 0 // the reply's length, once its header is in
	for frame == 0 || t.n < frame {
		if frame == 0 && t.n >= mbapHeader {
			length := int(binary.BigEndian.Uint16(t.buf[4:]))
			if length < 2 || length > tcpMaxADU-mbapHeader+1 {
				return nil, fmt.Errorf("MBAP length %d in the reply header, want 2..%d", length, tcpMaxADU-mbapHeader+1)
			}
			frame = mbapHeader - 1 + length
			continue
		}
		m, err := t.nc.Read(t.buf[t.n:])
		t.n += m
		if err != nil {
			if errors.Is(err, io.EOF) && t.n > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	if t.n > frame {
		t.next = frame
	} else {
		t.n = 0
	}
	return t.buf[:frame], nil
}

// verify checks that the reply frame resp answers the request frame req:
// the same transaction id, protocol id and unit id.
func (t *tcpTransport) verify(req, resp []byte) error {
	if got, want := binary.BigEndian.Uint16(resp), binary.BigEndian.Uint16(req); got != want {
		return fmt.Errorf("reply transaction id %d does not match the request's %d", got, want)
	}
	if got, want := binary.BigEndian.Uint16(resp[2:]), binary.BigEndian.Uint16(req[2:]); got != want {
		return fmt.Errorf("reply protocol id %d does not match the request's %d", got, want)
	}
	if resp[6] != req[6] {
		return fmt.Errorf("reply unit id %d does not match the request's %d", resp[6], req[6])
	}
	return nil
}

// decode returns the PDU of a reply frame send returned: its function
// code and the bytes after it.
func (t *tcpTransport) decode(resp []byte) (uint8, []byte, error) {
	return resp[mbapHeader], resp[mbapHeader+1:], nil
}
