package gateway

import (
	"encoding/json"
	"maps"
	"testing"
)

// TestCheckpointJSON checks that the checkpoint's own encoding reads back
// as it was, and that it spells each device id as encoding/json does.
func TestCheckpointJSON(t *testing.T) {
	for _, c := range []checkpoint{
		{},
		{Offset: 7, Seqs: map[string]uint64{}},
		{Offset: 1 << 40, Seqs: map[string]uint64{"press-000-001": 1<<64 - 1, "press-000-000": 0, "a.b_c-9": 42, "Z": 3}},
		{Offset: -1, Seqs: map[string]uint64{"<&>": 1, "quote\"back\\slash": 2, "tab\t": 3, "é": 4, "\x7f": 5, "\u2028": 6}},
	} {
		raw := c.appendJSON(nil)
		var back checkpoint
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if back.Offset != c.Offset || (back.Seqs == nil) != (c.Seqs == nil) || !maps.Equal(back.Seqs, c.Seqs) {
			t.Errorf("%s reads back as %+v, want %+v", raw, back, c)
		}
		for dev := range c.Seqs {
			want, _ := json.Marshal(dev)
			if !json.Valid(raw) || !contains(raw, string(want)+":") {
				t.Errorf("%s does not spell %q as encoding/json does (%s)", raw, dev, want)
			}
		}
	}
}

func contains(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return true
		}
	}
	return false
}
