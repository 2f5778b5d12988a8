package gatewaybench

import (
	_ "embed"
	"fmt"

	"github.com/factorywire/factorywire/devices"
)

// pressYAML is the register map both pollers read: a copy of
// configs/devices/press.yaml (class press: 4 int16/uint16 process values,
// a status word of 5 bits, a uint32 counter, two uint16 and a CDAB int32 in
// holding registers, and 4 coils; 4 reads per poll with max_gap 4). It is
// embedded rather than read from configs/ so that our gateway and the
// Telegraf configuration generated from it (telegraf.go) always describe
// the same registers, whatever configs/ holds when the bench runs.
//
//go:embed press.yaml
var pressYAML []byte

// benchClass parses pressYAML.
func benchClass() (*devices.Class, error) {
	c, err := devices.Parse("press.yaml", pressYAML)
	if err != nil {
		return nil, fmt.Errorf("bench class: %w", err)
	}
	return c, nil
}
