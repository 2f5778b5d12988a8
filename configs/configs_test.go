// Package configs holds an example config for every factorywire binary.
// This test loads each file strictly and validates it, so the examples
// cannot drift from the code.
package configs

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/gateway"
	"github.com/factorywire/factorywire/internal/configfile"
	"github.com/factorywire/factorywire/internal/kafkaclient"
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

// TestSecuredKafkaExamples uncomments the example tls and sasl blocks of
// the gateway's and the sink's configs (lines "  #tls:", "  #sasl:" and
// "  #  key: …") and validates the result, so the commented examples
// cannot drift from the code either. Their files do not exist here:
// Validate, not Check, which reads them.
func TestSecuredKafkaExamples(t *testing.T) {
	t.Setenv("FACTORY", "plant-a")
	example := regexp.MustCompile(`(?m)^  #(tls:|sasl:|  \S)`)
	for name, load := range map[string]func(path string) (kafkaclient.Config, error){
		"gateway.yaml": func(path string) (kafkaclient.Config, error) {
			cfg, err := gateway.LoadConfig(path)
			if err == nil {
				err = cfg.Validate()
			}
			return cfg.Kafka.Config, err
		},
		"sink.yaml": func(path string) (kafkaclient.Config, error) {
			cfg, err := sink.LoadConfig(path)
			if err == nil {
				err = cfg.Validate()
			}
			return cfg.Kafka.Config, err
		},
	} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			uncommented := example.ReplaceAllString(string(raw), "  $1")
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(uncommented), 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := load(path)
			if err != nil {
				t.Fatalf("the uncommented example does not validate: %v", err)
			}
			if !k.TLS.Enabled || k.TLS.CertFile == "" || k.SASL.Mechanism == "" || k.SASL.Username == "" || k.SASL.Username == "gateway-${FACTORY}" {
				t.Fatalf("the tls and sasl examples were not uncommented, or ${FACTORY} not expanded: %+v", k)
			}
		})
	}
}

// TestBrokerHTTPListenExample uncomments broker.yaml's http_listen line
// and validates the result.
func TestBrokerHTTPListenExample(t *testing.T) {
	raw, err := os.ReadFile("broker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	example := regexp.MustCompile(`(?m)^# (http_listen: .*)$`)
	if !example.Match(raw) {
		t.Fatal("broker.yaml has no commented http_listen example")
	}
	path := filepath.Join(t.TempDir(), "broker.yaml")
	if err := os.WriteFile(path, example.ReplaceAll(raw, []byte("$1")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := broker.DefaultConfig()
	if err := configfile.Load(path, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil || cfg.HTTPListen == "" {
		t.Fatalf("the uncommented example: http_listen %q, %v", cfg.HTTPListen, err)
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
