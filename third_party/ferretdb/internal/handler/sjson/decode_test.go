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

// factorywire's change 7 (see third_party/ferretdb/README.md): what
// unmarshalCanonical accepts, the release's decoder (unmarshalRelease)
// decodes to the same document; what Marshal writes of the common kinds it
// accepts; anything else it declines, and Unmarshal returns the release's
// result.

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// decodesAsRelease fails t unless unmarshalCanonical either declines data
// or returns what the release's decoder returns for it, and Unmarshal
// returns the release's result. It reports whether unmarshalCanonical
// accepted data.
func decodesAsRelease(t testing.TB, data []byte) bool {
	t.Helper()

	want, wantErr := unmarshalRelease(data)

	got, ok := unmarshalCanonical(data)
	if ok && (wantErr != nil || !reflect.DeepEqual(got, want)) {
		t.Fatalf("unmarshalCanonical(%q):\n got  %#v\n want %#v, %v (the release's)", data, got, want, wantErr)
	}

	res, err := Unmarshal(data)
	if (err != nil) != (wantErr != nil) || !reflect.DeepEqual(res, want) {
		t.Fatalf("Unmarshal(%q):\n got  %#v, %v\n want %#v, %v (the release's)", data, res, err, want, wantErr)
	}

	return ok
}

// canonicalDocs returns documents of the kinds unmarshalCanonical reads.
func canonicalDocs() map[string]*types.Document {
	oid := types.ObjectID{0x65, 0x0f, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3}

	return map[string]*types.Document{
		"empty": doc(),
		"sink":  sinkDoc(),
		"every kind": doc(
			"_id", "an id",
			"d", -1.25e-9,
			"big", 1e300,
			"negzero", math.Copysign(0, -1),
			"s", "text é 中文",
			"o", doc(),
			"a", arr(),
			"oid", oid,
			"t", true,
			"f", false,
			"date", time.UnixMilli(-62_135_596_800_123),
			"null", types.Null,
			"i", int32(math.MinInt32),
			"l", int64(math.MaxInt64),
		),
		"nested": doc(
			"a", arr(doc("x", arr(arr(), arr(int32(1), "two", doc("three", 3.0)))), types.Null, oid),
			"o", doc("p", doc("q", doc("r", arr(doc())))),
		),
		"rollup": doc(
			"_id", "press-0001@2026-12-07T08:00:00Z",
			"meta", doc("device", "press-0001"),
			"t", time.UnixMilli(1_796_630_400_000),
			"n", int64(600),
			"rev", int64(3),
			"fields", doc(
				"temperature_c", doc("min", 20.5, "max", 23.25, "sum", 13_200.5, "n", int64(600)),
				"pressure_bar", doc("min", 1.0, "max", 1.5, "sum", 750.0, "n", int64(600)),
			),
		),
	}
}

func TestUnmarshalAsRelease(t *testing.T) {
	for name, d := range canonicalDocs() {
		t.Run(name, func(t *testing.T) {
			data := must.NotFail(Marshal(d))
			if !decodesAsRelease(t, data) {
				t.Fatalf("unmarshalCanonical declined what Marshal wrote: %s", data)
			}

			// every shorter prefix is declined, and fails as with the release
			for n := 0; n < len(data); n++ {
				if decodesAsRelease(t, data[:n]) {
					t.Fatalf("unmarshalCanonical accepted %d of %d bytes: %s", n, len(data), data[:n])
				}
			}
		})
	}

	// kinds it leaves to the release's decoder
	for name, d := range map[string]*types.Document{
		"binary":                    doc("b", types.Binary{Subtype: types.BinaryUser, B: []byte{1, 2}}),
		"regex":                     doc("r", types.Regex{Pattern: "^a", Options: "i"}),
		"timestamp":                 doc("t", types.Timestamp(42)),
		"escaped":                   doc("s", "a\"b"),
		"escaped key in a document": doc("o", doc("a<b", 1.0)),
		"U+2028":                    doc("s", "\u2028"),
	} {
		if decodesAsRelease(t, must.NotFail(Marshal(d))) {
			t.Errorf("%s: unmarshalCanonical accepted it", name)
		}
	}

	// nesting deeper than it reads: declined, and decoded as the release
	// decodes it
	deep := doc("x", 1.0)
	for range canonMaxDepth {
		deep = doc("d", arr(deep))
	}

	if decodesAsRelease(t, must.NotFail(Marshal(deep))) {
		t.Errorf("%d levels of nesting: unmarshalCanonical accepted them", 2*canonMaxDepth)
	}

	if !decodesAsRelease(t, must.NotFail(Marshal(doc("d", arr(doc("d", arr(doc("x", 1.0)))))))) {
		t.Errorf("4 levels of nesting: unmarshalCanonical declined them")
	}

	// documents Marshal never writes: declined, and Unmarshal does what
	// the release did (decodes some, rejects others)
	sink := string(must.NotFail(Marshal(sinkDoc())))
	for name, data := range map[string]string{
		"space after a colon":  strings.Replace(sink, `"seq":`, `"seq": `, 1),
		"trailing newline":     sink + "\n",
		"trailing garbage":     sink + "x",
		"keys swapped":         `{"$s":{"p":{"a":{"t":"int"},"b":{"t":"int"}},"$k":["a","b"]},"b":2,"a":1}`,
		"schema keys swapped":  `{"$s":{"p":{"b":{"t":"int"},"a":{"t":"int"}},"$k":["a","b"]},"a":1,"b":2}`,
		"escaped key":          `{"$s":{"p":{"a":{"t":"int"}},"$k":["\u0061"]},"a":1}`,
		"escaped string":       `{"$s":{"p":{"a":{"t":"string"}},"$k":["a"]},"a":"\u0061"}`,
		"upper-case ObjectID":  `{"$s":{"p":{"a":{"t":"objectId"}},"$k":["a"]},"a":"650F1A2B3C4D5E6F708192A3"}`,
		"short ObjectID":       `{"$s":{"p":{"a":{"t":"objectId"}},"$k":["a"]},"a":"650f"}`,
		"plus sign":            `{"$s":{"p":{"a":{"t":"double"}},"$k":["a"]},"a":+1}`,
		"1.0 for a double":     `{"$s":{"p":{"a":{"t":"double"}},"$k":["a"]},"a":1.0}`,
		"1.0 for a long":       `{"$s":{"p":{"a":{"t":"long"}},"$k":["a"]},"a":1.0}`,
		"int overflow":         `{"$s":{"p":{"a":{"t":"int"}},"$k":["a"]},"a":2147483648}`,
		"double overflow":      `{"$s":{"p":{"a":{"t":"double"}},"$k":["a"]},"a":1e400}`,
		"leading zero":         `{"$s":{"p":{"a":{"t":"long"}},"$k":["a"]},"a":01}`,
		"null for a double":    `{"$s":{"p":{"a":{"t":"double"}},"$k":["a"]},"a":null}`,
		"string for a bool":    `{"$s":{"p":{"a":{"t":"bool"}},"$k":["a"]},"a":"true"}`,
		"duplicate key":        `{"$s":{"p":{"a":{"t":"int"},"a":{"t":"int"}},"$k":["a","a"]},"a":1,"a":2}`,
		"nested duplicate key": `{"$s":{"p":{"o":{"t":"object","$s":{"p":{"a":{"t":"int"},"a":{"t":"int"}},"$k":["a","a"]}}},"$k":["o"]},"o":{"a":1,"a":2}}`,
		"array too long":       `{"$s":{"p":{"a":{"t":"array","i":[{"t":"int"}]}},"$k":["a"]},"a":[1,2]}`,
		"array too short":      `{"$s":{"p":{"a":{"t":"array","i":[{"t":"int"},{"t":"int"}]}},"$k":["a"]},"a":[1]}`,
		"unknown type":         `{"$s":{"p":{"a":{"t":"decimal"}},"$k":["a"]},"a":1}`,
		"schema without $k":    `{"$s":{"p":{"a":{"t":"int"}}},"a":1}`,
		"missing value":        `{"$s":{"p":{"a":{"t":"int"}},"$k":["a"]}}`,
		"extra value":          `{"$s":{"p":{"a":{"t":"int"}},"$k":["a"]},"a":1,"b":2}`,
		"invalid UTF-8":        "{\"$s\":{\"p\":{\"a\":{\"t\":\"string\"}},\"$k\":[\"a\"]},\"a\":\"\xff\"}",
		"not JSON":             `not json`,
		"empty":                ``,
	} {
		if decodesAsRelease(t, []byte(data)) {
			t.Errorf("%s: unmarshalCanonical accepted %s", name, data)
		}
	}
}

// FuzzUnmarshal: for any bytes, unmarshalCanonical declines them or
// returns what the release's decoder returns, and Unmarshal returns the
// release's result.
func FuzzUnmarshal(f *testing.F) {
	for _, d := range canonicalDocs() {
		f.Add(must.NotFail(Marshal(d)))
	}

	f.Add([]byte(`{"$s":{"p":{"a":{"t":"double"}},"$k":["a"]},"a":1.0}`))
	f.Add([]byte(`{"$s":{"p":{"b":{"t":"binData","s":128}},"$k":["b"]},"b":"AQI="}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		decodesAsRelease(t, data)
	})
}

// BenchmarkUnmarshal compares Unmarshal with the release's decoder on a
// sample as the sink stores it and on one of its rollups.
func BenchmarkUnmarshal(b *testing.B) {
	docs := canonicalDocs()

	for _, kind := range []string{"sink", "rollup"} {
		data := must.NotFail(Marshal(docs[kind]))

		for name, unmarshal := range map[string]func([]byte) (*types.Document, error){
			"release":   unmarshalRelease,
			"canonical": Unmarshal,
		} {
			b.Run(fmt.Sprintf("%s/%s", kind, name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(data)))

				for b.Loop() {
					if _, err := unmarshal(data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
