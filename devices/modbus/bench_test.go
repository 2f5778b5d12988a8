package modbus

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

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
			if s, ok, err := p.poll(ctx, d, time.Now(), scratch); !ok || err != nil || len(s.Fields) != 5 {
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
