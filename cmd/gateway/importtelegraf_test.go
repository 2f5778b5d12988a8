package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/factorywire/factorywire/internal/cli"
)

const telegrafTestdata = "../../gateway/telegraf/testdata/"

// runImport runs `gateway import-telegraf args...` and returns its
// standard output, standard error and error.
func runImport(args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	root := &ffcli.Command{Name: "gateway", Subcommands: []*ffcli.Command{importTelegrafCommand(&stdout, &stderr)}}
	err := cli.Run(root, append([]string{"import-telegraf"}, args...))
	return stdout.String(), stderr.String(), err
}

func TestImportTelegrafWritesCheckableFiles(t *testing.T) {
	out := filepath.Join(t.TempDir(), "etc")
	// The README's register example: one field overlaps another, so the
	// import warns (exit status 3) and writes the rest.
	stdout, stderr, err := runImport("--out", out, "--factory", "plant-a", telegrafTestdata+"register.conf")
	var ee cli.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("import = %v, want exit status 3 (warnings)\n%s", err, stderr)
	}
	if stdout != "" {
		t.Errorf("with --out, standard output should be empty, got:\n%s", stdout)
	}
	for _, want := range []string{
		`register.conf:33: warning: inputs.modbus "Device" holding_registers "firmware": not carried over: overlaps "energy" (line 29)`,
		"wrote " + filepath.Join(out, "gateway.yaml") + "\n",
		"wrote " + filepath.Join(out, "devices", "modbus.yaml") + "\n",
		"1 devices on 1 connections, 1 classes (modbus) with 16 fields; 1 warnings",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("report lacks %q:\n%s", want, stderr)
		}
	}
	var check bytes.Buffer
	if err := run([]string{"check", "--config", filepath.Join(out, "gateway.yaml")}, &check); err != nil {
		t.Fatalf("gateway check of the import: %v", err)
	}
	for _, want := range []string{"plant-a.modbus\n", "holding_register 0-8 (9 registers): voltage@0 current@1 power@3 energy@5 frequency@7 power_factor@8"} {
		if !strings.Contains(check.String(), want) {
			t.Errorf("gateway check output lacks %q:\n%s", want, check.String())
		}
	}

	// A second run refuses to overwrite, naming the files; --force
	// overwrites.
	_, _, err = runImport("--out", out, telegrafTestdata+"register.conf")
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "use --force") {
		t.Fatalf("second import = %v, want a usage error saying --force", err)
	}
	if _, _, err = runImport("--out", out, "--force", telegrafTestdata+"register.conf"); !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("import --force = %v, want exit status 3", err)
	}
}

func TestImportTelegrafExitStatus(t *testing.T) {
	dir := t.TempDir()
	none := filepath.Join(dir, "none.conf")
	if err := os.WriteFile(none, []byte("[[inputs.cpu]]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notTOML := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(notTOML, []byte("[[inputs.modbus]]\nname = \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int // 0, 1 (failure), 2 (usage), 3 (warnings)
		want string
	}{
		{"clean", []string{telegrafTestdata + "metricnames.conf"}, 0, "0 warnings, 4 notes"},
		{"flags after the file", []string{telegrafTestdata + "metricnames.conf", "--factory", "plant-b"}, 0, "factory: plant-b\n"},
		{"warnings", []string{telegrafTestdata + "float32.conf"}, 3, "imported with 2 warnings"},
		{"nothing importable", []string{none}, 1, "nothing importable"},
		{"not TOML", []string{notTOML}, 2, "bad.conf:2: "},
		{"no file", nil, 2, "want one Telegraf config file"},
		{"missing file", []string{filepath.Join(dir, "missing.conf")}, 2, "no such file"},
		{"bad format", []string{"--format", "yaml", none}, 2, `--format "yaml"`},
		{"force without out", []string{"--force", none}, 2, "--force: only with --out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := runImport(tc.args...)
			code := 0
			var ee cli.ExitError
			var ue usageError
			switch {
			case errors.As(err, &ee):
				code = ee.Code
			case errors.As(err, &ue):
				code = 2
			case err != nil:
				code = 1
			}
			if code != tc.code {
				t.Fatalf("exit status %d (%v), want %d\n%s", code, err, tc.code, stderr)
			}
			all := stdout + stderr
			if err != nil {
				all += err.Error()
			}
			if !strings.Contains(all, tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, all)
			}
			if tc.code == 1 && stdout != "" {
				t.Fatalf("nothing importable but files printed:\n%s", stdout)
			}
		})
	}
}

func TestImportTelegrafJSON(t *testing.T) {
	stdout, stderr, err := runImport("--format", "json", telegrafTestdata+"whole.conf")
	var ee cli.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("import = %v, want exit status 3", err)
	}
	if stderr != "" {
		t.Errorf("--format json writes the report to standard output; standard error got:\n%s", stderr)
	}
	var rep struct {
		Importable bool              `json:"importable"`
		Warnings   int               `json:"warnings"`
		Devices    int               `json:"devices"`
		Files      map[string]string `json:"files"`
		Classes    []struct {
			Name   string `json:"name"`
			Fields int    `json:"fields"`
		} `json:"classes"`
		Issues []struct {
			File     string `json:"file"`
			Line     int    `json:"line"`
			Severity string `json:"severity"`
			Kind     string `json:"kind"`
			Where    string `json:"where"`
			Message  string `json:"message"`
		} `json:"issues"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	if !rep.Importable || rep.Devices != 2 || rep.Warnings == 0 || len(rep.Classes) != 2 {
		t.Fatalf("report = %+v", rep)
	}
	if !strings.Contains(rep.Files["gateway.yaml"], "brokers: [kafka-1:9092, kafka-2:9092]") || rep.Files["devices/power-meter.yaml"] == "" {
		t.Fatalf("files = %v", rep.Files)
	}
	found := false
	for _, i := range rep.Issues {
		if i.File == telegrafTestdata+"whole.conf" && i.Line == 57 && i.Severity == "warning" && i.Kind == "not_carried_over" &&
			i.Where == `inputs.modbus "Meter A" metric 1 field "small" type` && strings.HasPrefix(i.Message, "UINT8L: 8-bit values are not supported") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no issue for the UINT8L field at whole.conf:57 in %+v", rep.Issues)
	}
}
