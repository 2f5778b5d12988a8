package modbus

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/simulator"
)

// BenchmarkPoll measures polls per second of one device whose plan has four
// reads (pressYAML: coil 0; holding 0-1; holding 150; input 10) against
// the simulator on loopback, three ways in one run:
//
//   - poller: Poller.poll through Conn (the owner goroutine, reply checks,
//     decoding into a devices.Sample), as the gateway polls;
//   - goburrow: the same four reads with bare goburrow/modbus, no decoding;
//   - raw-tcp: the same four requests written to a TCP socket and their
//     replies read back, nothing checked: the loopback floor.
//
// Reproduce with:
//
//	go test ./devices/modbus/ -run '^$' -bench Poll -benchtime 3s
func BenchmarkPoll(b *testing.B) {
	s := newSim(b, simulator.Config{})
	addUnit(b, s, 1)
	addr := s.Addr().String()
	class := parseClass(b, pressYAML)
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "polls/s")
	}

	b.Run("poller", func(b *testing.B) {
		conn := newConn(b, ConnConfig{Address: addr})
		p, err := NewPoller(PollerConfig{}, []Device{{
			ID: "bench", Factory: "plant-a", Class: class, Conn: conn, Unit: 1, Schedule: Schedule{Interval: time.Second},
		}}, newCollector().emit)
		if err != nil {
			b.Fatal(err)
		}
		d := p.devs[0]
		scratch := make([]byte, 0, 256) // as runGroup's
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if s, ok, err := p.poll(ctx, d, time.Now(), scratch, nil); !ok || err != nil || len(s.Fields) != 5 {
				b.Fatalf("poll: %v %v %+v", ok, err, s)
			}
		}
		report(b)
	})

	b.Run("goburrow", func(b *testing.B) {
		c, _ := bareClient(b, addr, 1)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			_, err1 := c.ReadCoils(0, 1)
			_, err2 := c.ReadHoldingRegisters(0, 2)
			_, err3 := c.ReadHoldingRegisters(150, 1)
			_, err4 := c.ReadInputRegisters(10, 1)
			if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
				b.Fatal(err1, err2, err3, err4)
			}
		}
		report(b)
	})

	b.Run("raw-tcp", func(b *testing.B) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { nc.Close() })
		type req struct {
			fc         byte
			addr, qty  uint16
			replyBytes int
		}
		reqs := []req{{1, 0, 1, 7 + 2 + 1}, {3, 0, 2, 7 + 2 + 4}, {3, 150, 1, 7 + 2 + 2}, {4, 10, 1, 7 + 2 + 2}}
		frames := make([][]byte, len(reqs))
		for i, r := range reqs {
			f := []byte{0, byte(i), 0, 0, 0, 6, 1, r.fc, 0, 0, 0, 0}
			binary.BigEndian.PutUint16(f[8:], r.addr)
			binary.BigEndian.PutUint16(f[10:], r.qty)
			frames[i] = f
		}
		var buf [260]byte
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			for i, f := range frames {
				if _, err := nc.Write(f); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(nc, buf[:reqs[i].replyBytes]); err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b)
	})

}

// BenchmarkPollerOwnWork measures the poller's own work per poll, the I/O
// left out: Run flat out over 2,000 devices of the gateway benchmark's
// press class (configs/devices/press.yaml: 17 fields in four reads) on
// one connection whose transport answers every request from memory at
// once, all registers zero. Its clock is time.Now moved 100 µs further
// ahead at every reading, so every device is always due (as in
// gatewaybench's poller runs). ns/op is per poll: scheduling, clock
// readings, the request frames, the reply checks, decoding into the
// sample, health and the batch: the work the loopback floor does not do.
//
//	go test ./devices/modbus/ -run '^$' -bench PollerOwnWork -benchtime 200000x
func BenchmarkPollerOwnWork(b *testing.B) {
	src, err := os.ReadFile("../../configs/devices/press.yaml")
	if err != nil {
		b.Fatal(err)
	}
	class := parseClass(b, string(src))
	// The address is never dialled: the transport is replaced before the
	// first request, and memTransport connects to nothing.
	conn := newConn(b, ConnConfig{Address: "127.0.0.1:1"})
	conn.tr = &memTransport{tcpTransport: conn.tr.(*tcpTransport)}
	var devs []Device
	for i := range 2000 {
		devs = append(devs, Device{ID: fmt.Sprintf("own-%05d", i), Factory: "bench", Class: class, Conn: conn,
			Unit: uint8(1 + i%200), Schedule: Schedule{Interval: MinInterval}})
	}
	// The clock runs 100 µs ahead more at every reading: 200 µs a poll,
	// 400 ms a round of the 2,000 devices, due every 100 ms.
	var readings atomic.Int64
	clock := func() time.Time {
		return time.Now().Add(time.Duration(readings.Add(1)) * 100 * time.Microsecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first due time is ahead of Run's start: the measurement starts
	// at the first emit, after which every device is always due.
	var (
		started  = make(chan struct{})
		once     sync.Once
		counting atomic.Bool
		n        int
	)
	emit := func(_ context.Context, ss []devices.Sample) error {
		once.Do(func() {
			// The poll is whole: every field read.
			s := ss[0]
			if fields, errs := s.Values.Maps(); len(fields) != len(class.Fields) || errs != nil {
				b.Errorf("sample of %s: fields %v, errors %v", s.Device, fields, errs)
			}
			close(started)
		})
		if !counting.Load() {
			return nil
		}
		if n += len(ss); n >= b.N {
			cancel()
		}
		return nil
	}
	p, err := NewPoller(PollerConfig{}, devs, emit, WithValues(), WithClock(clock))
	if err != nil {
		b.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	select {
	case <-started:
	case err := <-errc:
		b.Fatalf("Run: %v before the first emit", err)
	case <-time.After(10 * time.Second): // the first due time is at most 100 ms away
		b.Fatal("no sample emitted in 10 s")
	}
	b.ReportAllocs()
	b.ResetTimer()
	counting.Store(true)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if n < b.N {
		b.Fatalf("%d samples, want %d", n, b.N)
	}
}

// memTransport is Modbus TCP framing over no connection: send answers a
// read request at once with zeros for every register or bit it asks for.
type memTransport struct {
	*tcpTransport
	reply [tcpMaxADU]byte
}

func (m *memTransport) Connect() error { return nil }
func (m *memTransport) Close() error   { return nil }

func (m *memTransport) send(adu []byte, _ time.Duration) ([]byte, error) {
	q := int(binary.BigEndian.Uint16(adu[10:]))
	n := 2 * q
	if fc := adu[7]; fc == 1 || fc == 2 {
		n = (q + 7) / 8
	}
	r := m.reply[:mbapHeader+2+n]
	copy(r, adu[:mbapHeader+1]) // transaction, protocol, unit, function
	binary.BigEndian.PutUint16(r[4:], uint16(3+n))
	r[mbapHeader+1] = byte(n)
	clear(r[mbapHeader+2:])
	return r, nil
}
