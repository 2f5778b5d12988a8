package devices

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Class is a device class: a register map shared by every device of one
// model, loaded from one YAML file and compiled into a read plan.
type Class struct {
	Name        string  // lower-case [a-z0-9-]; the topic is <factory>.<class>
	Description string  // free text for people
	MaxGap      int     // unused registers one read may span between fields; see Compile
	Fields      []Field // in file order
	Plan        Plan    // compiled by Parse with the zero PlanOptions
	Source      string  // the file name given to Parse or Load

	// Units maps each field that has a unit to it; nil when none has.
	// Built by Parse, it goes into every sample of the class
	// (Sample.Units), shared: never modify it.
	Units map[string]string

	line   int   // line of the class key, for errors naming a duplicate class
	byName []int // indexes of Fields sorted by name, recorded by Parse (Values)
}

// Field returns the field called name, or nil if the class has none.
func (c *Class) Field(name string) *Field {
	for i := range c.Fields {
		if c.Fields[i].Name == name {
			return &c.Fields[i]
		}
	}
	return nil
}

// Load reads the register-map file at path; see Parse.
func Load(path string) (*Class, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	return Parse(path, data)
}

// LoadDir loads every *.yaml file in dir, keyed by class name. It reports
// the problems of every file at once; two files defining the same class
// are an error naming both.
func LoadDir(dir string) (map[string]*Class, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("devices: %w", err)
	}
	classes := make(map[string]*Class)
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		c, err := Load(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := classes[c.Name]; dup {
			errs = append(errs, &MapError{File: path, Line: c.line,
				Err: fmt.Errorf("class %q is already defined in %s: give each class one file", c.Name, prev.Source)})
			continue
		}
		classes[c.Name] = c
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(classes) == 0 {
		return nil, fmt.Errorf("devices: no register maps (*.yaml) in %s", dir)
	}
	return classes, nil
}

// Parse decodes and validates a register map and compiles its read plan.
// name, usually the file's path, prefixes every error. The error, if any,
// joins one *MapError per problem found.
func Parse(name string, data []byte) (*Class, error) {
	root, err := decodeYAML(name, data)
	if err != nil {
		return nil, err
	}
	p := &mapParser{file: name}
	c := p.class(root)
	switch len(p.errs) {
	case 0:
	case 1:
		return nil, p.errs[0]
	default:
		return nil, errors.Join(p.errs...)
	}
	c.byName = sortedByName(c.Fields)
	if c.Plan, err = c.Compile(PlanOptions{}); err != nil {
		return nil, &MapError{File: name, Err: err}
	}
	for _, f := range c.Fields {
		if f.Unit != "" {
			if c.Units == nil {
				c.Units = make(map[string]string)
			}
			c.Units[f.Name] = f.Unit
		}
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// decodeYAML returns the root node of the file's only YAML document.
func decodeYAML(name string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &MapError{File: name, Err: errors.New("empty register map: want the keys class and fields")}
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, &MapError{File: name, Line: line, Err: errors.New(m[2])}
		}
		return nil, &MapError{File: name, Err: errors.New(msg)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &MapError{File: name, Line: extra.Line,
			Err: errors.New("holds more than one YAML document: put one class in each file")}
	}
	if len(doc.Content) == 0 {
		return nil, &MapError{File: name, Err: errors.New("empty register map: want the keys class and fields")}
	}
	return doc.Content[0], nil
}

var (
	classKeys = []string{"class", "description", "max_gap", "fields"}
	fieldKeys = []string{"name", "table", "address", "ref", "type", "order", "bit", "length", "scale", "offset", "unit"}
)

// mapParser walks a register map's YAML nodes, collecting every problem.
type mapParser struct {
	file string
	errs []error
}

// scope is where a problem lies: the class (name and prefix empty), a
// named field, or an unnamed one (prefix "fields item 3: ").
type scope struct {
	field  string
	prefix string
}

// fail records a problem at node n.
func (p *mapParser) fail(n *yaml.Node, at scope, format string, args ...any) {
	p.failAt(n.Line, at, format, args...)
}

// failAt records a problem at a line.
func (p *mapParser) failAt(line int, at scope, format string, args ...any) {
	p.errs = append(p.errs, &MapError{File: p.file, Line: line, Field: at.field, Err: fmt.Errorf(at.prefix+format, args...)})
}

// fieldInfo remembers where a field was declared, for errors that relate
// two fields.
type fieldInfo struct {
	nameLine  int
	placeLine int // line of its address or ref
}

func (p *mapParser) class(root *yaml.Node) *Class {
	c := &Class{Source: p.file, MaxGap: DefaultMaxGap}
	keys := p.mapping(root, scope{}, classKeys)
	if keys == nil {
		return c
	}
	if n := keys["class"]; n == nil {
		p.fail(root, scope{}, "missing key \"class\": name the device class, e.g. class: power-meter")
	} else if s, ok := p.str(n, scope{}, "class"); ok {
		c.line = n.Line
		if err := ValidateName(s); err != nil {
			p.fail(n, scope{}, "class: %v", err)
		}
		c.Name = s
	}
	if n := keys["description"]; n != nil {
		c.Description, _ = p.str(n, scope{}, "description")
	}
	if n := keys["max_gap"]; n != nil {
		if v, ok := p.integer(n, scope{}, "max_gap", 0, MaxReadRegisters); ok {
			c.MaxGap = v
		}
	}
	n := keys["fields"]
	if n == nil {
		p.fail(root, scope{}, "missing key \"fields\": list the device's fields")
		return c
	}
	n = resolve(n)
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.fail(n, scope{}, "fields: want a list of one or more fields")
		return c
	}
	var infos []fieldInfo
	for i, item := range n.Content {
		f, info, ok := p.field(item, i)
		if item.Kind == yaml.AliasNode {
			info = fieldInfo{nameLine: item.Line, placeLine: item.Line}
		}
		if ok {
			c.Fields = append(c.Fields, f)
			infos = append(infos, info)
		}
	}
	unique, uniqueInfos := p.checkNames(c.Fields, infos)
	p.checkOverlaps(unique, uniqueInfos)
	return c
}

// field decodes and validates one item of the fields list. ok is false if
// it has any problem.
func (p *mapParser) field(n *yaml.Node, index int) (f Field, info fieldInfo, ok bool) {
	before := len(p.errs)
	n = resolve(n)
	at := scope{prefix: fmt.Sprintf("fields item %d: ", index+1)}
	if name := lookup(n, "name"); name != nil && name.Kind == yaml.ScalarNode && name.Value != "" {
		at = scope{field: name.Value}
	}
	keys := p.mapping(n, at, fieldKeys)
	if keys == nil {
		return f, info, false
	}
	if nn := keys["name"]; nn == nil {
		p.fail(n, at, "missing key \"name\"")
	} else if s, ok := p.str(nn, at, "name"); ok {
		if err := validateFieldName(s); err != nil {
			p.fail(nn, at, "name: %v", err)
		}
		f.Name, info.nameLine = s, nn.Line
	}
	info.placeLine = p.place(&f, n, keys, at)
	typed := p.fieldType(&f, n, keys, at)
	if len(p.errs) == before && typed {
		p.checkFit(&f, keys, at, info.placeLine)
	}
	return f, info, len(p.errs) == before
}

// place sets the field's table and address from ref, or from table and
// address, and returns the line that declares them.
func (p *mapParser) place(f *Field, n *yaml.Node, keys map[string]*yaml.Node, at scope) int {
	ref, table, addr := keys["ref"], keys["table"], keys["address"]
	switch {
	case ref != nil && (table != nil || addr != nil):
		p.fail(ref, at, "ref: give either ref or table and address, not both")
		return ref.Line
	case ref != nil:
		if t, a, ok := p.ref(ref, at); ok {
			f.Table, f.Address = t, a
		}
		return ref.Line
	case table == nil && addr == nil:
		p.fail(n, at, "missing location: give table and address (e.g. table: holding_register, address: 0) or ref (e.g. ref: 40001)")
		return n.Line
	case table == nil:
		p.fail(addr, at, "missing key \"table\" beside address (coil, discrete_input, holding_register or input_register)")
		return addr.Line
	case addr == nil:
		p.fail(table, at, "missing key \"address\" beside table (0-based, 0 to 65535)")
		return table.Line
	}
	if s, ok := p.str(table, at, "table"); ok {
		t, err := ParseTable(s)
		if err != nil {
			p.fail(table, at, "%v", err)
		}
		f.Table = t
	}
	if a, ok := p.integer(addr, at, "address", 0, math.MaxUint16); ok {
		f.Address = uint16(a)
	}
	return addr.Line
}

// ref decodes a Modicon reference (see the package documentation).
func (p *mapParser) ref(n *yaml.Node, at scope) (Table, uint16, bool) {
	n = resolve(n)
	s := n.Value
	digits := n.Kind == yaml.ScalarNode && len(s) >= 1 && len(s) <= 6
	for i := 0; digits && i < len(s); i++ {
		digits = isDigit(s[i])
	}
	if !digits {
		p.fail(n, at, "ref: %q is not a Modicon reference: want 5 digits (00001-09999 coils, 10001-19999 discrete inputs, "+
			"30001-39999 input registers, 40001-49999 holding registers) or 6 digits (400001-465536 and so on)", s)
		return 0, 0, false
	}
	v, _ := strconv.Atoi(s)
	prefix, number, top := v/10000, v%10000, 9999
	if len(s) == 6 {
		prefix, number, top = v/100000, v%100000, 65536
	}
	t := refTable(prefix)
	if t == 0 {
		p.fail(n, at, "ref: %s: leading digit %d names no table (0 coils, 1 discrete inputs, 3 input registers, 4 holding registers)", s, prefix)
		return 0, 0, false
	}
	if number < 1 || number > top {
		first := fmt.Sprintf("%d%04d", prefix, 1)
		if len(s) == 6 {
			first = fmt.Sprintf("%d%05d", prefix, 1)
		}
		p.fail(n, at, "ref: %s: number %d out of range 1 to %d (numbers start at 1: %s is %s address 0)",
			s, number, top, first, t)
		return 0, 0, false
	}
	return t, uint16(number - 1), true
}

// refTable returns the table a Modicon reference's leading digit names,
// or 0.
func refTable(digit int) Table {
	switch digit {
	case 0:
		return Coils
	case 1:
		return DiscreteInputs
	case 3:
		return InputRegisters
	case 4:
		return HoldingRegisters
	}
	return 0
}

// fieldType sets the field's type and the keys that depend on it: order,
// bit, length, scale, offset and unit. It reports whether the type is
// known.
func (p *mapParser) fieldType(f *Field, n *yaml.Node, keys map[string]*yaml.Node, at scope) bool {
	tn := keys["type"]
	if tn == nil {
		p.fail(n, at, "missing key \"type\" (want %s)", wantList(typeNames[TypeBool:]))
		return false
	}
	s, ok := p.str(tn, at, "type")
	if !ok {
		return false
	}
	t, err := ParseType(s)
	if err != nil {
		p.fail(tn, at, "%v", err)
		return false
	}
	f.Type, f.Scale = t, 1
	if on := keys["order"]; on != nil {
		p.order(f, on, at)
	}
	if ln := keys["length"]; ln != nil {
		if t != TypeString {
			p.fail(ln, at, "length applies to strings only, not %s", t)
		} else if v, ok := p.integer(ln, at, "length", 1, MaxReadRegisters); ok {
			f.Length = v
		}
	} else if t == TypeString {
		p.fail(tn, at, "a string needs length: its registers, 2 bytes each, 1 to %d", MaxReadRegisters)
	}
	for _, key := range []string{"scale", "offset", "unit"} {
		if kn := keys[key]; kn != nil && !t.numeric() {
			p.fail(kn, at, "%s applies to numbers only, not %s", key, t)
		}
	}
	if sn := keys["scale"]; sn != nil && t.numeric() {
		if v, ok := p.float(sn, at, "scale"); ok && v == 0 {
			p.fail(sn, at, "scale: 0 would make every value 0; omit scale for 1")
		} else if ok {
			f.Scale = v
		}
	}
	if on := keys["offset"]; on != nil && t.numeric() {
		f.Offset, _ = p.float(on, at, "offset")
	}
	if un := keys["unit"]; un != nil && t.numeric() {
		if u, ok := p.str(un, at, "unit"); ok && u != "" {
			if err := validateUnit(u); err != nil {
				p.fail(un, at, "%v", err)
			} else {
				f.Unit = u
			}
		}
	}
	return true
}

func (p *mapParser) order(f *Field, n *yaml.Node, at scope) {
	s, ok := p.str(n, at, "order")
	if !ok {
		return
	}
	o, err := ParseOrder(s)
	switch {
	case err != nil:
		p.fail(n, at, "%v", err)
	case f.Type == TypeBool:
		p.fail(n, at, "order: a bool has no byte order; remove the key")
	case f.Type.Registers() == 1 || f.Type == TypeString:
		if o != OrderABCD && o != OrderBADC {
			p.fail(n, at, "order %s needs two registers or more; a %s takes ABCD (high byte first) or BADC (low byte first)", s, f.Type)
		}
	}
	f.Order = o
}

// checkFit checks what depends on both the table and the type: which
// types a table holds, the bit of a bool in a register, and that the field
// ends within the table.
func (p *mapParser) checkFit(f *Field, keys map[string]*yaml.Node, at scope, placeLine int) {
	bn := keys["bit"]
	switch {
	case f.Table.Bits() && f.Type != TypeBool:
		p.fail(keys["type"], at, "a %s holds a single bit: type must be bool, not %s", f.Table, f.Type)
	case f.Table.Bits() && bn != nil:
		p.fail(bn, at, "bit applies to bools in registers; a %s is a single bit already", f.Table)
	case f.Table.Bits():
	case f.Type == TypeBool && bn == nil:
		p.fail(keys["type"], at, "a bool in a %s needs bit: 0 (least significant) to 15 (use uint16 for the whole register)", f.Table)
	case f.Type == TypeBool:
		if v, ok := p.integer(bn, at, "bit", 0, 15); ok {
			f.Bit = v
		}
	case bn != nil:
		p.fail(bn, at, "bit applies to bools only, not %s", f.Type)
	}
	if end := int(f.Address) + f.Size() - 1; end > math.MaxUint16 {
		p.failAt(placeLine, at, "%s at address %d needs %d registers, ending at %d, past the last address 65535",
			f.Type, f.Address, f.Size(), end)
	}
}

// checkNames reports field names used twice, and returns the fields
// without the repeats.
func (p *mapParser) checkNames(fields []Field, infos []fieldInfo) ([]Field, []fieldInfo) {
	first := make(map[string]int)
	var unique []Field
	var uniqueInfos []fieldInfo
	for i, f := range fields {
		if line, dup := first[f.Name]; dup {
			p.failAt(infos[i].nameLine, scope{field: f.Name}, "duplicate name (first defined at line %d): names must be unique in a class", line)
			continue
		}
		first[f.Name] = infos[i].nameLine
		unique, uniqueInfos = append(unique, f), append(uniqueInfos, infos[i])
	}
	return unique, uniqueInfos
}

// checkOverlaps reports fields that share a register or bit. Only bools in
// registers may share a register, each on its own bit.
func (p *mapParser) checkOverlaps(fields []Field, infos []fieldInfo) {
	order := make([]int, len(fields))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		fa, fb := &fields[a], &fields[b]
		if fa.Table != fb.Table {
			return int(fa.Table) - int(fb.Table)
		}
		if fa.Address != fb.Address {
			return int(fa.Address) - int(fb.Address)
		}
		return fa.Bit - fb.Bit
	})
	prev, end := -1, 0 // the field reaching furthest so far, and where it ends
	for _, i := range order {
		f := &fields[i]
		start := int(f.Address)
		if prev >= 0 && fields[prev].Table == f.Table && start < end {
			g := &fields[prev]
			switch {
			case !registerBit(f) || !registerBit(g):
				p.failAt(infos[i].placeLine, scope{field: f.Name}, "%s overlaps field %q (%s, line %d); only bools on different bits may share a register",
					span(f), g.Name, span(g), infos[prev].placeLine)
			case f.Bit == g.Bit:
				p.failAt(infos[i].placeLine, scope{field: f.Name}, "%s is also field %q (line %d)",
					span(f), g.Name, infos[prev].placeLine)
			}
		}
		if prev < 0 || fields[prev].Table != f.Table || start+f.Size() > end {
			prev, end = i, start+f.Size()
		}
	}
}

// registerBit reports whether f is a bool on one bit of a register.
func registerBit(f *Field) bool { return f.Type == TypeBool && !f.Table.Bits() }

// span describes where a field lives: "holding_register 10-11",
// "holding_register 5 bit 3", "coil 7".
func span(f *Field) string {
	if registerBit(f) {
		return fmt.Sprintf("%s %d bit %d", f.Table, f.Address, f.Bit)
	}
	return fmt.Sprintf("%s %s", f.Table, addressRange(f.Address, f.Size()))
}

// mapping returns the values of a mapping node by key, reporting unknown
// and repeated keys; nil if n is not a mapping.
func (p *mapParser) mapping(n *yaml.Node, at scope, allowed []string) map[string]*yaml.Node {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.fail(n, at, "want a mapping with the keys %s", wantList(allowed))
		return nil
	}
	values := make(map[string]*yaml.Node)
	lines := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode:
			p.fail(k, at, "want a key name, got a %s", kindName(k))
		case !slices.Contains(allowed, k.Value):
			p.fail(k, at, "unknown key %q (want %s)", k.Value, wantList(allowed))
		case lines[k.Value] != 0:
			p.fail(k, at, "key %q given twice (first at line %d)", k.Value, lines[k.Value])
		default:
			values[k.Value], lines[k.Value] = v, k.Line
		}
	}
	return values
}

// lookup returns the value of key in mapping n, or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return resolve(n.Content[i+1])
		}
	}
	return nil
}

// resolve follows an alias to the node it names. Register maps nest only
// four levels deep, so walking them through aliases always ends.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "scalar"
}

// str returns a scalar's text; null reads as "".
func (p *mapParser) str(n *yaml.Node, at scope, key string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		p.fail(n, at, "%s: want text, got a %s", key, kindName(n))
		return "", false
	}
	if n.Tag == "!!null" {
		return "", true
	}
	return n.Value, true
}

// integer returns a plain decimal or 0x-prefixed hexadecimal integer in
// [lo, hi]. A leading zero is refused: YAML reads 010 as octal 8, which no
// one writing a register map means.
func (p *mapParser) integer(n *yaml.Node, at scope, key string, lo, hi int) (int, bool) {
	n = resolve(n)
	s := n.Value
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
		p.fail(n, at, "%s: want an integer %d to %d, got %q", key, lo, hi, s)
		return 0, false
	}
	var v int64
	var err error
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		v, err = strconv.ParseInt(s[2:], 16, 64)
	case len(s) > 1 && s[0] == '0' || len(s) > 2 && s[0] == '-' && s[1] == '0':
		p.fail(n, at, "%s: %s has a leading zero, which YAML reads as octal: write it in decimal without the zero, or as 0x hexadecimal", key, s)
		return 0, false
	default:
		v, err = strconv.ParseInt(s, 10, 64)
	}
	if err != nil || v < int64(lo) || v > int64(hi) {
		p.fail(n, at, "%s: want an integer %d to %d, got %q", key, lo, hi, s)
		return 0, false
	}
	return int(v), true
}

// float returns a finite number.
func (p *mapParser) float(n *yaml.Node, at scope, key string) (float64, bool) {
	n = resolve(n)
	var v float64
	var err error
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
		err = errors.New("not a plain scalar")
	} else {
		v, err = strconv.ParseFloat(n.Value, 64)
	}
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		p.fail(n, at, "%s: want a finite number, got %q", key, n.Value)
		return 0, false
	}
	return v, true
}
