package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPrintsPlansAndTopics(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"check", "--config", "../../configs/gateway.yaml"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"plant-a.press\n", "plant-a.power-meter\n", "plant-a.temperature-controller\n",
		"class press (", "holding_register 0-3 (4 registers): pressure@0",
		"press-03", "cron 0 */15 * * * *",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestConfigErrorsAreUsageErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no config", []string{"check"}, "--config FILE is required"},
		{"unknown key", []string{"check", "--config", write("typo.yaml", "factory: plant-a\nfactroy: x\n")}, "typo.yaml:2"},
		{"invalid", []string{"run", "--config", write("bad.yaml", "factory: Plant_A\ndata_dir: /tmp/x\n")}, `factory "Plant_A"`},
		{"no subcommand", nil, "missing subcommand"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args, &bytes.Buffer{})
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run(%q) = %v, want a usage error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestEnvironmentTwin(t *testing.T) {
	t.Setenv("FACTORYWIRE_GATEWAY_CONFIG", "../../configs/gateway.yaml")
	t.Setenv("FACTORYWIRE_GATEWAY_DATA_DIR", "/srv/spool-from-env")
	var out bytes.Buffer
	if err := run([]string{"check"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "spool /srv/spool-from-env") {
		t.Fatalf("FACTORYWIRE_GATEWAY_DATA_DIR not applied:\n%s", out.String())
	}
}
