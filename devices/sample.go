package devices

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion is the sample schema version AppendJSON writes: the "v"
// of every record. DecodeSample reads versions MinSchemaVersion to
// SchemaVersion.
const SchemaVersion = 2

// MinSchemaVersion is the oldest sample schema version DecodeSample reads.
// Version 1 is version 2 without tags and units.
const MinSchemaVersion = 1

// ContentType is the value of the content-type header of every sample
// record.
const ContentType = "application/json"

// timeLayout writes a sample's ts: RFC 3339, UTC, milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// Sample is one poll of one device: every field read in that cycle, with
// one timestamp and the device's sequence number. A field appears either
// in Fields, with its value, or in Errors, with why it has none, never in
// both.
//
// Tags and Units are static: a producer shares one map among all the
// samples of a device (Tags) or of a class (Units, Class.Units), so
// nobody may modify them through a Sample. DecodeSample allocates its
// own; a Decoder shares them, and Errors, among the samples it decodes
// from the same bytes.
type Sample struct {
	Factory string            // factory name, as ValidateName accepts
	Device  string            // device id, the record key, as ValidateDevice accepts
	Class   string            // device class name, as ValidateName accepts
	Time    time.Time         // when the poll started; kept to the millisecond
	Seq     uint64            // per device, one more than the device's previous sample
	Tags    map[string]string // tag key → value: the device's static tags (ValidateTag); read only
	Units   map[string]string // field name → unit, for the class's fields that have one; read only
	Fields  map[string]Value  // field name → value
	Errors  map[string]string // field name → why the field has no value
	// Values, when not nil, carries the fields instead of Fields and
	// Errors, which are then nil: a poller's sample on its way to the
	// gateway's spool (modbus.WithValues), which the poller reuses once
	// the sample is taken. DecodeRead, FailRead and AppendJSON handle it
	// as they handle the maps; Values.Maps gives the maps.
	Values *Values
}

// DecodeRead decodes data, the response to r (the bytes after the Modbus byte
// count: registers high byte first, bits packed least significant first),
// putting each field r serves into s.Fields, or into s.Errors if its value
// cannot be carried (a NaN float); into s.Values instead if it is set. It
// allocates the maps if they are nil.
//
// If len(data) is not r.ByteCount(), DecodeRead changes nothing and returns a
// *ByteCountError; the caller then records the failure with FailRead, and
// should treat the connection as out of step. With Values set, a read
// serving a field its class lacks is refused too, nothing changed.
func (s *Sample) DecodeRead(r Read, data []byte) error {
	if want := r.ByteCount(); len(data) != want {
		return &ByteCountError{Table: r.Table, Address: r.Address, Quantity: r.Quantity, Want: want, Got: len(data)}
	}
	bits := r.Table.Bits()
	// direct: every slot's Index is its field's place in s.Values' class
	// (the read was compiled from it), so the values go there without
	// looking each field up again.
	direct := s.Values != nil
	for _, slot := range r.Fields {
		f := slot.Field
		size := f.Size()
		if f.Table != r.Table || slot.Offset < 0 || slot.Offset+size > int(r.Quantity) ||
			!bits && size > MaxReadRegisters {
			return fmt.Errorf("devices: field %q (%s) does not lie inside the read %s %s",
				f.Name, span(f), r.Table, addressRange(r.Address, int(r.Quantity)))
		}
		if s.Values != nil {
			i := s.Values.index(slot)
			if i < 0 {
				return fmt.Errorf("devices: field %q of the read %s %s is not one of class %q's",
					f.Name, r.Table, addressRange(r.Address, int(r.Quantity)), s.Values.class.Name)
			}
			direct = direct && i == slot.Index
		}
	}
	for _, slot := range r.Fields {
		var v Value
		if bits {
			v = BoolValue(data[slot.Offset/8]>>(slot.Offset%8)&1 == 1)
		} else {
			f := slot.Field
			var err error
			if v, err = f.decode(data[2*slot.Offset : 2*(slot.Offset+f.Size())]); err != nil {
				s.setError(slot, err)
				continue
			}
		}
		if direct {
			s.Values.set(slot.Index, v)
		} else {
			s.set(slot, v)
		}
	}
	return nil
}

// FailRead records err as the error of every field r serves: the read timed
// out, got a Modbus exception, or its response was malformed. With Values
// set, a field its class lacks is left out.
func (s *Sample) FailRead(r Read, err error) {
	for _, slot := range r.Fields {
		s.setError(slot, err)
	}
}

func (s *Sample) set(slot Slot, v Value) {
	if s.Values != nil {
		s.Values.set(s.Values.index(slot), v)
		return
	}
	name := slot.Field.Name
	if s.Fields == nil {
		s.Fields = make(map[string]Value)
	}
	s.Fields[name] = v
	delete(s.Errors, name)
}

func (s *Sample) setError(slot Slot, err error) {
	if s.Values != nil {
		if i := s.Values.index(slot); i >= 0 {
			s.Values.setError(i, err.Error())
		}
		return
	}
	name := slot.Field.Name
	if s.Errors == nil {
		s.Errors = make(map[string]string)
	}
	s.Errors[name] = err.Error()
	delete(s.Fields, name)
}

// AppendJSON appends the sample as a schema version 2 (SchemaVersion)
// JSON object and returns the extended buffer. The output is
// deterministic: keys in the order v, factory, device, class, ts, seq,
// tags, units, fields, errors, and the keys of each object sorted. tags,
// units and errors are omitted when empty. Values are written as
// Value.AppendJSON writes them. AppendJSON does not validate the sample:
// the producer owns valid names, tags ValidateTag accepts, units as
// Class.Units holds them, and a Time within years 0000 to 9999.
//
// It runs for every sample a gateway spools, so it takes each object's
// members from its map in one pass and sorts them on the stack (up to 64
// members without allocating), rather than sorting the keys and looking
// each up again.
func (s *Sample) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, SchemaVersion, 10)
	dst = append(dst, `,"factory":`...)
	dst = appendString(dst, s.Factory)
	dst = append(dst, `,"device":`...)
	dst = appendString(dst, s.Device)
	dst = append(dst, `,"class":`...)
	dst = appendString(dst, s.Class)
	dst = append(dst, `,"ts":"`...)
	dst = appendTime(dst, s.Time)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, s.Seq, 10)
	var strs [64]member[string]
	if len(s.Tags) > 0 {
		dst = appendStrings(dst, `,"tags":{`, s.Tags, strs[:0])
	}
	if len(s.Units) > 0 {
		dst = appendStrings(dst, `,"units":{`, s.Units, strs[:0])
	}
	if s.Values != nil {
		return append(s.Values.appendJSON(dst), '}')
	}
	dst = append(dst, `,"fields":{`...)
	var vals [64]member[Value]
	var order [64]int32
	fields := collect(vals[:0], s.Fields)
	for i, j := range sortOrder(order[:0], fields) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, fields[j].key)
		dst = append(dst, ':')
		dst = fields[j].value.AppendJSON(dst)
	}
	dst = append(dst, '}')
	if len(s.Errors) > 0 {
		dst = appendStrings(dst, `,"errors":{`, s.Errors, strs[:0])
	}
	return append(dst, '}')
}

// appendTime appends t in UTC as timeLayout does (milliseconds truncated),
// without parsing the layout: per sample, AppendFormat cost as much as all
// the sample's numbers. Years outside 0000 to 9999 go through AppendFormat.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, timeLayout)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / int(time.Millisecond)
	return append(dst,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+month/10), byte('0'+month%10), '-', byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':', byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// appendStrings appends open, then m's members sorted by key, and the
// closing brace; scratch is space for the sort.
func appendStrings(dst []byte, open string, m map[string]string, scratch []member[string]) []byte {
	dst = append(dst, open...)
	var order [64]int32
	members := collect(scratch, m)
	for i, j := range sortOrder(order[:0], members) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, members[j].key)
		dst = append(dst, ':')
		dst = appendString(dst, members[j].value)
	}
	return append(dst, '}')
}

// member is one key and value of a map being written.
type member[V any] struct {
	key   string
	value V
}

// collect appends m's members to scratch, in the map's order.
func collect[V any](scratch []member[V], m map[string]V) []member[V] {
	for k, v := range m {
		scratch = append(scratch, member[V]{k, v})
	}
	return scratch
}

// sortOrder appends to order the indexes of members sorted by key and
// returns it. A sample's maps are small (a class's fields, a device's
// tags): up to 64 members it sorts the indexes by insertion, with a
// comparison that looks at the keys' first bytes before comparing the
// strings, which beats sorting the members themselves there.
func sortOrder[V any](order []int32, members []member[V]) []int32 {
	for i := range members {
		order = append(order, int32(i))
	}
	if len(members) > 64 {
		slices.SortFunc(order, func(a, b int32) int { return strings.Compare(members[a].key, members[b].key) })
		return order
	}
	for i := 1; i < len(order); i++ {
		for j := i; j > 0 && keyLess(members[order[j]].key, members[order[j-1]].key); j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	return order
}

// keyLess is a < b.
func keyLess(a, b string) bool {
	if a != "" && b != "" && a[0] != b[0] {
		return a[0] < b[0]
	}
	return a < b
}

func sortedKeys[V any](keys []string, m map[string]V) []string {
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sampleKeys are the top-level keys of a sample, by schema version, in
// AppendJSON's order; the required ones are requiredKeys.
var sampleKeys = map[uint64][]string{
	1: {"v", "factory", "device", "class", "ts", "seq", "fields", "errors"},
	2: {"v", "factory", "device", "class", "ts", "seq", "tags", "units", "fields", "errors"},
}

// checkUnit checks one member of units: a field name and its unit.
func checkUnit(name, unit string) error {
	if err := validateFieldName(name); err != nil {
		return err
	}
	return validateUnit(unit)
}

// seqMarker precedes the seq in AppendJSON's output: the strings before it
// (factory, device, class, ts) cannot hold a '"', so its first occurrence is
// the top-level seq.
var seqMarker = []byte(`","seq":`)

// SeqOf reads the seq of a sample encoded by AppendJSON, of schema
// version 1 or 2, without decoding the rest, for readers of their own
// spool. ok is false when data does not have AppendJSON's layout up to the
// seq; DecodeSample then decides. (Tags and units come after the seq.)
func SeqOf(data []byte) (seq uint64, ok bool) {
	if !bytes.HasPrefix(data, []byte(`{"v":2,"factory":"`)) && !bytes.HasPrefix(data, []byte(`{"v":1,"factory":"`)) {
		return 0, false
	}
	i := bytes.Index(data, seqMarker)
	if i < 0 {
		return 0, false
	}
	digits := data[i+len(seqMarker):]
	n := 0
	for n < len(digits) && '0' <= digits[n] && digits[n] <= '9' {
		n++
	}
	if n == 0 || n >= len(digits) || digits[n] != ',' {
		return 0, false
	}
	seq, err := strconv.ParseUint(string(digits[:n]), 10, 64)
	return seq, err == nil
}
