package simulator

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/factorywire/factorywire/devices"
)

// kindNames are the fault kinds as ParseFault spells them.
var kindNames = map[string]FaultKind{
	"delay":                FaultDelay,
	"exception":            FaultException,
	"short-reply":          FaultShortReply,
	"wrong-transaction-id": FaultWrongTransactionID,
	"drop":                 FaultDrop,
	"no-reply":             FaultNoReply,
}

// ParseFault parses the text form of a fault, as `gateway simulate --fault`
// takes it: comma-separated key=value pairs named as Fault's fields, in
// lower case with '-' between words, plus unit:
//
//	kind=exception,exception=2,unit=3,function=3,address=100,count=10
//	kind=delay,delay=500ms,every=3
//	kind=drop,probability=0.01,seed=1
//
// kind is delay, exception, short-reply, wrong-transaction-id, drop or
// no-reply; exception a code (2, 0x0B) or its name with '-' for spaces
// (server-device-busy); delay a Go duration; unit the unit whose faults it
// joins (Unit.SetFaults). Without unit it is a server fault, for every
// unit (Server.SetFaults), and unit is returned as -1. The fault is
// validated as SetFaults validates it.
func ParseFault(text string) (unit int, f Fault, err error) {
	unit = -1
	fail := func(format string, args ...any) (int, Fault, error) {
		return 0, Fault{}, fmt.Errorf("fault %q: %s: %w", text, fmt.Sprintf(format, args...), ErrFault)
	}
	for _, pair := range strings.Split(text, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || value == "" {
			return fail("%q is not key=value", pair)
		}
		num := func(bits int) (uint64, error) {
			n, err := strconv.ParseUint(value, 0, bits)
			if err != nil {
				return 0, fmt.Errorf("%s=%s: want a number below %d", key, value, uint64(1)<<bits)
			}
			return n, nil
		}
		var n uint64
		switch key {
		case "kind":
			k, ok := kindNames[value]
			if !ok {
				return fail("kind=%s: want one of delay, exception, short-reply, wrong-transaction-id, drop, no-reply", value)
			}
			f.Kind = k
		case "unit":
			if n, err = num(8); err == nil && n > 247 {
				return fail("unit=%s: want 0 to 247", value)
			}
			unit = int(n)
		case "function":
			n, err = num(8)
			f.Function = uint8(n)
		case "address":
			n, err = num(16)
			f.Address = uint16(n)
		case "count":
			n, err = num(17)
			f.Count = int(n)
		case "every":
			n, err = num(31)
			f.Every = int(n)
		case "times":
			n, err = num(31)
			f.Times = int(n)
		case "seed":
			f.Seed, err = num(64)
		case "probability":
			f.Probability, err = strconv.ParseFloat(value, 64)
			if err != nil {
				err = fmt.Errorf("probability=%s: want a number in 0..1", value)
			}
		case "delay":
			f.Delay, err = time.ParseDuration(value)
			if err != nil {
				err = fmt.Errorf("delay=%s: want a duration such as 500ms", value)
			}
		case "exception":
			f.Exception, err = parseException(value)
		default:
			return fail("unknown key %q (have kind, unit, function, address, count, every, probability, seed, times, delay, exception)", key)
		}
		if err != nil {
			return fail("%v", err)
		}
	}
	if f.Kind == 0 {
		return fail("kind is required")
	}
	if err := f.validate(); err != nil {
		return 0, Fault{}, fmt.Errorf("fault %q: %w", text, err)
	}
	return unit, f, nil
}

func parseException(value string) (devices.Exception, error) {
	if n, err := strconv.ParseUint(value, 0, 8); err == nil && n > 0 {
		return devices.Exception(n), nil
	}
	for code := 1; code < 256; code++ {
		e := devices.Exception(code)
		if strings.ReplaceAll(e.String(), " ", "-") == value {
			return e, nil
		}
	}
	return 0, fmt.Errorf("exception=%s: want a code from 1 to 255 or a name such as illegal-data-address or server-device-busy", value)
}
