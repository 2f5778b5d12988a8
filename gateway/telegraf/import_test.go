package telegraf

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/gateway"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// importCase is one Telegraf config of testdata (each file says which
// Telegraf documentation example it comes from) and how it is imported.
type importCase struct {
	name string // golden directory
	conf string // testdata file
	opts Options
}

var importCases = []importCase{
	{name: "register", conf: "register.conf"},
	{name: "request", conf: "request.conf"},
	{name: "metric", conf: "metric.conf"},
	{name: "serial", conf: "serial.conf"},
	{name: "transports", conf: "transports.conf"},
	{name: "float32", conf: "float32.conf"},
	{name: "float32-legacy", conf: "float32.conf", opts: Options{LegacyFloat32: true}},
	{name: "whole", conf: "whole.conf", opts: Options{Factory: "plant-a", DataDir: "/srv/factorywire"}},
	{name: "measurements", conf: "measurements.conf"},
	{name: "tagsets", conf: "tagsets.conf"},
	{name: "metricnames", conf: "metricnames.conf"},
}

func importFile(t *testing.T, c importCase) *Result {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", c.conf))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Import(c.conf, src, c.opts)
	if err != nil {
		t.Fatalf("Import(%s): %v", c.conf, err)
	}
	return res
}

func reportText(res *Result) string {
	var b strings.Builder
	for _, i := range res.Issues {
		b.WriteString(i.String() + "\n")
	}
	b.WriteString(res.Summary() + "\n")
	return b.String()
}

// TestImportGolden compares the generated files and the report with
// testdata/golden/<case> (go test -run TestImportGolden -update rewrites
// them; read the diff before committing it).
func TestImportGolden(t *testing.T) {
	for _, c := range importCases {
		t.Run(c.name, func(t *testing.T) {
			res := importFile(t, c)
			got := map[string]string{"report.txt": reportText(res)}
			for _, f := range res.Files() {
				got[f.Path] = string(f.Data)
			}
			dir := filepath.Join("testdata", "golden", c.name)
			if *update {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				for p, data := range got {
					p = filepath.Join(dir, p)
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				return
			}
			want := map[string]string{}
			err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				data, err := os.ReadFile(p)
				rel, _ := filepath.Rel(dir, p)
				want[filepath.ToSlash(rel)] = string(data)
				return err
			})
			if err != nil {
				t.Fatalf("%v (run go test -run TestImportGolden -update to create the golden files)", err)
			}
			for p, w := range want {
				if got[p] != w {
					t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", p, filepath.Join(dir, p), got[p], w)
				}
			}
			for p := range got {
				if _, ok := want[p]; !ok {
					t.Errorf("%s is generated but has no golden file in %s", p, dir)
				}
			}
		})
	}
}

// TestImportedFilesLoad writes each import and loads it with the
// project's own loaders: gateway.LoadConfig (strict YAML), gateway.Check
// (Config.Validate and devices.LoadDir, every register map parsed and
// compiled into read plans), per-device tags and every transport
// included.
func TestImportedFilesLoad(t *testing.T) {
	for _, c := range importCases {
		t.Run(c.name, func(t *testing.T) {
			res := importFile(t, c)
			cfg, dir := loadImported(t, res)
			plan, err := gateway.Check(cfg)
			if err != nil {
				t.Fatalf("gateway.Check: %v", err)
			}
			if len(plan.Devices) != res.Devices {
				t.Errorf("gateway.Check sees %d devices, the import wrote %d", len(plan.Devices), res.Devices)
			}
			classes, err := devices.LoadDir(filepath.Join(dir, "devices"))
			if err != nil {
				t.Fatal(err)
			}
			for _, cf := range res.Classes {
				if c := classes[cf.Name]; c == nil || len(c.Fields) != cf.Fields {
					t.Errorf("class %s: loaded %v, want %d fields", cf.Name, c, cf.Fields)
				}
			}
		})
	}
}

// loadImported writes res into a temporary directory and loads its
// gateway.yaml with gateway.LoadConfig, returning the config and the
// directory.
func loadImported(t *testing.T, res *Result) (gateway.Config, string) {
	t.Helper()
	dir := t.TempDir()
	if _, err := res.Write(dir, false); err != nil {
		t.Fatal(err)
	}
	cfg, err := gateway.LoadConfig(filepath.Join(dir, "gateway.yaml"))
	if err != nil {
		t.Fatalf("gateway.LoadConfig: %v", err)
	}
	return cfg, dir
}

// TestImportedTextOfNewKeys checks the text of what this branch cannot
// load yet: the transports and tags.
func TestImportedTextOfNewKeys(t *testing.T) {
	res := importFile(t, importCase{conf: "transports.conf"})
	for _, want := range []string{
		"    transport: rtu_over_tcp\n    address: \"10.0.0.5:4001\"\n",
		"    transport: ascii_over_tcp\n    address: \"10.0.0.6:4001\"\n",
		"    transport: ascii\n    address: /dev/ttyS1\n    baud_rate: 9600\n    data_bits: 7\n    parity: E\n    stop_bits: 1\n",
	} {
		if !strings.Contains(string(res.Gateway), want) {
			t.Errorf("gateway.yaml lacks\n%s\nin\n%s", want, res.Gateway)
		}
	}
	res = importFile(t, importCase{conf: "whole.conf"})
	for _, want := range []string{
		// [inputs.modbus.tags] over [global_tags].
		"  - id: Meter-A\n    class: plant-power-meter\n    connection: Meter-A\n    unit: 1\n    interval: 5s\n    tags:\n      dc: meter-room\n      site: plant-a\n",
		"  - id: Meter-B\n    class: power-meter\n    connection: Meter-A\n    unit: 2\n    interval: 100ms\n    tags:\n      dc: eu-1\n      site: plant-a\n",
	} {
		if !strings.Contains(string(res.Gateway), want) {
			t.Errorf("gateway.yaml lacks\n%s\nin\n%s", want, res.Gateway)
		}
	}
	res = importFile(t, importCase{conf: "request.conf"})
	if want := "    tags:\n      location: \"main building\"\n      machine: impresser\n"; !strings.Contains(string(res.Gateway), want) {
		t.Errorf("gateway.yaml lacks the request's tags\n%s\nin\n%s", want, res.Gateway)
	}
}

func TestImportSyntaxError(t *testing.T) {
	_, err := Import("bad.conf", []byte("[[inputs.modbus]]\n  name = \"x\"\n  controller = tcp://host:502\n"), Options{})
	var se *SyntaxError
	if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) || se.Line != 3 || !strings.HasPrefix(err.Error(), "bad.conf:3: ") {
		t.Fatalf("Import = %v, want a *SyntaxError at bad.conf:3", err)
	}
}

func TestImportNothingImportable(t *testing.T) {
	for _, tc := range []struct{ name, conf, want string }{
		{"no modbus input", "[[inputs.cpu]]\n  percpu = true\n", "not a Modbus input"},
		{"only unsupported fields", `[[inputs.modbus]]
  name = "d"
  controller = "tcp://h:502"
  configuration_type = "request"
  [[inputs.modbus.request]]
    slave_id = 1
    fields = [ { address = 0, name = "a", type = "FLOAT16" } ]
`, "half-precision"},
		{"unknown style", "[[inputs.modbus]]\n  name = \"d\"\n  controller = \"tcp://h:502\"\n  configuration_type = \"fields\"\n", `unknown configuration style "fields"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Import("t.conf", []byte(tc.conf), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Importable() || len(res.Files()) != 0 || res.Gateway != nil {
				t.Fatalf("importable: %v, files %d", res.Importable(), len(res.Files()))
			}
			if !strings.Contains(reportText(res), tc.want) || !strings.HasPrefix(res.Summary(), "nothing importable") {
				t.Fatalf("report lacks %q:\n%s", tc.want, reportText(res))
			}
			if _, err := res.Write(t.TempDir(), false); err == nil {
				t.Fatal("Write of nothing succeeded")
			}
		})
	}
}

// TestImportReportsEverySetting: every key of an input is taken by the
// importer or reported, with its line.
func TestImportReportsEverySetting(t *testing.T) {
	src := `[[inputs.modbus]]
  name = "d"
  controller = "tcp://h:502"
  configuration_type = "request"
  unknown_key = 1
  alias = "x"
  [inputs.modbus.workarounds]
    not_a_workaround = true
  [[inputs.modbus.request]]
    slave_id = 1
    mystery = "y"
    fields = [
      { address = 0, name = "a", type = "INT16", surprise = 2 },
    ]
`
	res, err := Import("t.conf", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	report := reportText(res)
	for _, want := range []string{
		`t.conf:5: warning: inputs.modbus "d" unknown_key: not carried over`,
		`t.conf:6: note: inputs.modbus "d" alias: not carried over`,
		`t.conf:8: warning: inputs.modbus "d" workarounds not_a_workaround: not carried over`,
		`t.conf:11: warning: inputs.modbus "d" request 1 mystery: not carried over`,
		`t.conf:13: warning: inputs.modbus "d" request 1 field "a" surprise: not carried over`,
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

func TestWriteRefusesToOverwrite(t *testing.T) {
	res := importFile(t, importCase{conf: "register.conf"})
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "devices"), 0o755); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(dir, "devices", "modbus.yaml")
	if err := os.WriteFile(existing, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Write(dir, false); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), existing) {
		t.Fatalf("Write = %v, want ErrExists naming %s", err, existing)
	}
	if _, err := os.Stat(filepath.Join(dir, "gateway.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Write refused but wrote gateway.yaml (%v)", err)
	}
	written, err := res.Write(dir, true)
	if err != nil || len(written) != 2 {
		t.Fatalf("Write(force) = %v, %v", written, err)
	}
	if data, _ := os.ReadFile(existing); string(data) == "mine" {
		t.Fatal("Write(force) did not overwrite")
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		fn       func(string) string
		in, want string
	}{
		{fieldName, "voltage", "voltage"},
		{fieldName, "TankLevel", "tank_level"},
		{fieldName, "Voltage L1-N (V)", "voltage_l1_n_v"},
		{fieldName, "4x0102:INT", "f_4x0102_int"},
		{fieldName, "energy-2", "energy_2"},
		{fieldName, "PV1", "pv1"},
		{fieldName, "", "field"},
		{fieldName, "__x__", "x"},
		{fieldName, strings.Repeat("a", 70), strings.Repeat("a", 64)},
		{className, "modbus", "modbus"},
		{className, "Power Meter", "power-meter"},
		{className, "plant_Power Meter", "plant-power-meter"},
		{className, "dlq", "modbus-dlq"},
		{className, "---", "modbus"},
		{deviceID, "Device", "Device"},
		{deviceID, "oven controller 1", "oven-controller-1"},
		{deviceID, "device-fqdn.com", "device-fqdn.com"},
		{deviceID, "  ", "modbus"},
	} {
		if got := tc.fn(tc.in); got != tc.want {
			t.Errorf("(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestScanLines(t *testing.T) {
	src := `# comment [not.a.table]
a = "x # not a comment"
[[inputs.modbus]]
  name = 'lit'
  b.c = 1 # dotted
  multi = """
line "quoted"
[[fake]]
"""
  fields = [
    { name = "f0", address = [0, 1] },

    # a comment between elements
    { name = "f1",
      address = [2] },
  ]
  [inputs.modbus.tags]
    "quoted key" = "v"
[[inputs.modbus]]
  name = "second"
  [[inputs.modbus.request]]
    fields = [ { address = 7 } ]
  [[inputs.modbus.request]]
    x = 1979-05-27 07:32:00Z
    y = 2
`
	lines := scanLines(src)
	for _, tc := range []struct {
		path []string
		want int
	}{
		{[]string{"a"}, 2},
		{[]string{"inputs", "modbus", "[0]"}, 3},
		{[]string{"inputs", "modbus", "[0]", "name"}, 4},
		{[]string{"inputs", "modbus", "[0]", "b", "c"}, 5},
		{[]string{"inputs", "modbus", "[0]", "multi"}, 6},
		{[]string{"inputs", "modbus", "[0]", "fields"}, 10},
		{[]string{"inputs", "modbus", "[0]", "fields", "[0]"}, 11},
		{[]string{"inputs", "modbus", "[0]", "fields", "[0]", "address"}, 11},
		{[]string{"inputs", "modbus", "[0]", "fields", "[1]"}, 14},
		{[]string{"inputs", "modbus", "[0]", "fields", "[1]", "address"}, 15},
		{[]string{"inputs", "modbus", "[0]", "tags"}, 17},
		{[]string{"inputs", "modbus", "[0]", "tags", "quoted key"}, 18},
		{[]string{"inputs", "modbus", "[1]", "name"}, 20},
		{[]string{"inputs", "modbus", "[1]", "request", "[0]", "fields", "[0]", "address"}, 22},
		{[]string{"inputs", "modbus", "[1]", "request", "[1]"}, 23},
		{[]string{"inputs", "modbus", "[1]", "request", "[1]", "y"}, 25},
	} {
		if got := lines[join("", tc.path...)]; got != tc.want {
			t.Errorf("line of %v = %d, want %d", tc.path, got, tc.want)
		}
	}
	if _, ok := lines[join("", "fake")]; ok {
		t.Error("a header inside a multi-line string was indexed")
	}
}

// TestImportOneTable: Telegraf takes [inputs.modbus] (one table, not an
// array of tables) as one plugin; so does the import, with its lines.
func TestImportOneTable(t *testing.T) {
	src := `[inputs.modbus]
  name = "single"
  controller = "tcp://h:502"
  slave_id = 2
  holding_registers = [
    { name = "v", byte_order = "AB", data_type = "UINT16", scale = 1.0, address = [4] },
  ]
  surprise = true
`
	res, err := Import("t.conf", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Importable() || !strings.Contains(string(res.Gateway), "  - id: single\n") {
		t.Fatalf("not imported:\n%s\n%s", res.Gateway, reportText(res))
	}
	if want := `t.conf:8: warning: inputs.modbus "single" surprise: not carried over`; !strings.Contains(reportText(res), want) {
		t.Fatalf("report lacks %q:\n%s", want, reportText(res))
	}
}
