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

// This file is not in FerretDB v1.24.2: factorywire's change 6 (see
// third_party/ferretdb/README.md). Marshal wrote every key and value, and
// the schema, through encoding/json's reflection into a new buffer per
// element. The functions below append the same bytes to one slice; where a
// value is not of the common kinds (a string that needs escaping, a float
// that is not finite, binary data, a regex, a timestamp) they use the
// release's encoder for it, so the result is the release's for every input.
// append_test.go holds the release's schema encoder and compares the two.

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
)

// appendMarshal appends what Marshal returns for d.
func appendMarshal(b []byte, d *types.Document) ([]byte, error) {
	keys, values := docFields(d)

	b = append(b, `{"$s":`...)
	b = appendSchema(b, keys, values)

	var err error

	for i, key := range keys {
		// the release writes the top level's keys as they are, unescaped
		b = append(b, ',', '"')
		b = append(b, key...)
		b = append(b, '"', ':')

		if b, err = appendValue(b, values[i]); err != nil {
			return nil, err
		}
	}

	return append(b, '}'), nil
}

// docFields returns d's keys and values, and panics if a key is in d twice,
// as the release's encoder did (types.Document.Get).
func docFields(d *types.Document) ([]string, []any) {
	if key, dup := d.DuplicateKey(); dup {
		panic("types.Document.Get: key is duplicated: " + key)
	}

	return d.Keys(), d.Values()
}

// appendSchema appends the schema of a document with the given keys and
// values (marshalSchemaForDoc's bytes).
func appendSchema(b []byte, keys []string, values []any) []byte {
	if len(keys) == 0 {
		return append(b, '{', '}')
	}

	b = append(b, `{"p":{`...)

	for i, key := range keys {
		if i > 0 {
			b = append(b, ',')
		}

		b = appendString(b, key)
		b = append(b, ':')
		b = appendElem(b, values[i])
	}

	b = append(b, `},"$k":[`...)

	for i, key := range keys {
		if i > 0 {
			b = append(b, ',')
		}

		b = appendString(b, key)
	}

	return append(b, ']', '}')
}

// appendElem appends the schema element of v (marshalElemForSingleValue's
// bytes).
func appendElem(b []byte, v any) []byte {
	switch v := v.(type) {
	case *types.Document:
		keys, values := docFields(v)

		b = append(b, `{"t":"object","$s":`...)
		b = appendSchema(b, keys, values)

		return append(b, '}')

	case *types.Array:
		b = append(b, `{"t":"array","i":[`...)

		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}

			el, err := v.Get(i)
			if err != nil {
				panic(err)
			}

			b = appendElem(b, el)
		}

		return append(b, ']', '}')

	case float64:
		return append(b, `{"t":"double"}`...)
	case string:
		return append(b, `{"t":"string"}`...)
	case types.Binary:
		// a byte type: encoding/json writes it as a number
		b = append(b, `{"t":"binData","s":`...)
		b = strconv.AppendUint(b, uint64(v.Subtype), 10)

		return append(b, '}')

	case types.ObjectID:
		return append(b, `{"t":"objectId"}`...)
	case bool:
		return append(b, `{"t":"bool"}`...)
	case time.Time:
		return append(b, `{"t":"date"}`...)
	case types.NullType:
		return append(b, `{"t":"null"}`...)
	case types.Regex:
		b = append(b, `{"t":"regex","o":`...)
		b = appendString(b, v.Options)

		return append(b, '}')

	case int32:
		return append(b, `{"t":"int"}`...)
	case types.Timestamp:
		return append(b, `{"t":"timestamp"}`...)
	case int64:
		return append(b, `{"t":"long"}`...)
	}

	// as marshalElemForSingleValue
	panic(fmt.Sprintf("sjson.appendElem: unknown type %T", v))
}

// appendValue appends the SJSON of v (toSJSON(v).MarshalJSON's bytes).
func appendValue(b []byte, v any) ([]byte, error) {
	var err error

	switch v := v.(type) {
	case *types.Document:
		keys, values := docFields(v)

		b = append(b, '{')

		for i, key := range keys {
			if i > 0 {
				b = append(b, ',')
			}

			b = appendString(b, key)
			b = append(b, ':')

			if b, err = appendValue(b, values[i]); err != nil {
				return nil, err
			}
		}

		return append(b, '}'), nil

	case *types.Array:
		b = append(b, '[')

		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}

			el, err := v.Get(i)
			if err != nil {
				return nil, lazyerrors.Error(err)
			}

			if b, err = appendValue(b, el); err != nil {
				return nil, err
			}
		}

		return append(b, ']'), nil

	case float64:
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			return appendFloat(b, v), nil
		}

	case string:
		return appendString(b, v), nil

	case types.ObjectID:
		b = append(b, '"')
		b = hex.AppendEncode(b, v[:])

		return append(b, '"'), nil

	case bool:
		return strconv.AppendBool(b, v), nil

	case time.Time:
		return strconv.AppendInt(b, v.UnixMilli(), 10), nil

	case types.NullType:
		return append(b, "null"...), nil

	case int32:
		return strconv.AppendInt(b, int64(v), 10), nil

	case int64:
		return strconv.AppendInt(b, v, 10), nil
	}

	// binary data, a regex, a timestamp, a float that is not finite (an
	// error): the release's encoder
	res, err := toSJSON(v).MarshalJSON()
	if err != nil {
		return nil, lazyerrors.Error(err)
	}

	return append(b, res...), nil
}

// appendString appends s as encoding/json writes a string. A string of
// printable ASCII with nothing to escape (encoding/json escapes `"`, `\`
// and, for HTML, `<`, `>` and `&`) is written as it is; any other goes
// through encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			res, err := json.Marshal(s)
			if err != nil {
				// encoding/json does not fail on a string
				panic(err)
			}

			return append(b, res...)
		}
	}

	b = append(b, '"')
	b = append(b, s...)

	return append(b, '"')
}

// appendFloat appends a finite f as encoding/json writes a float64: the
// shortest decimal that reads back as f, in exponent form only below 1e-6
// or from 1e21 on, with an exponent of at least two digits but no leading
// zero.
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}

	b = strconv.AppendFloat(b, f, format, -1, 64)

	if format == 'e' {
		// e-09 → e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}

	return b
}
