package gateway

import (
	"encoding/json"
	"strconv"
)

// appendJSON appends the checkpoint as the JSON object of forwarded.json,
// `{"offset":N,"seqs":{"dev":seq,...}}`, the devices in no particular
// order, escaped as encoding/json escapes. The forwarder writes a topic's
// checkpoint up to several times a second (at most once a second while it
// advances, and whenever it catches up), one seq per device of the topic:
// through encoding/json, which reflects, sorts the keys and then validates
// its own output, that was about 4 % of the gateway's CPU at 10,000 devices
// (cmd/gatewaybench), four times what this costs.
func (c checkpoint) appendJSON(b []byte) []byte {
	b = append(b, `{"offset":`...)
	b = strconv.AppendInt(b, c.Offset, 10)
	if c.Seqs == nil {
		return append(b, `,"seqs":null}`...)
	}
	b = append(b, `,"seqs":{`...)
	first := true
	for dev, seq := range c.Seqs {
		if !first {
			b = append(b, ',')
		}
		first = false
		if plainKey(dev) {
			b = append(b, '"')
			b = append(b, dev...)
			b = append(b, '"')
		} else {
			q, _ := json.Marshal(dev) // a string always marshals
			b = append(b, q...)
		}
		b = append(b, ':')
		b = strconv.AppendUint(b, seq, 10)
	}
	return append(b, "}}"...)
}

// jsonSize is about the length of c's JSON, for the buffer.
func (c checkpoint) jsonSize() int {
	n := 32
	for dev := range c.Seqs {
		n += len(dev) + 24
	}
	return n
}

// plainKey reports whether encoding/json writes s between quotes as it is:
// printable ASCII without '"', '\\', and the HTML characters it escapes.
// Device ids (devices.ValidateDevice) always are.
func plainKey(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
