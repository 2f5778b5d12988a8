// Package configs holds an example config for every factorywire binary.
// This test loads each file strictly and validates it, so the examples
// cannot drift from the code.
package configs

import (
	"path/filepath"
	"testing"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/gateway"
	"github.com/factorywire/factorywire/internal/configfile"
	"github.com/factorywire/factorywire/sink"
)

func TestExamplesLoadAndValidate(t *testing.T) {
	loaders := map[string]func(path string) error{
		"broker.yaml": func(path string) error {
			cfg := broker.DefaultConfig()
			if err := configfile.Load(path, &cfg); err != nil {
				return err
			}
			return cfg.Validate()
		},
		"sink.yaml": func(path string) error {
			cfg, err := sink.LoadConfig(path)
			if err != nil {
				return err
			}
			return cfg.Validate()
		},
		"gateway.yaml": func(path string) error {
			cfg, err := gateway.LoadConfig(path)
			if err != nil {
				return err
			}
			_, err = gateway.Check(cfg)
			return err
		},
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no example configs found")
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			load, ok := loaders[f]
			if !ok {
				t.Fatalf("%s has no loader in this test: add one so the example is validated", f)
			}
			if err := load(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDeviceClasses loads every register map in devices/ strictly, as
// gateway check does, and checks that each is named for its class and
// compiles into a few reads.
func TestDeviceClasses(t *testing.T) {
	classes, err := devices.LoadDir("devices")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("devices", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(classes) != len(files) {
		t.Fatalf("%d files hold %d classes", len(files), len(classes))
	}
	for name, c := range classes {
		t.Run(name, func(t *testing.T) {
			if base := filepath.Base(c.Source); base != name+".yaml" {
				t.Errorf("class %q lives in %s: name the file %s.yaml", name, base, name)
			}
			if n := len(c.Plan.Reads); n < 1 || n > 6 {
				t.Errorf("plan has %d reads, want 1 to 6:\n%s", n, c.Plan)
			}
		})
	}
}
