package devices

import (
	"cmp"
	"slices"
)

// Values holds the fields of one poll of a device of a class as an array
// in the class's field order: the form of Sample.Values, which a poller
// fills instead of the Fields and Errors maps. DecodeRead and FailRead
// fill it as they fill the maps; AppendJSON writes a sample carrying it
// byte for byte as it writes the same sample with the maps, without a map
// to fill and read back and without sorting the names (the class keeps
// its fields' order by name). Maps returns the maps.
//
// A Values belongs to one sample at a time: nobody modifies it while the
// sample is handed on. Its filler may take it back for a later sample once
// the consumer is done (Reset): a modbus.Poller does, once its Emit
// returns.
type Values struct {
	class *Class
	vals  []Value  // by index in class.Fields; KindInvalid: no value
	errs  []string // by index; "": no error; nil until a field has had one
}

// NewValues returns an empty Values for a poll of a device of class c.
func NewValues(c *Class) *Values {
	return &Values{class: c, vals: make([]Value, len(c.Fields))}
}

// Reset empties v for another poll of a device of its class, as NewValues
// returns it (an array for errors, once made, is kept).
func (v *Values) Reset() {
	clear(v.vals)
	clear(v.errs)
}

// Maps returns the fields that have a value and those that have an
// error, as Sample.Fields and Sample.Errors hold them; errs is nil when
// no field has one.
func (v *Values) Maps() (fields map[string]Value, errs map[string]string) {
	fields = make(map[string]Value, len(v.vals))
	for i, x := range v.vals {
		if x.kind != KindInvalid {
			fields[v.class.Fields[i].Name] = x
		}
	}
	for i, e := range v.errs {
		if e != "" {
			if errs == nil {
				errs = make(map[string]string)
			}
			errs[v.class.Fields[i].Name] = e
		}
	}
	return fields, errs
}

// index returns the index in the class's Fields of slot's field, -1 if
// the class has no field of that name.
func (v *Values) index(slot Slot) int {
	fs := v.class.Fields
	if i := slot.Index; i >= 0 && i < len(fs) && &fs[i] == slot.Field {
		return i
	}
	// A plan compiled from another copy of the class: by name.
	for i := range fs {
		if fs[i].Name == slot.Field.Name {
			return i
		}
	}
	return -1
}

func (v *Values) set(i int, x Value) {
	v.vals[i] = x
	if v.errs != nil {
		v.errs[i] = ""
	}
}

func (v *Values) setError(i int, msg string) {
	if v.errs == nil {
		v.errs = make([]string, len(v.vals))
	}
	v.errs[i] = msg
	v.vals[i] = Value{}
}

// appendJSON appends the members of the "fields" object, then of the
// "errors" object if any field has an error, each sorted by name as
// AppendJSON sorts a map's.
func (v *Values) appendJSON(dst []byte) []byte {
	order := v.class.nameOrder()
	dst = append(dst, `,"fields":{`...)
	n := 0
	for _, i := range order {
		if v.vals[i].kind == KindInvalid {
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = appendString(dst, v.class.Fields[i].Name)
		dst = append(dst, ':')
		dst = v.vals[i].AppendJSON(dst)
	}
	dst = append(dst, '}')
	if v.errs == nil {
		return dst
	}
	n = 0
	for _, i := range order {
		if v.errs[i] == "" {
			continue
		}
		if n == 0 {
			dst = append(dst, `,"errors":{`...)
		} else {
			dst = append(dst, ',')
		}
		n++
		dst = appendString(dst, v.class.Fields[i].Name)
		dst = append(dst, ':')
		dst = appendString(dst, v.errs[i])
	}
	if n > 0 {
		dst = append(dst, '}')
	}
	return dst
}

// nameOrder returns the indexes of c's fields sorted by name: the order
// Parse recorded or, for a class built otherwise, one computed now.
func (c *Class) nameOrder() []int {
	if len(c.byName) == len(c.Fields) {
		return c.byName
	}
	return sortedByName(c.Fields)
}

// sortedByName returns the indexes of fields sorted by name.
func sortedByName(fields []Field) []int {
	order := make([]int, len(fields))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(fields[a].Name, fields[b].Name) })
	return order
}
