// Package configs holds an example config for every factorywire binary.
// This test loads each file strictly and validates it, so the examples
// cannot drift from the code.
package configs

import (
	"path/filepath"
	"testing"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/internal/configfile"
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
