package devices_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/factorywire/factorywire/devices"
)

// A poll: run each read of the plan, decode the responses into a sample,
// and write the sample as JSON.
func Example() {
	c, err := devices.Parse("press.yaml", []byte(`
class: press
fields:
  - {name: pressure, ref: 40001, type: int16, scale: 0.01, unit: bar}
  - {name: running, ref: 40002, type: bool, bit: 0}
  - {name: cycle_count, ref: 40003, type: uint32, order: CDAB}
  - {name: pump_on, ref: 00001, type: bool}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Plan)

	// The responses' data bytes, as a Modbus client returns them.
	responses := map[devices.Table][]byte{
		devices.HoldingRegisters: {0x04, 0xE2, 0x00, 0x01, 0xD6, 0x87, 0x00, 0x12},
		devices.Coils:            nil, // the read failed
	}
	tags := map[string]string{"line": "line-3"} // the device's, from the gateway config
	s := devices.Sample{
		Factory: "plant-a", Device: "press-07", Class: c.Name,
		Time: time.Date(2026, 12, 1, 1, 2, 3, 456e6, time.UTC), Seq: 42,
		Tags: tags, Units: c.Units, // shared by every sample of the device and class
	}
	for _, r := range c.Plan.Reads {
		data := responses[r.Table]
		err := errors.New("modbus exception 2 (illegal data address)")
		if data != nil {
			err = s.DecodeRead(r, data)
		}
		if err != nil {
			s.FailRead(r, err)
		}
	}
	fmt.Printf("%s\n", s.AppendJSON(nil))
	// Output:
	// coil 0 (1 bit): pump_on@0
	// holding_register 0-3 (4 registers): pressure@0 running@1.0 cycle_count@2
	// {"v":2,"factory":"plant-a","device":"press-07","class":"press","ts":"2026-12-01T01:02:03.456Z","seq":42,"tags":{"line":"line-3"},"units":{"pressure":"bar"},"fields":{"cycle_count":1234567,"pressure":12.5,"running":true},"errors":{"pump_on":"modbus exception 2 (illegal data address)"}}
}

// A simulator serves a field's engineering value as the registers a device
// would hold.
func ExampleField_EncodeRegisters() {
	f := devices.Field{Name: "voltage", Table: devices.InputRegisters, Type: devices.TypeFloat32, Order: devices.OrderCDAB}
	regs := make([]uint16, f.Size())
	if err := f.EncodeRegisters(devices.Float64Value(123.456), regs); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%#04x\n", regs)
	v, _ := f.DecodeRegisters(regs)
	fmt.Println(v)
	// Output:
	// [0xe979 0x42f6]
	// 123.456
}

// The sink tells records of a newer schema from malformed ones.
func ExampleDecodeSample() {
	for _, record := range []string{
		`{"v":1,"factory":"plant-a","device":"press-07","class":"press","ts":"2026-12-01T01:02:03.456Z","seq":42,"fields":{"pressure":12.5}}`,
		`{"v":3,"factory":"plant-a"}`,
		`{"v":2,"factory":"plant-a","seq":-1}`,
	} {
		s, err := devices.DecodeSample([]byte(record))
		switch {
		case errors.Is(err, devices.ErrSchemaVersion):
			fmt.Println("stop and upgrade:", err)
		case errors.Is(err, devices.ErrMalformedSample):
			fmt.Println("dead-letter:", err)
		default:
			fmt.Println(s.Device, s.Seq, s.Fields["pressure"])
		}
	}
	// Output:
	// press-07 42 12.5
	// stop and upgrade: devices: sample schema version 3 not supported
	// dead-letter: devices: malformed sample: key "device": missing
}
