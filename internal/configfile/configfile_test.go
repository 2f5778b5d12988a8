package configfile

import (
	"strings"
	"testing"
	"time"
)

type sample struct {
	Listen   string        `yaml:"listen"`
	Interval time.Duration `yaml:"interval"`
	Nested   struct {
		Count int `yaml:"count"`
	} `yaml:"nested"`
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       string // substring of the error; empty = success
	}{
		{"valid", "listen: a:1\ninterval: 2s\nnested:\n  count: 3\n", ""},
		{"empty keeps defaults", "", ""},
		{"unknown key names file line and key", "listen: a:1\nlistn: b\n", `broker.yaml:2: unknown key "listn"`},
		{"nested unknown key", "nested:\n  cuont: 3\n", `broker.yaml:2: unknown key "cuont"`},
		{"wrong type names line", "nested:\n  count: many\n", "broker.yaml:2: cannot unmarshal"},
		{"bad duration", "interval: soon\n", "broker.yaml:1:"},
		{"syntax error names line", "listen: [\n", "broker.yaml:"},
		{"two documents", "listen: a\n---\nlisten: b\n", "more than one YAML document"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := sample{Listen: "default"}
			err := Decode("broker.yaml", []byte(c.yaml), &v)
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
	v := sample{Listen: "default"}
	if err := Decode("x.yaml", []byte("interval: 2s\n"), &v); err != nil || v.Listen != "default" || v.Interval != 2*time.Second {
		t.Fatalf("defaults not kept or value not decoded: %+v %v", v, err)
	}
}
