package simulator

import (
	"testing"

	"github.com/factorywire/factorywire/devices"
)

// BenchmarkReadHoldingRegisters measures one goburrow client reading 10
// holding registers in a loop over loopback: the request rate one poller
// connection can get from the simulator. Reproduce with
//
//	go test -run '^$' -bench BenchmarkReadHoldingRegisters -benchtime 3s ./devices/simulator/
func BenchmarkReadHoldingRegisters(b *testing.B) {
	s := newServer(b, Config{})
	u := addUnit(b, s, 1, Sizes{HoldingRegisters: 10})
	u.SetRegisters(devices.HoldingRegisters, 0, []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	c, _ := newClient(b, s, 1)
	b.ReportAllocs()
	for b.Loop() {
		got, err := c.ReadHoldingRegisters(0, 10)
		if err != nil || len(got) != 20 {
			b.Fatalf("read: %d bytes, %v", len(got), err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}
