package gateway

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/modbus"
)

// TestObserveRequestCounts checks the request metrics that ObserveRequest
// updates through its cache of series, from several connections at once
// as the Conns call it.
func TestObserveRequestCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	spool, err := OpenSpool(t.TempDir(), DefaultConfig().Spool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	m := newMetrics(reg, spool, func() []modbus.DeviceHealth { return nil })
	var wg sync.WaitGroup
	for c := range 3 {
		wg.Go(func() {
			conn := fmt.Sprintf("conn-%d", c)
			for i := range 100 {
				var err error
				if i%10 == 0 {
					err = &modbus.ExceptionError{Unit: 1, Function: 3, Code: devices.ExceptionIllegalDataAddress}
				}
				m.ObserveRequest(conn, 1, uint8(1+i%2*2), time.Millisecond, err) // functions 1 and 3
			}
		})
	}
	wg.Wait()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			key := f.GetName()
			for _, l := range mt.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case mt.GetCounter() != nil:
				got[key] = mt.GetCounter().GetValue()
			case mt.GetHistogram() != nil:
				got[key] = float64(mt.GetHistogram().GetSampleCount())
			}
		}
	}
	for c := range 3 {
		conn := fmt.Sprintf("conn-%d", c)
		for key, want := range map[string]float64{
			"factorywire_gateway_modbus_requests_total,conn=" + conn + ",function=1":                       50,
			"factorywire_gateway_modbus_requests_total,conn=" + conn + ",function=3":                       50,
			"factorywire_gateway_modbus_round_trip_seconds,conn=" + conn:                                   100,
			"factorywire_gateway_modbus_request_errors_total,conn=" + conn + ",exception=2,kind=exception": 10,
		} {
			if got[key] != want {
				t.Errorf("%s = %v, want %v", key, got[key], want)
			}
		}
	}
}
