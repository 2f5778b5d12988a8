package telegraf

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/factorywire/factorywire/internal/peers"
)

// TestDifferentialTelegraf runs the real Telegraf against the simulator of
// valueRig, once per testdata config (`telegraf --test`: one gather,
// metrics on standard output), and checks that Telegraf writes what the
// oracle of values_test.go says for every field, and what the gateway
// reads agrees with it as the package documentation says. It needs a
// Telegraf v1.37.2 binary with the Modbus input (internal/peers.Telegraf:
// .peers/telegraf/telegraf, which .ci/run builds, or $FACTORYWIRE_TELEGRAF),
// and skips without one (fails under FACTORYWIRE_REQUIRE_PEERS=1):
//
//	GOBIN=$PWD/.peers/telegraf go install -tags custom,inputs.modbus,outputs.file \
//	    github.com/influxdata/telegraf/cmd/telegraf@v1.37.2
//	go test -run TestDifferentialTelegraf ./gateway/telegraf/
func TestDifferentialTelegraf(t *testing.T) {
	bin := peers.Telegraf(t)
	for _, c := range importCases {
		switch {
		case c.name == "whole": // holds plugins the binary is built without
			continue
		case c.opts.LegacyFloat32: // the reading of Telegraf before v1.37
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			r := newValueRig(t, c)
			src, err := os.ReadFile(filepath.Join("testdata", c.conf))
			if err != nil {
				t.Fatal(err)
			}
			conf := telegrafConfFor(src, r.sim.Addr().String())
			if c.name == "float32" {
				// Telegraf v1.37 reads the register style's FLOAT32 as an
				// IEEE float of two registers and panics on one register
				// (the import says it cannot carry that field over). Show
				// it, then compare the rest without that field.
				_, stderr, err := telegrafTest(t, bin, conf)
				if err == nil || !strings.Contains(stderr, "panic: runtime error: index out of range [3] with length 2") {
					t.Fatalf("telegraf --test with a one-register FLOAT32 = %v, want its panic:\n%s", err, stderr)
				}
				i := bytes.Index(conf, []byte("  [[inputs.modbus.holding_registers]]\n    address = [136]"))
				if i < 0 {
					t.Fatal("float32.conf: no field at 136")
				}
				conf = conf[:i]
			}
			got := runTelegraf(t, bin, conf)
			skipped := 0
			for _, f := range r.tg {
				if _, ok := unsupported[f.in]; ok || f.in == "FLOAT32" && f.regs != 2 { // not imported, nor in the oracle
					skipped++
					continue
				}
				tv, ok := got[f.series][f.name]
				if !ok {
					t.Errorf("Telegraf wrote no %q in series %q (it wrote %v)", f.name, f.series, keysOf(got))
					continue
				}
				want := f.value(wire(t, r.sim.Unit(uint8(f.slave)), f))
				if !sameValue(tv, want) {
					t.Errorf("field %q of %q: Telegraf wrote %v (%T), the oracle says %v (%T)", f.name, f.series, tv, tv, want, want)
				}
			}
			compared := 0
			for _, d := range r.cfg.Devices {
				sample := r.read(t, d)
				class := r.classes[d.Class]
				for i := range class.Fields {
					ours := &class.Fields[i]
					f := r.match(t, d, ours)
					tv, ok := got[f.series][f.name]
					if !ok {
						continue // reported above
					}
					if ok, how := agree(sample.Fields[ours.Name], tv, f); !ok {
						t.Errorf("device %s field %s: gateway %v, Telegraf %v (%T); want %s", d.ID, ours.Name, sample.Fields[ours.Name], tv, tv, how)
					}
					compared++
				}
			}
			t.Logf("%d Telegraf fields as the oracle says (%d of types not imported skipped), %d gateway fields agree with Telegraf",
				len(r.tg)-skipped, skipped, compared)
		})
	}
}

var (
	controllerLine = regexp.MustCompile(`(?m)^(\s*)controller\s*=.*$`)
	modeLine       = regexp.MustCompile(`(?m)^\s*transmission_mode\s*=.*$`)
)

// telegrafConfFor points every input of src at the simulator, over Modbus
// TCP: the test is about values, not transports.
func telegrafConfFor(src []byte, addr string) []byte {
	out := controllerLine.ReplaceAll(src, []byte(`${1}controller = "tcp://`+addr+`"`))
	return modeLine.ReplaceAll(out, nil)
}

// runTelegraf runs `telegraf --test` on conf and returns its metrics by
// series (seriesKey) and field.
func runTelegraf(t *testing.T, bin string, conf []byte) map[string]map[string]any {
	t.Helper()
	stdout, stderr, err := telegrafTest(t, bin, conf)
	if err != nil {
		t.Fatalf("telegraf --test: %v\n%s\n%s", err, stderr, conf)
	}
	got := map[string]map[string]any{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "> ")
		if !ok {
			continue
		}
		m, tags, fields, err := parseLineProtocol(line)
		if err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		slave, _ := strconv.Atoi(tags["slave_id"])
		for _, k := range []string{"name", "slave_id", "type", "host"} { // host: the agent's
			delete(tags, k)
		}
		key := seriesKey(m, slave, tags)
		if got[key] == nil {
			got[key] = map[string]any{}
		}
		for k, v := range fields {
			got[key][k] = v
		}
	}
	if len(got) == 0 {
		t.Fatalf("telegraf --test wrote no metric:\n%s\n%s", stdout, stderr)
	}
	return got
}

// telegrafTest runs `telegraf --config conf --test` (bounded by a minute)
// and returns its standard output and error.
func telegrafTest(t *testing.T, bin string, conf []byte) (string, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "telegraf.conf")
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--config", path, "--test")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func keysOf(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// sameValue compares a value Telegraf wrote with the oracle's; line
// protocol writes floats in their shortest form, so they compare exactly.
func sameValue(telegraf, oracle any) bool {
	switch o := oracle.(type) {
	case float64:
		f, ok := telegraf.(float64)
		return ok && (f == o || math.IsNaN(f) && math.IsNaN(o))
	}
	return telegraf == oracle
}

// parseLineProtocol parses one line of InfluxDB line protocol as Telegraf
// writes it: measurement,tag=v,... field=v,... timestamp. Field values
// are int64 (123i), uint64 (123u), float64, bool or string.
func parseLineProtocol(line string) (string, map[string]string, map[string]any, error) {
	parts := splitUnescaped(line, ' ', true)
	if len(parts) < 2 {
		return "", nil, nil, fmt.Errorf("not line protocol")
	}
	series := splitUnescaped(parts[0], ',', false)
	tags := map[string]string{}
	for _, kv := range series[1:] {
		k, v, _ := strings.Cut(kv, "=")
		tags[unescape(k)] = unescape(v)
	}
	fields := map[string]any{}
	for _, kv := range splitUnescaped(parts[1], ',', true) {
		i := indexUnescaped(kv, '=')
		if i < 0 {
			return "", nil, nil, fmt.Errorf("field %q has no value", kv)
		}
		k, v := unescape(kv[:i]), kv[i+1:]
		var val any
		var err error
		switch {
		case strings.HasPrefix(v, `"`):
			val, err = strconv.Unquote(v)
		case v == "true" || v == "false":
			val = v == "true"
		case strings.HasSuffix(v, "i"):
			val, err = strconv.ParseInt(strings.TrimSuffix(v, "i"), 10, 64)
		case strings.HasSuffix(v, "u"):
			val, err = strconv.ParseUint(strings.TrimSuffix(v, "u"), 10, 64)
		default:
			val, err = strconv.ParseFloat(v, 64)
		}
		if err != nil {
			return "", nil, nil, fmt.Errorf("field %s=%s: %v", k, v, err)
		}
		fields[k] = val
	}
	return unescape(series[0]), tags, fields, nil
}

// splitUnescaped splits s at sep where it is not escaped by a backslash
// (and, with quotes, not inside a double-quoted string).
func splitUnescaped(s string, sep byte, quotes bool) []string {
	var out []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == '"' && quotes:
			inQuote = !inQuote
		case c == sep && !inQuote:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func indexUnescaped(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
		} else if s[i] == c {
			return i
		}
	}
	return -1
}

func unescape(s string) string {
	return strings.NewReplacer(`\ `, " ", `\,`, ",", `\=`, "=", `\\`, `\`).Replace(s)
}
