package configfile

import (
	"os"
	"path/filepath"
	"reflect"
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
	List    []string `yaml:"list"`
	Flag    bool     `yaml:"flag"`
	Pattern string   `yaml:"pattern"`
	Inline  `yaml:",inline"`
}

type Inline struct {
	Extra string `yaml:"extra"`
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
		{"inline unknown key", "extr: 3\n", `broker.yaml:1: unknown key "extr"`},
		{"wrong type names line", "nested:\n  count: many\n", "broker.yaml:2: cannot unmarshal"},
		{"bad duration", "interval: soon\n", "broker.yaml:1:"},
		{"syntax error names line", "listen: [\n", "broker.yaml:"},
		{"two documents", "listen: a\n---\nlisten: b\n", "more than one YAML document"},
		{"unknown key beside a variable", "listen: ${FW_TEST_ADDR}\nlistn: b\n", `broker.yaml:2: unknown key "listn"`},
		{"unknown key and wrong type in line order", "nested:\n  count: many\nlistn: b\n", "broker.yaml:2: cannot unmarshal !!str `many` into int\nbroker.yaml:3: unknown key \"listn\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := sample{Listen: "default"}
			err := DecodeWith("broker.yaml", []byte(c.yaml), &v, env)
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

// env is the environment of the expansion tests.
func env(name string) (string, bool) {
	v, ok := map[string]string{
		"FW_TEST_ADDR":   "10.0.0.1:9093",
		"FW_TEST_COUNT":  "7",
		"FW_TEST_DUR":    "150ms",
		"FW_TEST_TRUE":   "true",
		"FW_TEST_EMPTY":  "",
		"FW_TEST_YAML":   "a: b\nc: [d]",
		"FW_TEST_DOLLAR": "${FW_TEST_ADDR}",
	}[name]
	return v, ok
}

func TestExpand(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       sample
		err        string // substring of the error; empty = success
	}{
		{"whole value", "listen: ${FW_TEST_ADDR}\n", sample{Listen: "10.0.0.1:9093"}, ""},
		{"inside a value", "listen: tcp://${FW_TEST_ADDR}/x\n", sample{Listen: "tcp://10.0.0.1:9093/x"}, ""},
		{"two in one value", "listen: ${FW_TEST_COUNT}-${FW_TEST_COUNT}\n", sample{Listen: "7-7"}, ""},
		{"plain scalar is typed: int", "nested:\n  count: ${FW_TEST_COUNT}\n", sample{Nested: struct {
			Count int `yaml:"count"`
		}{7}}, ""},
		{"plain scalar is typed: duration and bool", "interval: ${FW_TEST_DUR}\nflag: ${FW_TEST_TRUE}\n", sample{Interval: 150 * time.Millisecond, Flag: true}, ""},
		{"quoted stays a string", "listen: \"${FW_TEST_COUNT}\"\n", sample{Listen: "7"}, ""},
		{"list items", "list: [\"${FW_TEST_ADDR}\", b]\n", sample{List: []string{"10.0.0.1:9093", "b"}}, ""},
		{"inline field", "extra: ${FW_TEST_COUNT}\n", sample{Inline: Inline{Extra: "7"}}, ""},
		{"set but empty", "listen: ${FW_TEST_EMPTY}\n", sample{Listen: ""}, ""},
		{"escape", "listen: $${FW_TEST_ADDR}\n", sample{Listen: "${FW_TEST_ADDR}"}, ""},
		{"escape beside a variable", "listen: $${x}${FW_TEST_COUNT}\n", sample{Listen: "${x}7"}, ""},
		{"lone dollar kept", "pattern: '^a\\.b$'\n", sample{Pattern: `^a\.b$`}, ""},
		{"dollar then letter kept", "pattern: $HOME\n", sample{Pattern: "$HOME"}, ""},
		{"value is not re-expanded", "listen: ${FW_TEST_DOLLAR}\n", sample{Listen: "${FW_TEST_ADDR}"}, ""},
		{"value cannot inject YAML", "listen: ${FW_TEST_YAML}\n", sample{Listen: "a: b\nc: [d]"}, ""},
		{"keys are not expanded", "${FW_TEST_COUNT}: 1\n", sample{}, `x.yaml:1: unknown key "${FW_TEST_COUNT}"`},
		{"comments are not expanded", "# ${FW_TEST_UNSET}\nlisten: a\n", sample{Listen: "a"}, ""},
		{"anchor expanded once", "listen: &a $${FW_TEST_ADDR}\npattern: *a\n", sample{Listen: "${FW_TEST_ADDR}", Pattern: "${FW_TEST_ADDR}"}, ""},
		{"unset names file line and variable", "listen: a\nnested:\n  count: ${FW_TEST_UNSET}\n", sample{}, "x.yaml:3: ${FW_TEST_UNSET}: environment variable FW_TEST_UNSET is not set"},
		{"every unset variable reported", "listen: ${FW_A}\npattern: ${FW_B}\n", sample{}, "x.yaml:1: ${FW_A}: environment variable FW_A is not set"},
		{"unterminated", "listen: ${FW_TEST_ADDR\n", sample{}, "x.yaml:1: \"${FW_TEST_ADDR\" opens ${ without a closing }"},
		{"not a name", "listen: ${FW TEST}\n", sample{}, "x.yaml:1: ${FW TEST}: not a variable name"},
		{"empty name", "listen: ${}\n", sample{}, "x.yaml:1: ${}: not a variable name"},
		{"expanded value of the wrong type names the line", "listen: a\nnested:\n  count: ${FW_TEST_ADDR}\n", sample{}, "x.yaml:3: cannot unmarshal !!str"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var v sample
			err := DecodeWith("x.yaml", []byte(c.yaml), &v, env)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want it to contain %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(v, c.want) {
				t.Fatalf("decoded %+v, want %+v", v, c.want)
			}
		})
	}
	err := DecodeWith("x.yaml", []byte("listen: ${FW_A}\npattern: ${FW_B}\n"), &sample{}, env)
	if err == nil || !strings.Contains(err.Error(), "x.yaml:2: ${FW_B}") {
		t.Errorf("the second unset variable is not reported: %v", err)
	}
}

// TestLoadExpandsFromTheEnvironment: Load reads the process environment.
func TestLoadExpandsFromTheEnvironment(t *testing.T) {
	t.Setenv("FW_CONFIGFILE_TEST", "from-env")
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("listen: ${FW_CONFIGFILE_TEST}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var v sample
	if err := Load(path, &v); err != nil || v.Listen != "from-env" {
		t.Fatalf("Load: %+v, %v", v, err)
	}
}
