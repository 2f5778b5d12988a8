package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/modbus"
)

// connFlags are the probe flags that describe a connection without a
// config file: named as the keys of a connections entry, '-' for '_'.
var connFlags = []string{"transport", "address", "baud-rate", "data-bits", "parity", "stop-bits"}

// deviceFlags are the probe flags that describe a device without a config
// file.
var deviceFlags = []string{"unit", "class", "classes-dir", "max-registers-per-read"}

const probeHelp = `probe reads one device once, through the connection and poller code the
gateway runs, and prints each field's value with its unit and the raw reply of
each read (registers in hex). Nothing is produced to Kafka and no spool is
touched. Exit status: 0 when every read succeeded, 1 when one failed (the error
names the connection, unit, register range and the Modbus exception, timeout
or connect error), 2 for a usage error.

A device of a gateway config:

  gateway probe --config configs/gateway.yaml --device press-01

A device without a config: the connection flags are named as the keys of a
connections entry in the gateway config (transport, address, baud_rate,
data_bits, parity, stop_bits, timeout; '-' for '_'), take the same values and
defaults, and are checked by the same rules, so a line of the config carries
over as it is:

  gateway probe --address 10.20.1.10:502 --unit 3 --class press
  gateway probe --connection tcp://10.20.1.10:502 --unit 3 --class press     (the same)
  gateway probe --transport rtu --address /dev/ttyUSB0 --baud-rate 9600 --parity N --stop-bits 2 \
      --unit 10 --class temperature-controller --classes-dir /etc/factorywire/devices
  gateway probe --transport rtu_over_tcp --address 10.20.1.30:4001 --unit 5 --class power-meter
  gateway probe --transport ascii --address /dev/ttyUSB1 --unit 3 --class power-meter     (7E1 by default)

Every flag has an environment twin: FACTORYWIRE_GATEWAY_ and the flag in upper
case with '-' as '_' (FACTORYWIRE_GATEWAY_ADDRESS).`

func probeCommand(stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("gateway probe", flag.ContinueOnError)
	config := fs.String("config", "", "gateway config file; probe its device --device")
	device := fs.String("device", "", "id of the device to read (with --config)")
	connection := fs.String("connection", "", "without --config: TRANSPORT://ADDRESS, --transport and --address in one (tcp://10.20.1.10:502, rtu:///dev/ttyUSB0, rtu_over_tcp://10.20.1.30:4001)")
	transport := fs.String("transport", "tcp", "without --config: tcp, rtu, rtu_over_tcp, ascii or ascii_over_tcp")
	address := fs.String("address", "", "without --config: host:port (tcp, rtu_over_tcp, ascii_over_tcp; Modbus TCP's port is 502) or serial device path (rtu, ascii)")
	baudRate := fs.Int("baud-rate", 0, "without --config, rtu and ascii only: bit/s (default 19200)")
	dataBits := fs.Int("data-bits", 0, "without --config, rtu and ascii only: 7 or 8 (default 8 for rtu, 7 for ascii)")
	parity := fs.String("parity", "", "without --config, rtu and ascii only: N, E or O (default E)")
	stopBits := fs.Int("stop-bits", 0, "without --config, rtu and ascii only: 1 or 2 (default 1)")
	timeout := fs.Duration("timeout", 0, "bound of each request (default: the connection's timeout, else 1s)")
	unit := fs.Uint("unit", 1, "without --config: the device's Modbus unit id, 0 to 247")
	class := fs.String("class", "", "without --config: the device class (the class key of a register map)")
	classesDir := fs.String("classes-dir", "configs/devices", "without --config: the register maps")
	maxRegs := fs.Int("max-registers-per-read", 0, "without --config: fewer than 125 registers per read, for devices that need it")
	format := fs.String("format", "table", "table (for people) or json (for scripts)")
	return &ffcli.Command{
		Name:       "probe",
		ShortUsage: "gateway probe (--config FILE --device ID | (--connection T://ADDR | --address ADDR [--transport T ...]) --unit N --class NAME) [flags]",
		ShortHelp:  "read one device once and print its fields and raw registers",
		LongHelp:   probeHelp,
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVarPrefix(envPrefix)},
		Exec: func(ctx context.Context, _ []string) error {
			if *format != "table" && *format != "json" {
				return usageError{Err: fmt.Errorf("--format %q: want table or json", *format)}
			}
			set := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
			if set["connection"] {
				if *config != "" {
					return usageError{Err: errors.New("--connection: not with --config, which describes the device: give either --config and --device, or the device's flags")}
				}
				if set["transport"] || set["address"] {
					return usageError{Err: errors.New("--connection is --transport and --address in one: give either")}
				}
				t, a, ok := strings.Cut(*connection, "://")
				if !ok || t == "" || a == "" {
					return usageError{Err: fmt.Errorf("--connection %q: want TRANSPORT://ADDRESS, such as tcp://10.20.1.10:502 or rtu:///dev/ttyUSB0", *connection)}
				}
				*transport, *address = t, a
				set["transport"], set["address"] = true, true
			}
			var (
				dev modbus.Device
				cc  modbus.ConnConfig
				err error
			)
			if *config != "" {
				dev, cc, err = probeFromConfig(fs, set, *config, *device)
			} else {
				dev, cc, err = probeFromFlags(set, probeFlags{
					device: *device, transport: *transport, address: *address, baudRate: *baudRate, dataBits: *dataBits,
					parity: *parity, stopBits: *stopBits, unit: *unit, class: *class, classesDir: *classesDir, maxRegs: *maxRegs,
				})
			}
			if err != nil {
				return err
			}
			if set["timeout"] {
				cc.Timeout = *timeout
			}
			if err := cc.Validate(); err != nil {
				return usageError{Err: connFlagError(err)}
			}
			conn, err := modbus.NewConn(cc)
			if err != nil {
				return usageError{Err: connFlagError(err)}
			}
			defer conn.Close()
			dev.Conn = conn
			res, probeErr := modbus.Probe(ctx, dev)
			if *format == "json" {
				err = printProbeJSON(stdout, dev, cc, res, probeErr)
			} else {
				err = printProbe(stdout, dev, cc, res)
			}
			if probeErr != nil {
				return probeErr
			}
			return err
		},
	}
}

// probeFromConfig is the device --device of the config file.
func probeFromConfig(fs *flag.FlagSet, set map[string]bool, path, id string) (modbus.Device, modbus.ConnConfig, error) {
	for _, name := range append(connFlags, deviceFlags...) {
		if set[name] {
			return modbus.Device{}, modbus.ConnConfig{}, usageError{Err: fmt.Errorf("--%s: not with --config, which describes the device: give either --config and --device, or the device's flags", name)}
		}
	}
	if id == "" {
		return modbus.Device{}, modbus.ConnConfig{}, usageError{Err: errors.New("--device ID is required with --config: the id of one of its devices")}
	}
	f := flags{config: &path}
	cfg, err := f.load(fs)
	if err != nil {
		return modbus.Device{}, modbus.ConnConfig{}, err
	}
	dev, cc, err := cfg.ProbeDevice(id)
	if err != nil {
		if strings.HasPrefix(err.Error(), fmt.Sprintf("device %q:", id)) {
			return modbus.Device{}, modbus.ConnConfig{}, usageError{Err: fmt.Errorf("--device: %s: %w", path, err)}
		}
		return modbus.Device{}, modbus.ConnConfig{}, usageError{Err: fmt.Errorf("%s: %w", path, err)}
	}
	return dev, cc, nil
}

// probeFlags are the flags that describe a device without a config file.
type probeFlags struct {
	device, transport, address string
	baudRate, dataBits         int
	parity                     string
	stopBits                   int
	unit                       uint
	class, classesDir          string
	maxRegs                    int
}

// probeFromFlags is the device the flags describe.
func probeFromFlags(set map[string]bool, f probeFlags) (modbus.Device, modbus.ConnConfig, error) {
	fail := func(format string, args ...any) (modbus.Device, modbus.ConnConfig, error) {
		return modbus.Device{}, modbus.ConnConfig{}, usageError{Err: fmt.Errorf(format, args...)}
	}
	switch {
	case set["device"]:
		return fail("--device: only with --config (the id of one of its devices); without a config, describe the device with --address, --unit and --class")
	case f.address == "":
		return fail("--address is required: host:port (or a serial device path with --transport rtu or ascii), or give --config FILE --device ID")
	case f.class == "":
		return fail("--class is required: the device class, a register map in --classes-dir %s", f.classesDir)
	case f.unit > 247:
		return fail("--unit %d: want 0 to 247", f.unit)
	case f.maxRegs < 0 || f.maxRegs > devices.MaxReadRegisters:
		return fail("--max-registers-per-read %d: want 1 to 125, or 0 for 125", f.maxRegs)
	}
	classes, err := devices.LoadDir(f.classesDir)
	if err != nil {
		return fail("--classes-dir: %w", err)
	}
	class := classes[f.class]
	if class == nil {
		return fail("--class %q: no register map in %s has that class (have %s)", f.class, f.classesDir, strings.Join(sortedNames(classes), ", "))
	}
	dev := modbus.Device{ID: f.address, Class: class, Unit: uint8(f.unit)}
	if f.maxRegs > 0 {
		if dev.Plan, err = class.Compile(devices.PlanOptions{MaxRegisters: f.maxRegs}); err != nil {
			return fail("--max-registers-per-read %d: %w", f.maxRegs, err)
		}
	}
	cc := modbus.ConnConfig{
		Transport: modbus.Transport(f.transport), Address: f.address,
		BaudRate: f.baudRate, DataBits: f.dataBits, Parity: f.parity, StopBits: f.stopBits,
	}.WithDefaults()
	return dev, cc, nil
}

// connFlagError names the flag of the connections key a
// ConnConfig.Validate error names.
func connFlagError(err error) error {
	msg := err.Error()
	for _, name := range append(connFlags, "timeout") {
		key := strings.ReplaceAll(name, "-", "_")
		if strings.Contains(msg, ": "+key+": ") || strings.Contains(msg, ": "+key+" is set") {
			return fmt.Errorf("--%s: %w", name, err)
		}
	}
	return err
}

func sortedNames(classes map[string]*devices.Class) []string {
	names := make([]string, 0, len(classes))
	for n := range classes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// notRead starts the error of a read not sent after a connection-level
// error (modbus.ProbeRead.Err).
const notRead = "not read: "

// describeConn is the connection as a probe's header shows it.
func describeConn(cc modbus.ConnConfig) string {
	s := fmt.Sprintf("%s %s", cc.Transport, cc.Address)
	if cc.Transport.Serial() {
		s += fmt.Sprintf(" %d %d%s%d", cc.BaudRate, cc.DataBits, cc.Parity, cc.StopBits)
	}
	if cc.Name != cc.Address {
		s = fmt.Sprintf("connection %s (%s)", cc.Name, s)
	}
	return s + fmt.Sprintf(", timeout %s", cc.Timeout)
}

// printProbe writes the probe as a table: the reads with their raw
// replies, then every field of the class in file order with its value or
// error, unit and place.
func printProbe(w io.Writer, dev modbus.Device, cc modbus.ConnConfig, res modbus.ProbeResult) error {
	name := dev.ID
	if dev.ID == cc.Address {
		name = "device"
	} else {
		name = "device " + name
	}
	fmt.Fprintf(w, "%s, class %s (%s), unit %d on %s\n\n", name, dev.Class.Name, dev.Class.Source, dev.Unit, describeConn(cc))
	fmt.Fprintln(w, "reads:")
	for _, r := range res.Reads {
		fmt.Fprintf(w, "  %s %s (%s), %d %s:", r.Read.Table, addrRange(r.Read.Address, r.Read.Quantity),
			refRange(r.Read.Table, r.Read.Address, r.Read.Quantity), r.Read.Quantity, itemNoun(r.Read))
		switch {
		case r.Err != nil && strings.HasPrefix(r.Err.Error(), notRead):
			fmt.Fprintln(w, " not sent: the connection failed at an earlier read")
		case r.Err != nil:
			fmt.Fprintf(w, " FAILED: %v\n", r.Err)
		case r.Read.Table.Bits():
			bits := make([]string, 0, r.Read.Quantity)
			for _, b := range r.Bits() {
				bits = append(bits, map[bool]string{false: "0", true: "1"}[b])
			}
			fmt.Fprintf(w, " %s (bits from address %d up)\n", strings.Join(bits, " "), r.Read.Address)
		default:
			regs := r.Registers()
			for i, v := range regs {
				if i > 0 && i%16 == 0 {
					fmt.Fprint(w, "\n   ")
				}
				fmt.Fprintf(w, " 0x%04x", v)
			}
			fmt.Fprintln(w)
		}
	}
	failed := map[string]string{} // field -> why its read has no reply
	for _, r := range res.Reads {
		if r.Err == nil {
			continue
		}
		why := "(read failed)"
		if strings.HasPrefix(r.Err.Error(), notRead) {
			why = "(not read)"
		}
		for _, slot := range r.Read.Fields {
			failed[slot.Field.Name] = why
		}
	}
	fmt.Fprintln(w, "\nfields:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  FIELD\tVALUE\tUNIT\tTYPE\tAT")
	for i := range dev.Class.Fields {
		f := &dev.Class.Fields[i]
		value := ""
		if v, ok := res.Sample.Fields[f.Name]; ok {
			value = v.String()
		} else if why, ok := failed[f.Name]; ok {
			value = why
		} else if e, ok := res.Sample.Errors[f.Name]; ok {
			value = "ERROR: " + e // a value the device holds but a sample cannot carry (NaN)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", f.Name, value, f.Unit, f.Type, fieldAt(f))
	}
	return tw.Flush()
}

// probeJSON is `gateway probe --format json`: keys are stable, snake_case.
type probeJSON struct {
	Device     string           `json:"device,omitempty"`
	Class      string           `json:"class"`
	Connection string           `json:"connection"`
	Transport  string           `json:"transport"`
	Address    string           `json:"address"`
	Unit       uint8            `json:"unit"`
	OK         bool             `json:"ok"`
	Error      string           `json:"error,omitempty"`
	Reads      []probeReadJSON  `json:"reads"`
	Fields     []probeFieldJSON `json:"fields"`
}

type probeReadJSON struct {
	Table     string   `json:"table"`
	Address   uint16   `json:"address"`
	Quantity  uint16   `json:"quantity"`
	Ref       string   `json:"ref"`
	Registers []string `json:"registers,omitempty"` // "0x0102"
	Bits      []bool   `json:"bits,omitempty"`
	Error     string   `json:"error,omitempty"`
}

type probeFieldJSON struct {
	Name    string         `json:"name"`
	Value   *devices.Value `json:"value,omitempty"`
	Unit    string         `json:"unit,omitempty"`
	Type    string         `json:"type"`
	Table   string         `json:"table"`
	Address uint16         `json:"address"`
	Ref     string         `json:"ref"`
	Bit     *int           `json:"bit,omitempty"`
	Error   string         `json:"error,omitempty"`
}

func printProbeJSON(w io.Writer, dev modbus.Device, cc modbus.ConnConfig, res modbus.ProbeResult, probeErr error) error {
	out := probeJSON{
		Class: dev.Class.Name, Connection: cc.Name, Transport: string(cc.Transport), Address: cc.Address,
		Unit: dev.Unit, OK: probeErr == nil, Reads: []probeReadJSON{}, Fields: []probeFieldJSON{},
	}
	if dev.ID != cc.Address {
		out.Device = dev.ID
	}
	if probeErr != nil {
		out.Error = probeErr.Error()
	}
	for _, r := range res.Reads {
		rj := probeReadJSON{Table: r.Read.Table.String(), Address: r.Read.Address, Quantity: r.Read.Quantity,
			Ref: refRange(r.Read.Table, r.Read.Address, r.Read.Quantity), Bits: r.Bits()}
		if r.Err != nil {
			rj.Error = r.Err.Error()
		}
		for _, v := range r.Registers() {
			rj.Registers = append(rj.Registers, fmt.Sprintf("0x%04x", v))
		}
		out.Reads = append(out.Reads, rj)
	}
	for i := range dev.Class.Fields {
		f := &dev.Class.Fields[i]
		fj := probeFieldJSON{Name: f.Name, Unit: f.Unit, Type: f.Type.String(), Table: f.Table.String(),
			Address: f.Address, Ref: ref(f.Table, f.Address, f.Address)}
		if f.Type == devices.TypeBool && !f.Table.Bits() {
			fj.Bit = &f.Bit
		}
		if v, ok := res.Sample.Fields[f.Name]; ok {
			fj.Value = &v
		} else if e, ok := res.Sample.Errors[f.Name]; ok {
			fj.Error = e
		}
		out.Fields = append(out.Fields, fj)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// fieldAt is where a field lives: "holding_register 10 bit 3 (40011)".
func fieldAt(f *devices.Field) string {
	at := fmt.Sprintf("%s %s (%s)", f.Table, addrRange(f.Address, uint16(f.Size())), refRange(f.Table, f.Address, uint16(f.Size())))
	if f.Type == devices.TypeBool && !f.Table.Bits() {
		at = fmt.Sprintf("%s %d bit %d (%s)", f.Table, f.Address, f.Bit, ref(f.Table, f.Address, f.Address))
	}
	return at
}

func addrRange(a, n uint16) string {
	if n <= 1 {
		return fmt.Sprint(a)
	}
	return fmt.Sprintf("%d-%d", a, int(a)+int(n)-1)
}

func itemNoun(r devices.Read) string {
	n := "register"
	if r.Table.Bits() {
		n = "bit"
	}
	if r.Quantity != 1 {
		n += "s"
	}
	return n
}

// refRange is the Modicon references of n items from address a:
// "40001-40010"; six digits when the range passes number 9999.
func refRange(t devices.Table, a, n uint16) string {
	last := uint16(int(a) + max(int(n), 1) - 1)
	if n <= 1 {
		return ref(t, a, a)
	}
	return ref(t, a, last) + "-" + ref(t, last, last)
}

// ref is the Modicon reference of address a of table t (see the
// devices package documentation), in six digits if last needs them.
func ref(t devices.Table, a, last uint16) string {
	digit := map[devices.Table]int{devices.Coils: 0, devices.DiscreteInputs: 1, devices.InputRegisters: 3, devices.HoldingRegisters: 4}[t]
	if int(last)+1 > 9999 {
		return fmt.Sprintf("%d%05d", digit, int(a)+1)
	}
	return fmt.Sprintf("%d%04d", digit, int(a)+1)
}
