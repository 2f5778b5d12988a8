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

// factorywire's change 6 (see third_party/ferretdb/README.md): Marshal
// must return the release's bytes (release_test.go), fail where it failed
// and panic where it panicked, for every document.

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/must"
)

// outcome is what an encoder did with a document.
type outcome struct {
	b      []byte
	err    bool
	panics bool
}

func (o outcome) String() string {
	switch {
	case o.panics:
		return "panic"
	case o.err:
		return "error"
	}

	return fmt.Sprintf("%q", o.b)
}

func encode(marshal func(*types.Document) ([]byte, error), d *types.Document) (o outcome) {
	defer func() {
		if recover() != nil {
			o = outcome{panics: true}
		}
	}()

	b, err := marshal(d)

	return outcome{b: b, err: err != nil}
}

// sameAsRelease fails t unless Marshal does with d what the release did.
func sameAsRelease(t testing.TB, d *types.Document) {
	t.Helper()

	want, got := encode(releaseMarshal, d), encode(Marshal, d)
	if want.panics != got.panics || want.err != got.err || !bytes.Equal(want.b, got.b) {
		t.Fatalf("Marshal:\n got  %v\n want %v (the release's)", got, want)
	}
}

func doc(pairs ...any) *types.Document {
	return must.NotFail(types.NewDocument(pairs...))
}

func arr(values ...any) *types.Array {
	return must.NotFail(types.NewArray(values...))
}

func TestMarshalAsRelease(t *testing.T) {
	oid := types.ObjectID{0x65, 0x0f, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3}
	at := time.Date(2026, 12, 7, 8, 0, 0, 123_456_789, time.UTC)

	floats := []float64{
		0, math.Copysign(0, -1), 1, -1, 0.1, 123.456, 1e-6, 9.99e-7, 1e-7, -1e-9, 1.5e-300, 5e-324,
		1e20, 1e21, -1e21, 123456789e15, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64,
		float64(math.MaxInt64), 1.0 / 3,
	}

	cases := map[string]*types.Document{
		"empty": doc(),
		"sample": doc(
			"_id", oid,
			"ts", at,
			"meta", doc("f", "plant1", "c", "press", "d", "press-0001"),
			"seq", int64(42),
			"src", doc("p", int32(3), "o", int64(1_000_000)),
			"fields", doc("temperature_c", 21.5, "count", int64(-7), "running", true),
		),
		"every kind": doc(
			"_id", "a string id",
			"d", 1.25,
			"s", "text",
			"o", doc(),
			"a", arr(),
			"bin", types.Binary{Subtype: types.BinaryUser, B: []byte{0, 1, 2, 0xff}},
			"bin0", types.Binary{B: []byte{}},
			"oid", oid,
			"t", true,
			"f", false,
			"date", time.UnixMilli(-62_135_596_800_000).UTC(),
			"null", types.Null,
			"re", types.Regex{Pattern: `^a"b\c<d>$`, Options: "imsx"},
			"i", int32(math.MinInt32),
			"ts", types.Timestamp(math.MaxUint64),
			"l", int64(math.MinInt64),
		),
		"nested": doc(
			"a", arr(doc("x", arr(arr(), arr(int32(1), "two", doc("three", 3.0)))), types.Null, oid),
			"o", doc("p", doc("q", doc("r", arr(doc())))),
		),
		"keys to escape": doc(
			"plain", doc(
				`quote"`, 1.0, `back\slash`, 2.0, "<html>&", 3.0, "tab\tnew\nline\x00\x1f", 4.0,
				"é ü 中文", 5.0, "\u2028\u2029", 6.0, "", 8.0, "$dollar.dot", 9.0,
			),
		),
		"strings to escape": doc(
			"s", arr(`"`, `\`, "<", ">", "&", "\x7f", "\u00e9", "\u2028", "\x00", "\b\f\r", "", "ok"),
		),
		// written as U+FFFD by both (so not read back as it was)
		"invalid UTF-8":              doc("s", doc("bad \xff\xfe key", "bad \xff value", "\xc3", arr("\xe2\x80"))),
		"top-level key with a quote": doc(`a"b`, 1.0),
		"duplicate key":              doc("a", 1.0, "a", 2.0),
		"nested duplicate key":       doc("a", doc("b", 1.0, "b", 2.0)),
		"duplicate key in an array":  doc("a", arr(doc("b", 1.0, "b", 2.0))),
		"NaN":                        doc("x", math.NaN()),
		"+Inf in an array":           doc("x", arr(1.0, math.Inf(1))),
		"-Inf nested":                doc("x", doc("y", math.Inf(-1))),
	}

	for i, f := range floats {
		cases[fmt.Sprintf("float %d (%g)", i, f)] = doc("x", f, "y", arr(-f), "z", doc("w", f))
	}

	for name, d := range cases {
		t.Run(name, func(t *testing.T) {
			sameAsRelease(t, d)
		})
	}

	// the cases that must fail or panic do
	for name, want := range map[string]outcome{
		"duplicate key":        {panics: true},
		"nested duplicate key": {panics: true},
		"NaN":                  {err: true},
		"+Inf in an array":     {err: true},
	} {
		if got := encode(Marshal, cases[name]); got.panics != want.panics || got.err != want.err {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}

	// and what Marshal writes, Unmarshal reads back: the same document,
	// which Marshal writes the same again
	for _, name := range []string{"sample", "every kind", "nested", "keys to escape", "strings to escape"} {
		b := must.NotFail(Marshal(cases[name]))

		back, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("%s: Unmarshal: %v", name, err)
		}

		if again := must.NotFail(Marshal(back)); !bytes.Equal(again, b) {
			t.Errorf("%s: read back and written again\n%s\nwritten first\n%s", name, again, b)
		}
	}
}

// FuzzMarshal: Marshal does what the release did with documents of every
// kind of value built from the fuzzer's key, string and numbers.
func FuzzMarshal(f *testing.F) {
	f.Add("k", "v", 1.5, int64(7), byte(0))
	f.Add(`a"b`, "<\xff>", -1e-7, int64(math.MinInt64), byte(0x80))
	f.Add("n", "\u2028", 1e21, int64(-1), byte(5))
	f.Add("", "", 0.0, int64(0), byte(0xff))
	f.Add("x", "\\", math.NaN(), int64(1), byte(1))

	f.Fuzz(func(t *testing.T, key, s string, fl float64, n int64, sub byte) {
		var oid types.ObjectID
		copy(oid[:], s)

		inner := doc(
			key, fl,
			"arr", arr(s, n, int32(n), fl, true, types.Null, time.UnixMilli(n), oid, doc(key, s)),
		)

		sameAsRelease(t, doc(
			"_id", oid,
			key, s,
			"n", inner,
			"b", types.Binary{Subtype: types.BinarySubtype(sub), B: []byte(s)},
			"r", types.Regex{Pattern: s, Options: key},
			"t", types.Timestamp(n),
		))
	})
}

// sinkDoc is a document as factorywire's sink stores a sample: meta, the
// record's coordinates and 17 fields.
func sinkDoc() *types.Document {
	fields := must.NotFail(types.NewDocument())
	for i := 0; i < 17; i++ {
		if i%4 == 3 {
			fields.Set(fmt.Sprintf("counter_%02d", i), int64(i*1000+7))
		} else {
			fields.Set(fmt.Sprintf("register_%02d", i), float64(i)*1.375+0.1)
		}
	}

	return doc(
		"_id", types.ObjectID{0x65, 0x0f, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3},
		"ts", time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC),
		"meta", doc("f", "plant1", "c", "press", "d", "press-0001"),
		"seq", int64(123456),
		"src", doc("p", int32(3), "o", int64(1_000_000)),
		"fields", fields,
	)
}

// BenchmarkMarshal compares Marshal with the release's encoder on a
// document as the sink stores it.
func BenchmarkMarshal(b *testing.B) {
	d := sinkDoc()

	for name, marshal := range map[string]func(*types.Document) ([]byte, error){
		"release": releaseMarshal,
		"append":  Marshal,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()

			for b.Loop() {
				if _, err := marshal(d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
