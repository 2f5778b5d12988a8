package telegraf

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/factorywire/factorywire/devices"
)

// FuzzImport: any input either is refused as not TOML or imports without
// panicking, and what it imports is always valid: every register map
// passes devices.Parse and gateway.yaml is one YAML document.
func FuzzImport(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.conf"))
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		res, err := Import("fuzz.conf", src, Options{})
		if err != nil {
			return
		}
		for _, c := range res.Classes {
			if _, err := devices.Parse(c.Path, c.Data); err != nil {
				t.Fatalf("register map %s does not load: %v\n%s", c.Path, err, c.Data)
			}
		}
		if res.Importable() {
			var doc map[string]any
			if err := yaml.Unmarshal(res.Gateway, &doc); err != nil {
				t.Fatalf("gateway.yaml is not YAML: %v\n%s", err, res.Gateway)
			}
		}
		_ = res.Summary()
	})
}
