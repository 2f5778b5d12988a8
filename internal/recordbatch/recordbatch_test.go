package recordbatch

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/factorywire/factorywire/storage/commitlog"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		recs []Record
	}{
		{"one", []Record{{Key: []byte("press-01"), Value: []byte(`{"v":1}`), Timestamp: 1_764_550_000_123}}},
		{"headers and a null value", []Record{
			{Key: []byte("a"), Value: []byte("x"), Headers: []Header{{"content-type", []byte("application/json")}}, Timestamp: 5},
			{Key: []byte("b"), Value: nil, Timestamp: 3},
			{Key: nil, Value: []byte{}, Headers: []Header{{"h1", nil}, {"h2", []byte("v")}}, Timestamp: 9},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Encode(tc.recs)
			h, err := commitlog.ParseBatch(b)
			if err != nil {
				t.Fatalf("commitlog rejects the batch: %v", err)
			}
			if int(h.LastOffsetDelta)+1 != len(tc.recs) {
				t.Fatalf("last offset delta %d for %d records", h.LastOffsetDelta, len(tc.recs))
			}
			var got []Record
			if err := Decode(b, func(i int, r Record) error {
				if i != len(got) {
					t.Fatalf("index %d, want %d", i, len(got))
				}
				got = append(got, r)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.recs) {
				t.Fatalf("decoded %d records, want %d", len(got), len(tc.recs))
			}
			for i, want := range tc.recs {
				g := got[i]
				if !bytes.Equal(g.Key, want.Key) || !bytes.Equal(g.Value, want.Value) || (g.Value == nil) != (want.Value == nil) || g.Timestamp != want.Timestamp {
					t.Fatalf("record %d: got %+v, want %+v", i, g, want)
				}
				if !slices.EqualFunc(g.Headers, want.Headers, func(a, b Header) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
					t.Fatalf("record %d headers: got %v, want %v", i, g.Headers, want.Headers)
				}
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	good := Encode([]Record{{Key: []byte("k"), Value: []byte("v")}, {Key: []byte("k2"), Value: []byte("v2")}})
	compressed := slices.Clone(good)
	compressed[22] |= 1 // attributes (bytes 21-22): gzip
	for _, tc := range []struct {
		name  string
		batch []byte
		want  error
	}{
		{"empty", nil, ErrMalformed},
		{"truncated", good[:len(good)-3], ErrMalformed},
		{"compressed", compressed, ErrCompressed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Decode(tc.batch, func(int, Record) error { return nil })
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzDecode: Decode never panics, and whatever it decodes re-encodes to
// records that decode the same.
func FuzzDecode(f *testing.F) {
	f.Add(Encode([]Record{{Key: []byte("k"), Value: []byte("v"), Timestamp: 7}}))
	f.Add(Encode([]Record{{Key: nil, Value: nil, Headers: []Header{{"a", []byte("b")}}}, {Key: []byte("x")}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var recs []Record
		if Decode(b, func(_ int, r Record) error { recs = append(recs, r); return nil }) != nil || len(recs) == 0 {
			return
		}
		n := 0
		if err := Decode(Encode(recs), func(i int, r Record) error {
			if !bytes.Equal(r.Key, recs[i].Key) || !bytes.Equal(r.Value, recs[i].Value) || r.Timestamp != recs[i].Timestamp || len(r.Headers) != len(recs[i].Headers) {
				t.Fatalf("record %d changed in a round trip: %+v -> %+v", i, recs[i], r)
			}
			n++
			return nil
		}); err != nil || n != len(recs) {
			t.Fatalf("re-encoded batch: %v (%d of %d records)", err, n, len(recs))
		}
	})
}
