package devices

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// sameDecode fails t unless Decoder d (nil: DecodeSample) decodes data
// exactly as the encoding/json reference does: an equal Sample, or an
// error of the same type naming the same key with the same message. It
// also checks that decoding leaves data as it was.
func sameDecode(t *testing.T, what string, d *Decoder, data []byte) {
	t.Helper()
	want, wantErr := decodeSampleStd(data)
	before := bytes.Clone(data)
	var (
		got Sample
		err error
	)
	if d == nil {
		got, err = DecodeSample(data)
	} else {
		got, err = d.Decode(data)
	}
	if !bytes.Equal(data, before) {
		t.Fatalf("%s changed its input %q to %q", what, before, data)
	}
	switch {
	case wantErr == nil && err != nil:
		t.Fatalf("%s: %q: error %v, want the sample %+v", what, data, err, want)
	case wantErr == nil:
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: %q:\ngot  %#v\nwant %#v", what, data, got, want)
		}
		return
	case err == nil:
		t.Fatalf("%s: %q: decoded %+v, want error %v", what, data, got, wantErr)
	}
	switch w := wantErr.(type) {
	case *VersionError:
		if g, ok := err.(*VersionError); !ok || *g != *w {
			t.Fatalf("%s: %q: error %T %v, want %T %v", what, data, err, err, wantErr, wantErr)
		}
	case *SampleError:
		if g, ok := err.(*SampleError); !ok || g.Key != w.Key {
			t.Fatalf("%s: %q: error %T %v, want %T naming key %q: %v", what, data, err, err, wantErr, w.Key, wantErr)
		}
	default:
		t.Fatalf("reference error %T %v is neither a *VersionError nor a *SampleError", wantErr, wantErr)
	}
	if err.Error() != wantErr.Error() {
		t.Fatalf("%s: %q: error message\n%s\nwant\n%s", what, data, err, wantErr)
	}
}

// decoderBase is a version 2 sample as a gateway writes it, with every
// key, the base of many seeds.
const decoderBase = `{"v":2,"factory":"plant-a","device":"press-07","class":"press","ts":"2026-12-01T01:02:03.456Z","seq":42,` +
	`"tags":{"line":"line-1"},"units":{"pressure":"bar","temperature":"°C"},` +
	`"fields":{"cycles":1234567,"mode":"auto","pressure":12.5,"running":true},"errors":{"temperature":"modbus exception 2 (illegal data address)"}}`

// decoderSeeds are records that probe the corners of the schema and of
// JSON where a hand-written decoder could part ways with encoding/json.
func decoderSeeds() []string {
	const head1 = `{"v":1,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,`
	const head2 = `{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,`
	fields := func(f string) string { return head2 + `"fields":{` + f + `}}` }
	seeds := []string{
		decoderBase,
		// Not an object, empty, truncated.
		``, ` `, "\t\r\n", `x`, `"abc"`, `"a\"b\u00e9\ud800"`, `123`, `-`, `1x`, `-0`, `1e400`, `true`, `tru`, `null`, `[]`, `[1]`,
		`]`, `}`, `,`, `:`, `{`, `{ `, `{"`, `{"v`, `{"v"`, `{"v" `, `{"v":`, `{"v": `, `{"v":1`, `{"v":1 `, `{"v":1,`, `{"v":1, `,
		`{"v":tr`, `{"v":-`, `{"v":1.`, `{"v":1e`, `{"v":1e+`, `{"v":"ab`, `{"v":"a\`, `{"v":"\u12`, `{"v":{`, `{"v":[`, `{"v":{"a"`, `{"v":{"a":`,
		`{"v":[1,`, `{"v":[1`,
		// Syntax around keys and members.
		`{,}`, `{:}`, `{]`, `{[`, `{{`, `{1:2}`, `{"v":1,}`, `{"v":1,]`, `{"v":1,,"x":2}`, `{"v":1 "x":2}`, `{"v":1]`, `{"v":1:}`,
		`{"v"1}`, `{"v":}`, `{"v":,}`, `{"v":]}`, `{"v":01}`, `{"v":-01}`, `{"v":1.5.3}`, `{"v":1e5e}`, `{"v":truex}`, `{"v":nul}`,
		`{"v":"a"x}`, `{"v":[1 2]}`, `{"v":[1,]}`, `{"v":{"a" 1}}`, `{"v":{"a":1 "b":2}}`, `{"v":{"a":1,}}`, `{"v":{1:2}}`,
		`{"v":[01]}`, `{"v":[1.x]}`, `{"v":[-x]}`, `{"v":[1ex]}`, `{"v":[tx]}`, `{"v":[fals]}`, `{"v":[nx]}`,
		`{"v":"\x"}`, `{"v":"\u12G4"}`, "{\"v\":\"a\tb\"}", "{\"v\":\"a\x00\"}", "{\"v\x01\":1}", `{"v":1}}`, `{"v":1} x`, `{"v":1} {}`,
		"\xef\xbb\xbf{}", `{"v":2} `, "{\"v\":2}\n\t ",
		// Versions.
		`{"v":0}`, `{"v":3,"extra":true}`, `{"v":1.0}`, `{"v":1e0}`, `{"v":-1}`, `{"v":"2"}`, `{"v":18446744073709551616}`,
		`{"v":18446744073709551615}`, `{"v":null}`, `{"v":{}}`, `{"v": [ 1 , 2 ] }`, `{"\u0076":2}`, `{"v":2,"v":3}`, `{"v":3,"v":3}`,
		`{"v":3} x`, `{"v":3,"x":tru}`, `{"factory":"f"}`, `{}`,
		// Keys: unknown, repeated, spelled with escapes, version 1 without tags and units.
		head1 + `"fields":{},"tags":{"a":"b"},"a":1}`, head1 + `"fields":{},"units":{},"z":1}`, head1 + `"fields":{},"tags":{},"units":{}}`,
		head2 + `"fields":{},"x":1,"x":2}`, head2 + `"fields":{},"\u0066ields":{}}`, head2 + `"fields":{},"fields":{"a":1}}`,
		head2 + `"fields":{"$":1},"fields":{}}`, head2 + `"fields":{},"fields":[}`, head2 + `"fields":{},"Fields":{}}`,
		head2 + `"fields":{},"":0}`, head2 + `"fields":{},"\ud800":0,"\ufffd":1}`, "{\"v\":2,\"f\xffactory\":1}",
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","seq":1,"fields":{}}`,
		`{"v":2,"seq":1,"ts":"2026-01-01T00:00:00Z","class":"c","device":"d","factory":"f","fields":{},"zz":1,"aa":2}`,
		// Whitespace everywhere.
		" \t\n\r{ \t\n\r\"v\" \t\n\r: \t\n\r2 \t\n\r, \"factory\" : \"f\" , \"device\" : \"d\" , \"class\" : \"c\" , \"ts\" : \"2026-01-01T00:00:00Z\" , \"seq\" : 1 , " +
			"\"tags\" : { \"a\" : \"b\" } , \"units\" : { \"x\" : \"V\" } , \"fields\" : { \"x\" : 1 , \"y\" : [ ] } , \"errors\" : { } } \n",
		" \t\n\r{ \"v\" : 2 , \"factory\" : \"f\" , \"device\" : \"d\" , \"class\" : \"c\" , \"ts\" : \"2026-01-01T00:00:00Z\" , \"seq\" : 1 , " +
			"\"fields\" : { \"x\" : 1 , \"y\" : \"s\" , \"z\" : false } , \"errors\" : { \"w\" : \"e\" } } \n",
		// Names.
		head2[:len(`{"v":2,`)] + `"factory":"F","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"dlq","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"-d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d\u0041","class":"c-","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"` + strings.Repeat("d", 65) + `","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":["f"],"device":7,"class":null,"ts":"2026-01-01T00:00:00Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":{ "a" : [1, 2] },"class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f\u00e9","device":"d","class":"c","ts":"2026-01-01T00:00:00Z","seq":1,"fields":{}}`,
		// Times.
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T1:00:00Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00,5Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00+24:00","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00-23:60","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-02-29T00:00:00Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"2024-02-29T23:59:59.999999999-12:00","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01t00:00:00z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:60Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00.Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00.1234567890123Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"\u0032026-01-01T00:00:00Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"9999-12-31T23:59:59-00:01","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"0000-01-01T00:00:00Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00+01:30","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":"2026-01-01T00:00:00 Z","seq":1,"fields":{}}`,
		`{"v":2,"factory":"f","device":"d","class":"c","ts":1,"seq":1,"fields":{}}`,
		// Seq.
		head2[:len(head2)-len(`"seq":1,`)] + `"seq":-0,"fields":{}}`,
		head2[:len(head2)-len(`"seq":1,`)] + `"seq":0,"fields":{}}`,
		head2[:len(head2)-len(`"seq":1,`)] + `"seq":18446744073709551616,"fields":{}}`,
		head2[:len(head2)-len(`"seq":1,`)] + `"seq":"1","fields":{}}`,
		head2[:len(head2)-len(`"seq":1,`)] + `"seq":{ "a" : 1 },"fields":{}}`,
		// Fields: numbers, escapes, values that are not values, names.
		fields(`"i":-9223372036854775808,"j":-9223372036854775809,"u":18446744073709551615`),
		fields(`"u":18446744073709551616`), fields(`"u":99999999999999999999999999`), fields(`"z":-0,"y":-0.0,"x":0e0,"w":1E+2,"v":1e-400`),
		fields(`"f":1e400`), fields(`"f":-1e400`), fields(`"f":1.7976931348623157e308,"g":4.9e-324,"h":123456789012345678901234567890`),
		fields(`"s":"\ud83d\ude00 \ud800 \udc00 \ud800\u0041 \ud800\ud800\udc00 \ud83d\u0000 é \/\b\f\n\r\t\\\""`),
		fields("\"s\":\"\xff\xfe\xed\xa0\x80 \xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\""), fields(`"s":""`),
		fields(`"n":null`), fields(`"o":{"a":1}`), fields(`"a":[1,2]`), fields(`"a":1,"a":2`), fields(`"a":1,"b":2,"a":null`),
		fields(`"$a":1`), fields(`"A":1`), fields(`"a.b":1`), fields(`"":1`), fields(`"\u0061":1,"a":2`), fields(`"a\u0000":1`),
		fields(`"` + strings.Repeat("a", 64) + `":1,"` + strings.Repeat("a", 65) + `":2`),
		fields(`"$a":1,"b":tru`), fields(`"a":null,"b":[1,}`), fields(`"a":{},"b":"\q"`), fields(`"a":1e400,"b":01`),
		fields(`"a":1,"b":2,"a":3,"$c":4`), fields(`"a":"x","a":{}`),
		head2 + `"fields":[]}`, head2 + `"fields":null}`, head2 + `"fields":"x"}`, head2 + `"fields":1e400}`, head2 + `"fields":-0.0}`,
		head2 + `"fields":true}`, head2 + `"fields":{"a":1},"errors":{"a":"e"}}`,
		// Errors.
		head2 + `"fields":{},"errors":{"a":"e","a":"f"}}`, head2 + `"fields":{},"errors":{"a":""}}`,
		head2 + `"fields":{},"errors":{"a":1}}`, head2 + `"fields":{},"errors":{"a":1e400}}`, head2 + `"fields":{},"errors":{"a":null}}`,
		head2 + `"fields":{},"errors":{"a":true}}`, head2 + `"fields":{},"errors":{"a":{"b":1}}}`, head2 + `"fields":{},"errors":{"a":[]}}`,
		head2 + `"fields":{},"errors":{"$":"e"}}`, head2 + `"fields":{},"errors":[]}`, head2 + `"fields":{},"errors":null}`,
		head2 + `"fields":{},"errors":"x"}`, head2 + `"fields":{},"errors":12}`, head2 + `"errors":{"b":"e","a":"e"},"fields":{"a":1}}`,
		head2 + `"errors":{"b":"e","a":"e","b":"f"},"fields":{"a":1}}`, head2 + `"errors":{"a":"e","b":""},"fields":{"a":1}}`,
		head2 + `"errors":{"b":"\ud800","c":"\u0000"},"fields":{"a":1}}`, head2 + `"errors":{"b":"e","c":"e"},"fields":{"a":null}}`,
		// Tags and units.
		head2 + `"tags":{"a":1e400},"fields":{}}`, head2 + `"tags":{"a":1.50},"fields":{}}`, head2 + `"tags":{"a":1e21},"fields":{}}`,
		head2 + `"tags":{"a":12345678901234567890},"fields":{}}`, head2 + `"tags":{"a":-0},"fields":{}}`, head2 + `"tags":{"a":1e-7},"fields":{}}`,
		head2 + `"tags":12345678901234567890,"fields":{}}`, head2 + `"tags":1e400,"fields":{}}`, head2 + `"units":-1,"fields":{}}`,
		head2 + `"tags":"x","fields":{}}`, head2 + `"tags":true,"fields":{}}`, head2 + `"units":[],"fields":{}}`,
		head2 + `"tags":{"a":"b","a":"c"},"fields":{}}`, head2 + `"tags":{"A":"b"},"fields":{}}`, head2 + `"tags":{"a":""},"fields":{}}`,
		head2 + `"tags":{"a":"` + strings.Repeat("é", 129) + `"},"fields":{}}`, head2 + `"tags":{"a":"\ud800"},"fields":{}}`,
		head2 + `"tags":{"a":"b","A":3},"fields":{}}`, head2 + `"tags":{"Z":{},"a":"b"},"fields":{}}`,
		head2 + `"tags":{` + manyTags(MaxTags, `"x"`) + `},"fields":{}}`, head2 + `"tags":{` + manyTags(MaxTags+1, `"x"`) + `},"fields":{}}`,
		head2 + `"tags":{` + manyTags(MaxTags, `"x"`) + `,"t00":"y"},"fields":{}}`, head2 + `"tags":{` + manyTags(MaxTags, `"x"`) + `,"T":"y"},"fields":{}}`,
		head2 + `"tags":{` + manyTags(MaxTags+1, `"x"`) + `,"t00":"y"},"fields":{}}`,
		head2 + `"units":{"a":"V","a":"V"},"fields":{}}`, head2 + `"units":{"$a":"V"},"fields":{}}`, head2 + `"units":{"a":""},"fields":{}}`,
		head2 + `"units":{"a":"` + strings.Repeat("m", 65) + `"},"fields":{}}`, head2 + `"units":{"a":"\u00b0C","b":"m\u00b3/h"},"fields":{}}`,
		head2 + `"units":{"a":null},"fields":{}}`, head2 + `"units":{"a":["V"]},"fields":{}}`, head2 + `"units":{"a":"V"},"tags":{"b":false},"fields":{}}`,
		// Order of problems: the first in DecodeSample's order wins.
		`{"v":2,"factory":"F","device":"-","class":"C","ts":"x","seq":-1,"tags":{"A":1},"units":{"$":1},"fields":{"$":null},"errors":{"$":1}}`,
		`{"errors":{"$":1},"fields":{"$":null},"units":{"$":1},"tags":{"A":1},"seq":-1,"ts":"x","class":"C","device":"-","factory":"F","v":2}`,
		`{"errors":{"$":1},"fields":{"$":null},"units":{"$":1},"tags":{"A":1},"seq":-1,"ts":"x","class":"C","device":"-","factory":"F","v":2,"q":1}`,
		`{"errors":{"$":1},"fields":{"$":null},"units":{"$":1},"tags":{"A":1},"seq":-1,"ts":"x","class":"C","device":"-","factory":"F","v":4,"q":1}`,
		`{"errors":{"$":1},"fields":{"$":null},"units":{"$":1},"tags":{"A":1},"seq":-1,"ts":"x","class":"C","device":"-","factory":"F","v":2,"q":[}`,
	}
	// Nesting as deep as encoding/json allows, and one deeper.
	for _, n := range []int{maxNestingDepth - 1, maxNestingDepth, maxNestingDepth + 1} {
		seeds = append(seeds,
			head2+`"fields":{},"x":`+strings.Repeat("[", n)+strings.Repeat("]", n)+`}`,
			head2+`"fields":{"a":`+strings.Repeat(`{"a":`, n-1)+`1`+strings.Repeat("}", n-1)+`}}`,
			head2+`"tags":{"a":`+strings.Repeat("[", n-1)+strings.Repeat("]", n-1)+`},"fields":{}}`,
		)
	}
	return seeds
}

// FuzzDecodeSampleAgainstStd checks that DecodeSample and a long-lived
// Decoder, whose caches hold what earlier inputs left there, decode every
// input exactly as the encoding/json reference does (sameDecode), twice
// in a row for the Decoder so that the second decode comes from its
// caches.
//
//	go test -run '^$' -fuzz FuzzDecodeSampleAgainstStd -fuzztime 5m ./devices/
func FuzzDecodeSampleAgainstStd(f *testing.F) {
	for _, seed := range sampleSeeds() {
		f.Add(seed)
	}
	for _, seed := range decoderSeeds() {
		f.Add([]byte(seed))
	}
	var (
		mu  sync.Mutex
		dec Decoder
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		sameDecode(t, "DecodeSample", nil, data)
		mu.Lock()
		defer mu.Unlock()
		sameDecode(t, "Decoder.Decode", &dec, data)
		sameDecode(t, "Decoder.Decode again", &dec, data)
	})
}

// TestDecoderAgainstStdVariants compares the decoders on systematic
// damage to a good record: every prefix, every byte left out, and a
// space or a stray byte put before every byte.
func TestDecoderAgainstStdVariants(t *testing.T) {
	var dec Decoder
	base := []byte(decoderBase)
	check := func(data []byte) {
		t.Helper()
		sameDecode(t, "DecodeSample", nil, data)
		sameDecode(t, "Decoder.Decode", &dec, data)
	}
	for i := 0; i <= len(base); i++ {
		check(base[:i])
		if i < len(base) {
			check(append(bytes.Clone(base[:i]), base[i+1:]...))
		}
		for _, b := range []byte(" \"\\,:{}[]0-e.x\x00\xff") {
			check(append(append(bytes.Clone(base[:i]), b), base[i:]...))
		}
	}
}

// TestDecoderSamplesIndependent decodes records with one Decoder and
// checks that the samples it returned before stay as they were, whatever
// it decodes next, including after its caches fill and are emptied, and
// whatever happens to the input bytes after Decode returns.
func TestDecoderSamplesIndependent(t *testing.T) {
	record := func(i int) []byte {
		s := exampleSample()
		s.Seq = uint64(i)
		s.Device = fmt.Sprintf("press-%04d", i)
		s.Tags = map[string]string{"line": fmt.Sprintf("line-%d", i), "asset_id": "P-\"1107\""}
		s.Errors = map[string]string{"temperature": fmt.Sprintf("timeout \u00e9 %d", i)}
		s.Fields["model"] = StringValue(fmt.Sprintf("PX-%d \"heavy\" \u00b0", i))
		s.Fields[fmt.Sprintf("f%d", i)] = Float64Value(float64(i))
		return s.AppendJSON(nil)
	}
	var dec Decoder
	const n = 2*maxCached + 10
	kept := map[int]Sample{}
	buf := make([]byte, 0, 4096)
	for i := range n {
		buf = append(buf[:0], record(i)...)
		s, err := dec.Decode(buf)
		if err != nil {
			t.Fatal(err)
		}
		clear(buf[:cap(buf)]) // the caller reuses its buffer
		if i%97 == 0 || i < 3 || i > n-3 {
			kept[i] = s
		}
	}
	for i, s := range kept {
		want, err := decodeSampleStd(record(i))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s, want) {
			t.Fatalf("sample %d changed after later decodes:\ngot  %+v\nwant %+v", i, s, want)
		}
	}
}

// TestDecoderMemoryBounded decodes records with large, distinct units,
// errors and strings, and checks that what the Decoder keeps stays within
// its limits while every sample still decodes as the reference does.
func TestDecoderMemoryBounded(t *testing.T) {
	var dec Decoder
	for i := range 40 {
		s := exampleSample()
		s.Units = map[string]string{}
		for j := range 300 {
			s.Units[fmt.Sprintf("f%d_%d", j, i)] = strings.Repeat("u", 60)
		}
		s.Errors = map[string]string{"temperature": strings.Repeat(fmt.Sprintf("%d \u00e9 ", i), 20000)}
		s.Fields["model"] = StringValue(strings.Repeat("\"", 100000))
		sameDecode(t, "Decoder.Decode", &dec, s.AppendJSON(nil))
		for name, c := range map[string]int{"units": dec.units.bytes, "errors": dec.errs.bytes, "strings": dec.strs.bytes} {
			if c > maxCachedBytes {
				t.Fatalf("record %d: the %s cache holds %d bytes, more than %d", i, name, c, maxCachedBytes)
			}
		}
		if len(dec.units.m) > maxCached || cap(dec.buf) > maxScratch {
			t.Fatalf("record %d: %d units objects cached, scratch of %d bytes", i, len(dec.units.m), cap(dec.buf))
		}
	}
}

// TestDecoderSharesOnlyStaticMaps checks what two samples decoded by one
// Decoder share: the tags, units and errors maps of objects with the same
// bytes, never Fields.
func TestDecoderSharesOnlyStaticMaps(t *testing.T) {
	var dec Decoder
	s := exampleSample()
	a, err := dec.Decode(s.AppendJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	s.Seq++
	b, err := dec.Decode(s.AppendJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	same := func(x, y any) bool { return reflect.ValueOf(x).UnsafePointer() == reflect.ValueOf(y).UnsafePointer() }
	if !same(a.Tags, b.Tags) || !same(a.Units, b.Units) || !same(a.Errors, b.Errors) {
		t.Error("tags, units or errors of the same bytes were decoded again, not taken from the cache")
	}
	if same(a.Fields, b.Fields) {
		t.Fatal("two samples share one Fields map")
	}
	c, err := DecodeSample(s.AppendJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	if same(c.Tags, b.Tags) || same(c.Units, b.Units) || same(c.Errors, b.Errors) {
		t.Fatal("DecodeSample returned a Decoder's maps")
	}
}

// pressRecord is a record shaped like the demo's press class: 17 fields of
// every kind, 6 units, one tag, one failed field.
func pressRecord(seq uint64) []byte {
	s := Sample{
		Factory: "plant-a", Device: "press-03", Class: "press",
		Time: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Second), Seq: seq,
		Tags:  map[string]string{"line": "line-1"},
		Units: map[string]string{"pressure": "bar", "pressure_setpoint": "bar", "ram_position": "mm", "oil_temperature": "degC", "cycle_time": "s", "motor_power": "kW"},
		Fields: map[string]Value{
			"pressure": Float64Value(float64(seq%300) / 10), "pressure_setpoint": Float64Value(25), "ram_position": Float64Value(123.4),
			"running": BoolValue(true), "fault": BoolValue(false), "door_open": BoolValue(false), "emergency_stop": BoolValue(false),
			"auto_mode": BoolValue(true), "cycle_count": Uint64Value(100000 + seq), "cycle_time": Float64Value(4.321),
			"fault_code": Uint64Value(0), "motor_power": Float64Value(17.5), "pump_on": BoolValue(seq%2 == 0),
			"valve_advance": BoolValue(true), "valve_retract": BoolValue(false), "lubrication": BoolValue(false),
		},
		Errors: map[string]string{"oil_temperature": "modbus: exception '2' (illegal data address), function '3'"},
	}
	return s.AppendJSON(nil)
}

// TestDecoderAllocations checks the aim of issue 16: a Decoder in its
// steady state allocates at most 5 times per sample (here 4: Fields).
func TestDecoderAllocations(t *testing.T) {
	var dec Decoder
	records := [][]byte{pressRecord(1), pressRecord(2), pressRecord(3)}
	for _, r := range records {
		if _, err := dec.Decode(r); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := dec.Decode(records[i%len(records)]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs > 5 {
		t.Fatalf("%.1f allocations per sample, want at most 5", allocs)
	}
}
