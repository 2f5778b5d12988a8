package telegraf

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/modbus"
)

// ErrSyntax is wrapped by the error of a file that is not TOML.
var ErrSyntax = errors.New("telegraf: not a TOML file")

// SyntaxError is a TOML syntax error, with where it is.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%d: %s (the file must be a Telegraf config in TOML)", e.File, e.Line, e.Msg)
}

func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// Options are the gateway settings Telegraf has no equivalent for.
type Options struct {
	// Factory is the gateway's factory, the first part of its topics.
	// Default "plant".
	Factory string
	// DataDir is where the gateway's spool lives. Default
	// "/var/lib/factorywire/gateway".
	DataDir string
	// LegacyFloat32 reads the register style's data_type FLOAT32 as
	// Telegraf before v1.37.0 did: UFIXED, an unsigned integer of 1, 2 or
	// 4 registers times scale. Telegraf v1.37 reads it as an IEEE 754
	// float of two registers (its special meaning was removed), which is
	// the default here.
	LegacyFloat32 bool
}

// Defaults of Options.
const (
	DefaultFactory = "plant"
	DefaultDataDir = "/var/lib/factorywire/gateway"
)

// DefaultInterval is Telegraf's [agent] interval when the file sets none.
const DefaultInterval = 10 * time.Second

// Result is an import: the files to write and the report.
type Result struct {
	// Gateway is gateway.yaml.
	Gateway []byte
	// Classes are the register maps, sorted by name, to write as
	// devices/<name>.yaml beside gateway.yaml (its classes_dir).
	Classes []ClassFile
	// Issues are the report, sorted by line.
	Issues []Issue
	// Devices and Connections count what gateway.yaml holds.
	Devices, Connections int
}

// ClassFile is one register map.
type ClassFile struct {
	Name   string // the class
	Path   string // devices/<name>.yaml, relative to gateway.yaml
	Data   []byte
	Fields int
}

// Importable reports whether anything was carried over: with no device,
// there is no gateway.yaml to write.
func (r *Result) Importable() bool { return r.Devices > 0 }

// importer holds the state of one Import.
type importer struct {
	file   string
	opts   Options
	lines  lineIndex
	issues []Issue

	interval   time.Duration // [agent] interval
	globalTags map[string]string
	brokers    []string
	kafkaLine  int

	conns []*conn
	devs  []*device
}

func (im *importer) add(line int, sev Severity, kind Kind, where, format string, args ...any) {
	im.issues = append(im.issues, Issue{File: im.file, Line: line, Severity: sev, Kind: kind, Where: where, Message: fmt.Sprintf(format, args...)})
}

// Import turns the [[inputs.modbus]] sections of the Telegraf config src
// (read from file, which names it in the report) into a gateway config
// and register maps. See the package documentation for the mapping. The
// error is a *SyntaxError when src is not TOML; otherwise the Result says
// what was carried over and what was not, and Importable reports whether
// there is anything to write.
func Import(file string, src []byte, opts Options) (*Result, error) {
	if opts.Factory == "" {
		opts.Factory = DefaultFactory
	}
	if opts.DataDir == "" {
		opts.DataDir = DefaultDataDir
	}
	var root map[string]any
	if _, err := toml.Decode(string(src), &root); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &SyntaxError{File: file, Line: pe.Position.Line, Msg: pe.Message}
		}
		return nil, &SyntaxError{File: file, Msg: err.Error()}
	}
	im := &importer{file: file, opts: opts, lines: scanLines(string(src)), interval: DefaultInterval}
	rt := im.table("", "", root)
	im.agent(rt)
	im.globalTags = rt.strings("global_tags")
	if len(im.globalTags) > 0 {
		im.add(im.lines["global_tags"], Note, Mapped, "[global_tags]", "added to every device's tags (a tag of the device's own wins)")
	}
	im.outputs(rt)
	if inputs := rt.sub("inputs", ""); inputs != nil {
		for _, plugin := range inputs.keys() {
			sections := inputs.list(plugin, func(i int, m map[string]any) string {
				if n, ok := m["name"].(string); ok && plugin == "modbus" {
					return "inputs.modbus " + name(n)
				}
				return fmt.Sprintf("[[inputs.%s]]", plugin)
			})
			for _, t := range sections {
				if plugin == "modbus" {
					im.instance(t)
					continue
				}
				t.im.add(t.line(""), Note, Dropped, t.where, "not a Modbus input; the gateway polls Modbus devices only")
			}
		}
	}
	for _, kind := range []string{"processors", "aggregators"} {
		if sub := rt.sub(kind, ""); sub != nil {
			for _, plugin := range sub.keys() {
				for _, t := range sub.list(plugin, func(int, map[string]any) string { return fmt.Sprintf("[[%s.%s]]", kind, plugin) }) {
					t.im.add(t.line(""), Warning, Dropped, t.where,
						"Telegraf changes its metrics here; the gateway sends the register values as imported (transform them downstream)")
				}
			}
		}
	}
	for _, k := range rt.rest() {
		rt.take(k)
		rt.issue(k, Note, Dropped, "not a section the gateway has an equivalent for")
	}
	return im.finish(), nil
}

// agent reads [agent]: its interval is every device's poll interval
// unless the input sets its own.
func (im *importer) agent(rt *table) {
	t := rt.sub("agent", "[agent]")
	if t == nil {
		return
	}
	if d, ok := t.duration("interval"); ok {
		im.interval = d
		t.issue("interval", Note, Mapped, "the poll interval of every device whose input sets none")
	}
	for _, k := range t.rest() {
		t.take(k)
		t.issue(k, Note, Dropped, "an agent setting; the gateway has no equivalent (its own settings are in gateway.yaml)")
	}
}

// outputs reads the output plugins: the brokers of outputs.kafka become
// kafka.brokers; everything else is the output side, which the gateway
// replaces with its spool and producer.
func (im *importer) outputs(rt *table) {
	t := rt.sub("outputs", "")
	if t == nil {
		return
	}
	for _, plugin := range t.keys() {
		for _, o := range t.list(plugin, func(int, map[string]any) string { return "[[outputs." + plugin + "]]" }) {
			if plugin != "kafka" || im.brokers != nil {
				why := "an output; the gateway produces to Kafka (the kafka block of gateway.yaml)"
				if plugin == "kafka" {
					why = "another outputs.kafka: kafka.brokers are those of the first"
				}
				im.add(o.line(""), Note, Dropped, o.where, "%s", why)
				for _, k := range o.rest() {
					o.take(k) // the section's note covers its settings
				}
				continue
			}
			v, _ := o.take("brokers")
			list, _ := v.([]any)
			for _, b := range list {
				if s, ok := b.(string); ok {
					im.brokers = append(im.brokers, s)
				}
			}
			if len(im.brokers) > 0 {
				im.kafkaLine = o.line("brokers")
				o.issue("brokers", Note, Mapped, "kafka.brokers")
			}
			for _, k := range o.rest() {
				o.take(k)
				o.issue(k, Note, Dropped, "an outputs.kafka setting; the gateway's producer is configured in the kafka block "+
					"(topics are <factory>.<class>, key = device id, zstd, acks=all, idempotent; TLS and SASL as in configs/gateway.yaml)")
			}
		}
	}
}

// Telegraf's options of every input plugin (docs/CONFIGURATION.md), beside
// interval, tags and the name_ settings the importer maps.
var (
	filterKeys = []string{"namepass", "namedrop", "fieldpass", "fielddrop", "fieldinclude", "fieldexclude",
		"tagpass", "tagdrop", "taginclude", "tagexclude", "metricpass", "namepass_separator", "namedrop_separator"}
	styleKeys = map[string][]string{
		"register": {"slave_id", "coils", "discrete_inputs", "holding_registers", "input_registers"},
		"request":  {"request"},
		"metric":   {"metric", "optimization", "optimization_max_register_fill"},
	}
)

// instance imports one [[inputs.modbus]].
func (im *importer) instance(t *table) {
	devName, ok := t.str("name")
	if !ok || devName == "" {
		devName = fmt.Sprintf("modbus-%d", len(im.devs)+1)
		t.issue("name", Warning, Changed, "Telegraf refuses an input without a device name; the devices are named %s here", devName)
	}
	in := &instance{t: t, name: devName, interval: im.interval, tags: map[string]string{}}
	for k, v := range im.globalTags {
		in.tags[k] = v
	}
	for k, v := range t.strings("tags") {
		in.tags[k] = v
	}
	if t.has("interval") {
		if d, ok := t.duration("interval"); ok {
			in.interval = d
		}
	}
	if in.interval < modbus.MinInterval {
		t.issue("interval", Warning, Changed, "poll interval %v is below the gateway's least, %v: polled every %v", in.interval, modbus.MinInterval, modbus.MinInterval)
		in.interval = modbus.MinInterval
	}
	in.nameOverride, _ = t.str("name_override")
	in.namePrefix, _ = t.str("name_prefix")
	in.nameSuffix, _ = t.str("name_suffix")
	for _, k := range []string{"name_override", "name_prefix", "name_suffix"} {
		if t.has(k) {
			t.issue(k, Note, Mapped, "applied to the measurement names that become class names")
		}
	}
	in.conn = im.connection(t, devName)
	im.workarounds(t, in)

	style, _ := t.str("configuration_type")
	switch style {
	case "", "register":
		style = "register"
		im.registerStyle(t, in)
	case "request":
		im.requestStyle(t, in)
	case "metric":
		im.metricStyle(t, in)
	default:
		t.issue("configuration_type", Warning, Dropped, "unknown configuration style %q (Telegraf refuses it too): want register, request or metric; no field of this input is imported", style)
	}
	for other, keys := range styleKeys {
		if other == style {
			continue
		}
		for _, k := range keys {
			if t.has(k) && !(style == "request" && k == "optimization") {
				t.ignore(Note, fmt.Sprintf("belongs to the %s style, which Telegraf ignores with configuration_type %q", other, style), k)
			}
		}
	}
	if t.has("exclude_register_type_tag") {
		t.take("exclude_register_type_tag")
		t.issue("exclude_register_type_tag", Note, Mapped,
			"nothing to carry over: a factorywire sample holds the fields of every register type (there is no type tag)")
	}
	t.ignore(Note, "the gateway logs with --log-level and --log-format; gateway probe shows raw registers", "log_level", "debug_connection")
	t.ignore(Note, "the gateway has its own settings for this (gateway.yaml)", "alias", "startup_error_behavior")
	t.ignore(Warning, "the gateway starts polls on a fixed grid spread per connection (no jitter or offset setting)", "collection_jitter", "collection_offset")
	t.ignore(Note, "samples carry the poll's start time in milliseconds", "precision")
	t.ignore(Warning, "metric filters are not applied: every field is imported; delete the fields you do not want from the register map", filterKeys...)
	t.unknown("not an inputs.modbus option this importer knows")
	im.addInstance(in)
}

// connection reads the connection settings of an input and returns its
// connection, shared with an earlier input with the same controller.
func (im *importer) connection(t *table, devName string) *conn {
	c := &conn{name: devName, line: t.line("controller"), from: t.where}
	controller, _ := t.str("controller")
	mode, _ := t.str("transmission_mode")
	u, err := url.Parse(controller)
	switch {
	case controller == "":
		t.issue("controller", Warning, Dropped, "no controller (Telegraf refuses it too): the connection's address is left empty; set it in gateway.yaml")
	case err != nil:
		t.issue("controller", Warning, Dropped, "%q is not a URL (%v; Telegraf refuses it too): set the address in gateway.yaml", controller, err)
	case u.Scheme == "tcp":
		c.address = u.Host
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			t.issue("controller", Warning, Changed, "%q has no host:port (Telegraf refuses it too): address %q written as is", controller, u.Host)
		}
		switch mode {
		case "", "auto", "TCP":
			c.transport = "tcp"
		case "RTUoverTCP":
			c.transport = "rtu_over_tcp"
		case "ASCIIoverTCP":
			c.transport = "ascii_over_tcp"
		default:
			t.issue("transmission_mode", Warning, Dropped, "%q is not a mode of a tcp:// controller (TCP, RTUoverTCP, ASCIIoverTCP; Telegraf refuses it too): written as tcp", mode)
			c.transport = "tcp"
		}
	case u.Scheme == "" || u.Scheme == "file":
		c.address = filepath.Join(u.Host, u.Path)
		if u.Scheme == "" && u.Host == "" && u.Path == "" {
			c.address = controller
		}
		switch mode {
		case "", "auto", "RTU":
			c.transport = "rtu"
		case "ASCII":
			c.transport = "ascii"
		default:
			t.issue("transmission_mode", Warning, Dropped, "%q is not a mode of a serial controller (RTU, ASCII; Telegraf refuses it too): written as rtu", mode)
			c.transport = "rtu"
		}
	default:
		t.issue("controller", Warning, Dropped, "scheme %q: Telegraf knows tcp:// and file:// (serial) only, and refuses it too; set the address in gateway.yaml", u.Scheme)
	}
	if strings.Contains(controller, "$") {
		t.issue("controller", Note, Mapped, "the environment reference is written as is: gateway.yaml expands ${NAME} (without Telegraf's ${NAME:-default} forms)")
	}
	serial := c.transport == "rtu" || c.transport == "ascii"
	serialKeys := []string{"baud_rate", "data_bits", "parity", "stop_bits", "rs485"}
	if !serial {
		t.ignore(Note, "a serial setting, which Telegraf ignores too for a tcp:// controller", serialKeys...)
	} else {
		if v, ok := t.integer("baud_rate", 1, 1<<31-1); ok {
			c.baudRate = int(v)
		}
		if v, ok := t.integer("data_bits", 0, 8); ok {
			switch v {
			case 0:
			case 7, 8:
				c.dataBits = int(v)
			default:
				t.issue("data_bits", Warning, Dropped, "%d data bits: the gateway's serial lines take 7 or 8 (Modbus RTU needs 8); default 8 written", v)
			}
		}
		if p, ok := t.str("parity"); ok {
			switch p {
			case "":
			case "N", "E", "O":
				c.parity = p
			default:
				t.issue("parity", Warning, Dropped, "%q: want N, E or O (Telegraf's serial library refuses it too); default E written", p)
			}
		}
		if v, ok := t.integer("stop_bits", 0, 2); ok && v > 0 {
			c.stopBits = int(v)
		}
		if t.has("rs485") {
			t.take("rs485")
			t.issue("rs485", Warning, Dropped, "RS-485 RTS control is not supported: use an adapter that switches direction itself (most USB-RS485 adapters do)")
		}
	}
	if d, ok := t.duration("timeout"); ok {
		switch {
		case d <= 0:
			t.issue("timeout", Warning, Changed, "%v means no timeout in Telegraf; the gateway bounds every request, default %v", d, modbus.DefaultTimeout)
		case d < time.Millisecond || d > time.Minute:
			t.issue("timeout", Warning, Changed, "%v is outside the gateway's 1ms..1m: default %v written", d, modbus.DefaultTimeout)
		default:
			c.timeout = d
		}
	} else if !t.has("timeout") {
		t.issue("", Note, Changed, "no timeout: Telegraf waits without bound; the gateway bounds each request by %v (set timeout in gateway.yaml)", modbus.DefaultTimeout)
	}
	if n, ok := t.integer("busy_retries", 0, 1<<31-1); ok {
		c.busyTries = int(n) + 1
		if c.busyTries > 10 {
			t.issue("busy_retries", Warning, Changed, "%d retries: the gateway sends a read at most 10 times (busy_tries: 10)", n)
			c.busyTries = 10
		}
		t.issue("busy_retries", Note, Mapped, "busy_tries: %d (the first try and %d retries); the gateway retries the read that was answered busy, Telegraf every read of the slave", c.busyTries, c.busyTries-1)
	}
	if d, ok := t.duration("busy_retries_wait"); ok {
		switch {
		case d <= 0:
			t.issue("busy_retries_wait", Note, Changed, "no wait: the gateway waits at least its default, %v, before a busy retry", modbus.DefaultBusyBackoff)
		case d > 10*time.Second:
			t.issue("busy_retries_wait", Warning, Changed, "%v is above the gateway's 10s: 10s written", d)
			c.busyBackoff = 10 * time.Second
		default:
			c.busyBackoff = d
			t.issue("busy_retries_wait", Note, Changed, "busy_backoff: %v; the gateway doubles the wait with each further retry, Telegraf waits the same each time", d)
		}
	}
	return c
}

// workarounds reads [inputs.modbus.workarounds].
func (im *importer) workarounds(t *table, in *instance) {
	w := t.sub("workarounds", t.where+" workarounds")
	if w == nil {
		return
	}
	pause := func(key string, dst *time.Duration) {
		d, ok := w.duration(key)
		switch {
		case !ok:
		case d < 0:
			w.issue(key, Warning, Dropped, "a negative pause")
		case d > modbus.MaxQuirkPause:
			w.issue(key, Warning, Changed, "%v is above the gateway's %v: %v written", d, modbus.MaxQuirkPause, modbus.MaxQuirkPause)
			*dst = modbus.MaxQuirkPause
		default:
			*dst = d
		}
	}
	pause("pause_after_connect", &in.conn.pauseAfterConnect)
	pause("pause_between_requests", &in.conn.pauseBetweenRequests)
	if b, ok := w.boolean("close_connection_after_gather"); ok && b {
		in.conn.closeAfterScan = true
		w.issue("close_connection_after_gather", Note, Mapped, "close_after_scan: true")
	}
	if b, ok := w.boolean("one_request_per_field"); ok && b {
		w.issue("one_request_per_field", Warning, Dropped,
			"the gateway reads neighbouring fields together; for a device that needs one read per field, set max_registers_per_read on the device to the size of its largest field and max_gap: 0 in its register map")
	}
	if b, ok := w.boolean("read_coils_starting_at_zero"); ok && b {
		w.issue("read_coils_starting_at_zero", Warning, Dropped,
			"the gateway's coil reads start at the first coil it needs; for a device that wants reads from coil 0, add a coil field at address 0")
	}
	if s, ok := w.str("string_register_location"); ok {
		switch s {
		case "", "both":
		case "lower", "upper":
			in.stringLocation = s
			w.issue("string_register_location", Warning, Dropped, "strings of one byte per register (%s) are not supported: the STRING fields of this input are not carried over", s)
		default:
			w.issue("string_register_location", Warning, Dropped, "%q: Telegraf refuses it (want lower, upper or both)", s)
		}
	}
	w.unknown("not a workaround this importer knows")
}

// instance is one [[inputs.modbus]] being imported.
type instance struct {
	t        *table
	name     string
	interval time.Duration
	tags     map[string]string
	conn     *conn

	nameOverride, namePrefix, nameSuffix string
	stringLocation                       string
	renamed                              []string // "Name" is name

	groups  []*group
	omitted []omittedSpan // omit = true fields, for max_gap
}

// omittedSpan is the range of an omitted field of a slave.
type omittedSpan struct {
	slave int
	span
}

// metricName is the name Telegraf gives a measurement of this input.
func (in *instance) metricName(measurement string) string {
	if measurement == "" {
		measurement = "modbus"
	}
	if in.nameOverride != "" {
		measurement = in.nameOverride
	}
	return in.namePrefix + measurement + in.nameSuffix
}

// group is the fields of one slave, measurement and tag set: one Telegraf
// series, one factorywire device.
type group struct {
	slave       int
	measurement string // after name_override, _prefix, _suffix
	tags        map[string]string
	line        int
	fields      []*field
	maxFill     int // max_gap from max_insert's optimization_max_register_fill; -1: none
}

// span is an address range of one table.
type span struct {
	table      devices.Table
	start, end int // [start, end)
}

// group returns the group of slave, measurement and tags, created on first
// use.
func (in *instance) group(slave int, measurement string, tags map[string]string, line int) *group {
	merged := map[string]string{}
	for k, v := range in.tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[k] = v
	}
	m := in.metricName(measurement)
	for _, g := range in.groups {
		if g.slave == slave && g.measurement == m && equalTags(g.tags, merged) {
			return g
		}
	}
	g := &group{slave: slave, measurement: m, tags: merged, line: line, maxFill: -1}
	in.groups = append(in.groups, g)
	return g
}

func equalTags(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
