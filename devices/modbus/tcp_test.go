package modbus

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
)

// scriptedServer is a Modbus TCP server whose replies a test writes: for
// each 12-byte request (a read) it writes the pieces reply returns, one
// write each, a millisecond apart, so that they arrive as separate reads.
// Connections are served one after another; each request carries the
// number of the connection it came on (1, 2, ...).
func scriptedServer(t *testing.T, reply func(conn int, req []byte) [][]byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for conn := 1; ; conn++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			var req [12]byte
			for {
				if _, err := io.ReadFull(nc, req[:]); err != nil {
					break
				}
				for i, piece := range reply(conn, req[:]) {
					if i > 0 {
						time.Sleep(time.Millisecond)
					}
					if _, err := nc.Write(piece); err != nil {
						break
					}
				}
			}
			nc.Close()
		}
	}()
	return ln.Addr().String()
}

// holdingReply is the reply frame to a read of holding registers req,
// each register holding its address.
func holdingReply(req []byte) []byte {
	addr, qty := binary.BigEndian.Uint16(req[8:]), binary.BigEndian.Uint16(req[10:])
	f := append([]byte(nil), req[:8]...)
	binary.BigEndian.PutUint16(f[4:], uint16(3+2*qty))
	f = append(f, byte(2*qty))
	for a := addr; a < addr+qty; a++ {
		f = binary.BigEndian.AppendUint16(f, a)
	}
	return f
}

func TestTCPReplyInPieces(t *testing.T) {
	addr := scriptedServer(t, func(_ int, req []byte) [][]byte {
		f := holdingReply(req)
		return [][]byte{f[:2], f[2:9], f[9:10], f[10:]} // inside the header, after it, inside the data
	})
	c := newConn(t, ConnConfig{Address: addr})
	for i := range 3 {
		got, err := c.Read(context.Background(), 1, devices.HoldingRegisters, 100, 3)
		if want := []byte{0, 100, 0, 101, 0, 102}; err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read %d: % x, %v; want % x", i, got, err, want)
		}
	}
	if st := c.Stats(); st.Connects != 1 || st.Disconnects != 0 || st.Requests != 3 || st.Replies != 3 || st.RoundTripTotal <= 0 {
		t.Fatalf("stats %+v: want 3 requests and replies, with their round trips, on one connection", st)
	}
}

// TestTCPBytesAfterReply is a device that sends bytes after a reply: the
// reply is taken, and the next request's reply, behind those bytes, is
// out of step (as with goburrow, which leaves them in the socket): the
// connection is closed and the read after it works on a new one.
func TestTCPBytesAfterReply(t *testing.T) {
	addr := scriptedServer(t, func(conn int, req []byte) [][]byte {
		f := holdingReply(req)
		if conn == 1 && binary.BigEndian.Uint16(req) == 1 {
			f = append(f, 0, 9, 0)
		}
		return [][]byte{f}
	})
	c := newConn(t, ConnConfig{Address: addr})
	ctx := context.Background()
	if got, err := c.Read(ctx, 1, devices.HoldingRegisters, 7, 1); err != nil || !bytes.Equal(got, []byte{0, 7}) {
		t.Fatalf("first read: % x, %v", got, err)
	}
	if got, err := c.Read(ctx, 1, devices.HoldingRegisters, 8, 1); KindOf(err) != KindFraming {
		t.Fatalf("second read: % x, %v; want a framing error", got, err)
	}
	if got, err := c.Read(ctx, 1, devices.HoldingRegisters, 9, 1); err != nil || !bytes.Equal(got, []byte{0, 9}) {
		t.Fatalf("third read: % x, %v", got, err)
	}
	if st := c.Stats(); st.Connects != 2 || st.Disconnects != 1 {
		t.Fatalf("stats %+v: want a reconnect after the framing error", st)
	}
}

func TestTCPBadLength(t *testing.T) {
	for _, length := range []uint16{0, 1, 255, 0xffff} {
		addr := scriptedServer(t, func(_ int, req []byte) [][]byte {
			f := holdingReply(req)
			binary.BigEndian.PutUint16(f[4:], length)
			return [][]byte{f}
		})
		c := newConn(t, ConnConfig{Address: addr, Timeout: 5 * time.Second})
		got, err := c.Read(context.Background(), 1, devices.HoldingRegisters, 0, 2)
		if KindOf(err) != KindFraming {
			t.Errorf("MBAP length %d: % x, %v; want a framing error", length, got, err)
		}
	}
}
