// Copyright 2021 FerretDB Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

package sjson

// This file is not in FerretDB v1.24.2: factorywire's change 7 (see
// third_party/ferretdb/README.md). Unmarshal decoded every document, and
// every value in it, with encoding/json's reflection, a new json.Decoder
// and a map of raw messages per level. unmarshalCanonical reads, in one
// pass and without reflection, a document exactly as Marshal writes it,
// which is what every document this backend stored is, and declines
// anything else (whitespace, escapes, binary data, a regex, a timestamp,
// another order, a corrupt document): Unmarshal then decodes it with the
// release's code, so its result and its errors stay the release's for
// every input. What it accepts it proves canonical by writing the result
// again and comparing, byte for byte; decode_test.go compares the two
// decoders.

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/FerretDB/FerretDB/internal/types"
)

// canonSchema is a document's schema: its keys in order, each with its
// element.
type canonSchema struct {
	keys  []string
	elems []*canonElem
}

// canonElem is one element of a schema.
type canonElem struct {
	t      elemType
	schema *canonSchema // for an object
	items  []*canonElem // for an array
}

// canonMaxDepth bounds the nesting unmarshalCanonical reads (MongoDB
// allows 100 levels of documents); deeper input, which only a corrupt
// file holds, is left to the release's decoder and its own bound.
const canonMaxDepth = 256

// canonReader reads a document as Marshal writes it.
type canonReader struct {
	b     []byte
	i     int
	depth int // of elem and value calls in progress
}

// unmarshalCanonical returns the document data holds and true when data is
// exactly Marshal's bytes for that document; nil and false otherwise.
func unmarshalCanonical(data []byte) (*types.Document, bool) {
	r := canonReader{b: data}

	if !r.lit(`{"$s":`) {
		return nil, false
	}

	sch, ok := r.schema()
	if !ok {
		return nil, false
	}

	d := new(types.Document)

	for i, key := range sch.keys {
		// Marshal writes the top level's keys as they are
		if !r.lit(`,"`) || !r.lit(key) || !r.lit(`":`) {
			return nil, false
		}

		v, ok := r.value(sch.elems[i])
		if !ok || d.Has(key) {
			return nil, false
		}

		d.Set(key, v)
	}

	if !r.lit("}") || r.i != len(r.b) {
		return nil, false
	}

	// what Marshal writes for d must be data: then data was canonical,
	// and the release's decoder returns d for it
	again, err := appendMarshal(make([]byte, 0, len(data)), d)
	if err != nil || !bytes.Equal(again, data) {
		return nil, false
	}

	return d, true
}

// lit consumes s if the input continues with it.
func (r *canonReader) lit(s string) bool {
	if len(r.b)-r.i < len(s) || string(r.b[r.i:r.i+len(s)]) != s {
		return false
	}

	r.i += len(s)

	return true
}

// str reads a string without escapes.
func (r *canonReader) str() (string, bool) {
	b, ok := r.rawStr()

	return string(b), ok
}

// rawStr reads a string without escapes and returns its bytes, which are
// the input's.
func (r *canonReader) rawStr() ([]byte, bool) {
	if r.i >= len(r.b) || r.b[r.i] != '"' {
		return nil, false
	}

	for j := r.i + 1; j < len(r.b); j++ {
		switch c := r.b[j]; {
		case c == '"':
			b := r.b[r.i+1 : j]
			r.i = j + 1

			return b, true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}

	return nil, false
}

// key consumes key in quotes: a key of the schema, which str read, so it
// has neither a quote nor a backslash.
func (r *canonReader) key(key string) bool {
	if len(r.b)-r.i < len(key)+2 || r.b[r.i] != '"' || string(r.b[r.i+1:r.i+1+len(key)]) != key || r.b[r.i+1+len(key)] != '"' {
		return false
	}

	r.i += len(key) + 2

	return true
}

// number returns the bytes of a JSON number.
func (r *canonReader) number() ([]byte, bool) {
	j := r.i
	for j < len(r.b) {
		c := r.b[j]
		if (c < '0' || c > '9') && c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E' {
			break
		}
		j++
	}

	if j == r.i {
		return nil, false
	}

	n := r.b[r.i:j]
	r.i = j

	return n, true
}

// schema reads a document's schema: {} or {"p":{...},"$k":[...]}.
func (r *canonReader) schema() (*canonSchema, bool) {
	if r.lit("{}") {
		return &canonSchema{}, true
	}

	if !r.lit(`{"p":{`) {
		return nil, false
	}

	sch := new(canonSchema)

	for {
		key, ok := r.str()
		if !ok || !r.lit(":") {
			return nil, false
		}

		el, ok := r.elem()
		if !ok {
			return nil, false
		}

		sch.keys = append(sch.keys, key)
		sch.elems = append(sch.elems, el)

		if !r.lit(",") {
			break
		}
	}

	if !r.lit(`},"$k":[`) {
		return nil, false
	}

	for i, key := range sch.keys {
		if i > 0 && !r.lit(",") {
			return nil, false
		}

		if !r.key(key) {
			return nil, false
		}
	}

	if !r.lit("]}") {
		return nil, false
	}

	return sch, true
}

// The elements of scalars, shared.
var canonScalars = map[string]*canonElem{
	`{"t":"double"}`:   {t: elemTypeDouble},
	`{"t":"string"}`:   {t: elemTypeString},
	`{"t":"objectId"}`: {t: elemTypeObjectID},
	`{"t":"bool"}`:     {t: elemTypeBool},
	`{"t":"date"}`:     {t: elemTypeDate},
	`{"t":"null"}`:     {t: elemTypeNull},
	`{"t":"int"}`:      {t: elemTypeInt},
	`{"t":"long"}`:     {t: elemTypeLong},
}

// elem reads a schema element of a kind unmarshalCanonical decodes.
func (r *canonReader) elem() (*canonElem, bool) {
	if r.depth >= canonMaxDepth {
		return nil, false
	}

	r.depth++
	el, ok := r.elemAt()
	r.depth--

	return el, ok
}

// elemAt is elem, within the depth bound.
func (r *canonReader) elemAt() (*canonElem, bool) {
	if r.lit(`{"t":"object","$s":`) {
		sch, ok := r.schema()
		if !ok || !r.lit("}") {
			return nil, false
		}

		return &canonElem{t: elemTypeObject, schema: sch}, true
	}

	if r.lit(`{"t":"array","i":[`) {
		el := &canonElem{t: elemTypeArray, items: []*canonElem{}}

		if r.lit("]}") {
			return el, true
		}

		for {
			item, ok := r.elem()
			if !ok {
				return nil, false
			}

			el.items = append(el.items, item)

			if !r.lit(",") {
				break
			}
		}

		if !r.lit("]}") {
			return nil, false
		}

		return el, true
	}

	// a scalar's element ends at its first '}'
	end := bytes.IndexByte(r.b[r.i:], '}')
	if end < 0 {
		return nil, false
	}

	el := canonScalars[string(r.b[r.i:r.i+end+1])]
	if el == nil {
		return nil, false
	}

	r.i += end + 1

	return el, true
}

// value reads a value of element el, as the release's decoder returns it.
func (r *canonReader) value(el *canonElem) (any, bool) {
	if r.depth >= canonMaxDepth {
		return nil, false
	}

	r.depth++
	v, ok := r.valueAt(el)
	r.depth--

	return v, ok
}

// valueAt is value, within the depth bound.
func (r *canonReader) valueAt(el *canonElem) (any, bool) {
	switch el.t {
	case elemTypeObject:
		if !r.lit("{") {
			return nil, false
		}

		if len(el.schema.keys) == 0 {
			if !r.lit("}") {
				return nil, false
			}

			return new(types.Document), true
		}

		d := new(types.Document)

		for i, key := range el.schema.keys {
			if i > 0 && !r.lit(",") {
				return nil, false
			}

			if !r.key(key) || !r.lit(":") {
				return nil, false
			}

			v, ok := r.value(el.schema.elems[i])
			if !ok {
				return nil, false
			}

			if d.Has(key) {
				return nil, false
			}

			d.Set(key, v)
		}

		if !r.lit("}") {
			return nil, false
		}

		return d, true

	case elemTypeArray:
		if !r.lit("[") {
			return nil, false
		}

		a := types.MakeArray(len(el.items))

		for i, item := range el.items {
			if i > 0 && !r.lit(",") {
				return nil, false
			}

			v, ok := r.value(item)
			if !ok {
				return nil, false
			}

			a.Append(v)
		}

		if !r.lit("]") {
			return nil, false
		}

		return a, true

	case elemTypeDouble:
		n, ok := r.number()
		if !ok {
			return nil, false
		}

		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return nil, false
		}

		return f, true

	case elemTypeString:
		s, ok := r.str()
		if !ok {
			return nil, false
		}

		return s, true

	case elemTypeObjectID:
		s, ok := r.rawStr()
		if !ok || len(s) != 2*types.ObjectIDLen {
			return nil, false
		}

		var oid types.ObjectID
		if _, err := hex.Decode(oid[:], s); err != nil {
			return nil, false
		}

		return oid, true

	case elemTypeBool:
		switch {
		case r.lit("true"):
			return true, true
		case r.lit("false"):
			return false, true
		}

		return nil, false

	case elemTypeDate:
		ms, ok := r.integer(64)
		if !ok {
			return nil, false
		}

		// as the release's decoder: in the local time zone
		return time.UnixMilli(ms), true

	case elemTypeNull:
		if !r.lit("null") {
			return nil, false
		}

		return types.Null, true

	case elemTypeInt:
		i, ok := r.integer(32)
		if !ok {
			return nil, false
		}

		return int32(i), true

	case elemTypeLong:
		return r.integer(64)
	}

	return nil, false
}

// integer reads a decimal integer of the given size.
func (r *canonReader) integer(bits int) (int64, bool) {
	n, ok := r.number()
	if !ok {
		return 0, false
	}

	i, err := strconv.ParseInt(string(n), 10, bits)
	if err != nil {
		return 0, false
	}

	return i, true
}
