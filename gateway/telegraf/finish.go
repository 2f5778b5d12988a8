package telegraf

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/factorywire/factorywire/devices"
)

// conn is a connections entry in the making.
type conn struct {
	name, transport, address     string
	baudRate, dataBits, stopBits int
	parity                       string
	timeout, busyBackoff         time.Duration
	pauseBetweenRequests         time.Duration
	pauseAfterConnect            time.Duration
	busyTries                    int
	closeAfterScan               bool
	line                         int
	from                         string
}

// settings lists the connection's settings by gateway.yaml key, for
// comparing two inputs on one controller.
func (c *conn) settings() map[string]string {
	return map[string]string{
		"baud_rate": strconv.Itoa(c.baudRate), "data_bits": strconv.Itoa(c.dataBits), "stop_bits": strconv.Itoa(c.stopBits),
		"parity": c.parity, "timeout": c.timeout.String(), "busy_tries": strconv.Itoa(c.busyTries), "busy_backoff": c.busyBackoff.String(),
		"pause_between_requests": c.pauseBetweenRequests.String(), "pause_after_connect": c.pauseAfterConnect.String(),
		"close_after_scan": strconv.FormatBool(c.closeAfterScan),
	}
}

// device is a devices entry and its register map in the making.
type device struct {
	id          string
	class       string
	conn        *conn
	unit        int
	interval    time.Duration
	tags        map[string]string
	fields      []*field
	maxGap      int
	line        int
	measurement string
	from        string // the input's report name
}

// shareConn returns the connection of an earlier input with the same
// controller, or adds c. Telegraf opens one connection per input; the
// gateway shares one per controller among its units.
func (im *importer) shareConn(c *conn) *conn {
	for _, e := range im.conns {
		if c.address == "" || e.transport != c.transport || e.address != c.address {
			continue
		}
		a, b := e.settings(), c.settings()
		var diff []string
		for _, k := range sortedKeys(a) {
			if a[k] != b[k] {
				diff = append(diff, fmt.Sprintf("%s %s (here %s)", k, a[k], b[k]))
			}
		}
		if len(diff) > 0 {
			im.add(c.line, Warning, Changed, c.from+" controller",
				"shares the connection %q of %s (one connection per controller), whose settings win: %s", e.name, e.from, strings.Join(diff, ", "))
		}
		return e
	}
	base := deviceID(c.name)
	c.name = base
	for n := 2; slices.ContainsFunc(im.conns, func(e *conn) bool { return e.name == c.name }); n++ {
		c.name = base + "-" + strconv.Itoa(n)
	}
	im.conns = append(im.conns, c)
	return c
}

// addInstance turns the groups of an input into devices.
func (im *importer) addInstance(in *instance) {
	c := im.shareConn(in.conn)
	var made []*device
	for _, g := range in.groups {
		fields := im.checkFields(g.fields, in)
		if len(fields) == 0 {
			continue // each field's issue says why
		}
		if g.slave > 247 {
			im.add(g.line, Warning, Dropped, in.t.where, "slave_id %d: Modbus units are 0 to 247 (248-255 are reserved): the device's %d fields are not imported", g.slave, len(fields))
			continue
		}
		made = append(made, &device{conn: c, unit: g.slave, interval: in.interval, tags: g.tags, fields: fields,
			maxGap: im.maxGap(g, in, fields), line: g.line, measurement: g.measurement, from: in.t.where})
	}
	var zeroOne, strs, floats []string
	for _, d := range made {
		for _, f := range d.fields {
			if f.zeroOne {
				zeroOne = append(zeroOne, f.tname)
			}
			if f.floatKept {
				floats = append(floats, f.tname)
			}
			if f.Type == devices.TypeString {
				strs = append(strs, f.tname)
			}
		}
	}
	if len(zeroOne) > 0 {
		in.t.issue("", Note, Changed, "Telegraf writes coils, discrete inputs and BIT fields as 0 or 1 (unless output or data_type is BOOL); the gateway writes false or true: %s",
			strings.Join(uniq(zeroOne), ", "))
	}
	if len(floats) > 0 {
		in.t.issue("", Note, Changed, "Telegraf writes these integers as floats (scale = 1.0, or output = \"FLOAT64\"); the gateway keeps them integers: %s",
			strings.Join(uniq(floats), ", "))
	}
	if len(in.renamed) > 0 {
		in.t.issue("", Note, Renamed, "fields named to fit [a-z][a-z0-9_]* (up to 64 characters): %s", strings.Join(uniq(in.renamed), ", "))
	}
	if len(strs) > 0 {
		in.t.issue("", Note, Changed, "the gateway ends a string at its first NUL byte and trims trailing spaces; Telegraf removes one trailing NUL only: %s",
			strings.Join(uniq(strs), ", "))
	}
	slaves, measurements := map[int]bool{}, map[string]bool{}
	for _, d := range made {
		slaves[d.unit], measurements[d.measurement] = true, true
	}
	ids := map[string]int{}
	for _, d := range made {
		id := deviceID(in.name)
		if len(slaves) > 1 {
			id += "-" + strconv.Itoa(d.unit)
		}
		if len(measurements) > 1 {
			id += "-" + className(d.measurement)
		}
		d.id = id
		ids[id]++
	}
	seen := map[string]int{}
	for _, d := range made {
		if ids[d.id] > 1 { // one slave and measurement with several tag sets
			seen[d.id]++
			d.id += "-" + strconv.Itoa(seen[d.id])
		}
		base := d.id
		for n := 2; slices.ContainsFunc(im.devs, func(e *device) bool { return e.id == d.id }); n++ {
			d.id = base + "-" + strconv.Itoa(n)
		}
		im.devs = append(im.devs, d)
	}
}

// checkFields drops the fields that overlap an earlier one and names the
// rest as the register-map grammar wants, each name once.
func (im *importer) checkFields(fields []*field, in *instance) []*field {
	type owner struct {
		f    *field
		bits bool // bools of a register: several may share it
	}
	used := map[devices.Table]map[int][]owner{}
	var kept []*field
next:
	for _, f := range fields {
		tu := used[f.Table]
		if tu == nil {
			tu = map[int][]owner{}
			used[f.Table] = tu
		}
		regBit := f.Type == devices.TypeBool && !f.Table.Bits()
		for a := int(f.Address); a < int(f.Address)+f.Size(); a++ {
			for _, o := range tu[a] {
				if regBit && o.bits && o.f.Bit != f.Bit {
					continue
				}
				im.add(f.line, Warning, Dropped, f.where, "overlaps %s (line %d) at %s %d: the gateway reads each register or bit into one field (only bools of one register may share it, on different bits)",
					name(o.f.tname), o.f.line, f.Table, a)
				continue next
			}
		}
		for a := int(f.Address); a < int(f.Address)+f.Size(); a++ {
			tu[a] = append(tu[a], owner{f, regBit})
		}
		kept = append(kept, f)
	}
	names := map[string]*field{}
	for _, f := range kept {
		n := fieldName(f.tname)
		if n != f.tname {
			in.renamed = append(in.renamed, fmt.Sprintf("%s is %s", name(f.tname), n))
		}
		if prev := names[n]; prev != nil {
			base := n + "_" + tableSuffix[f.Table]
			alt := base
			for k := 2; names[alt] != nil; k++ {
				alt = base + "_" + strconv.Itoa(k)
			}
			im.add(f.line, Warning, Renamed, f.where, "field %s: %s is the name of another field of the device (line %d); a sample holds one value per name "+
				"(Telegraf keeps them apart in different series, by measurement or type tag)", alt, n, prev.line)
			n = alt
		}
		f.Name = n
		names[n] = f
	}
	return kept
}

var tableSuffix = map[devices.Table]string{
	devices.Coils: "coil", devices.DiscreteInputs: "discrete", devices.HoldingRegisters: "holding", devices.InputRegisters: "input",
}

// maxGap is the register map's max_gap for a device: the fill of
// max_insert, or else the widest gap between two fields that Telegraf
// reads because omitted fields fill it; 0 when neither, as Telegraf then
// reads only what its fields cover.
func (im *importer) maxGap(g *group, in *instance, fields []*field) int {
	gap := max(g.maxFill, 0)
	for _, t := range []devices.Table{devices.Coils, devices.DiscreteInputs, devices.HoldingRegisters, devices.InputRegisters} {
		var spans []span
		for _, f := range fields {
			if f.Table == t {
				spans = append(spans, span{t, int(f.Address), int(f.Address) + f.Size()})
			}
		}
		slices.SortFunc(spans, func(a, b span) int { return a.start - b.start })
		for i := 1; i < len(spans); i++ {
			hole := span{t, spans[i-1].end, spans[i].start}
			if hole.end <= hole.start || !covered(hole, in.omitted, g.slave) {
				continue
			}
			n := hole.end - hole.start
			if t.Bits() {
				n = (n + 15) / 16
			}
			gap = max(gap, n)
		}
	}
	gap = min(gap, devices.MaxReadRegisters)
	if gap > max(g.maxFill, 0) {
		im.add(g.line, Note, Mapped, in.t.where, "max_gap: %d, the widest gap between two fields of slave %d that Telegraf reads through omitted fields", gap, g.slave)
	}
	return gap
}

// covered reports whether omitted fields of slave fill every address of
// hole.
func covered(hole span, omitted []omittedSpan, slave int) bool {
	for a := hole.start; a < hole.end; a++ {
		if !slices.ContainsFunc(omitted, func(o omittedSpan) bool {
			return o.slave == slave && o.table == hole.table && o.start <= a && a < o.end
		}) {
			return false
		}
	}
	return true
}

// finish names the classes, renders the files and sorts the report.
func (im *importer) finish() *Result {
	res := &Result{}
	type class struct {
		body   string
		device *device
	}
	classes := map[string]*class{}
	var order []string
	measured := map[string]bool{}
	for _, d := range im.devs {
		base := className(d.measurement)
		if base != d.measurement && !measured[d.measurement] {
			measured[d.measurement] = true
			im.add(d.line, Note, Renamed, d.from, "measurement %s is class %s (class names are [a-z0-9-], up to 64 characters)", name(d.measurement), base)
		}
		body := classBody(d.fields, d.maxGap)
		cname := base
		for k := 1; ; k++ {
			c := classes[cname]
			if c == nil {
				classes[cname] = &class{body: body, device: d}
				order = append(order, cname)
				break
			}
			if c.body == body {
				break
			}
			cname = className(base + "-" + d.id)
			if k > 1 {
				cname = className(base+"-"+d.id) + "-" + strconv.Itoa(k)
			}
		}
		if cname != base {
			im.add(d.line, Note, Renamed, d.from, "class %s: measurement %s of device %s has other fields than class %s", cname, name(d.measurement), d.id, base)
		}
		d.class = cname
		im.add(d.line, Note, Mapped, d.from, "device %s: class %s, connection %s, unit %d, every %v, %d fields",
			d.id, d.class, d.conn.name, d.unit, d.interval, len(d.fields))
	}
	slices.Sort(order)
	for _, cname := range order {
		c := classes[cname]
		data := renderClass(im.file, cname, c.device)
		res.Classes = append(res.Classes, ClassFile{Name: cname, Path: "devices/" + cname + ".yaml", Data: data, Fields: len(c.device.fields)})
	}
	var conns []*conn
	for _, c := range im.conns {
		if slices.ContainsFunc(im.devs, func(d *device) bool { return d.conn == c }) {
			conns = append(conns, c)
		}
	}
	res.Devices, res.Connections = len(im.devs), len(conns)
	if len(im.devs) > 0 {
		res.Gateway = renderGateway(im, conns)
	}
	sortIssues(im.issues)
	res.Issues = im.issues
	return res
}

// fieldName makes a Telegraf field name fit [a-z][a-z0-9_]{0,63}: lower
// case, a '_' where a lower-case letter or digit meets an upper-case one
// ("TankLevel" is tank_level) and for every run of other characters, and
// "f_" before a leading digit.
func fieldName(s string) string {
	var b strings.Builder
	var prev rune
	under := true // no '_' at the start
	for _, r := range s {
		lower := 'a' <= r && r <= 'z' || '0' <= r && r <= '9'
		upper := 'A' <= r && r <= 'Z'
		switch {
		case upper:
			if ('a' <= prev && prev <= 'z' || '0' <= prev && prev <= '9') && !under {
				b.WriteByte('_')
			}
			b.WriteRune(r + 'a' - 'A')
			under = false
		case lower:
			b.WriteRune(r)
			under = false
		case !under:
			b.WriteByte('_')
			under = true
		}
		prev = r
	}
	out := strings.TrimRight(b.String(), "_")
	if out == "" {
		out = "field"
	}
	if out[0] < 'a' || out[0] > 'z' {
		out = "f_" + out
	}
	if len(out) > devices.MaxNameLen {
		out = strings.TrimRight(out[:devices.MaxNameLen], "_")
	}
	return out
}

// className makes a measurement name a class name: [a-z0-9-], 1 to 64,
// not starting or ending with '-' ("modbus" when nothing is left).
func className(s string) string {
	var b strings.Builder
	dash := true
	for _, r := range strings.ToLower(s) {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if len(out) > devices.MaxNameLen {
		out = strings.TrimRight(out[:devices.MaxNameLen], "-")
	}
	if devices.ValidateName(out) != nil {
		out = "modbus-" + out
		if devices.ValidateName(out) != nil {
			out = "modbus"
		}
	}
	return out
}

// deviceID makes a Telegraf device name a device id: letters, digits,
// '-', '_' and '.', up to 64, starting with a letter or digit.
func deviceID(s string) string {
	var b strings.Builder
	dash := true
	for _, r := range s {
		switch {
		case 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9':
			b.WriteRune(r)
			dash = false
		case (r == '.' || r == '_' || r == '-') && !dash:
			b.WriteRune(r)
		case !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimRight(b.String(), "-._")
	if len(out) > devices.MaxNameLen {
		out = strings.TrimRight(out[:devices.MaxNameLen], "-._")
	}
	if out == "" {
		out = "modbus"
	}
	return out
}

// uniq returns list without repeats, in its order.
func uniq(list []string) []string {
	var out []string
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
