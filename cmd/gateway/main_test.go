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
		// oven-2's own report_by_exception over its class's.
		"every 2s, report by exception: max_silence 30s, deadband heater_current percent 2; process_value absolute 0.2\n",
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

// TestCheckHidesThePassword: check describes the secured connection, and
// neither its output nor its errors show the password, even one written
// by mistake where the name of its variable belongs.
func TestCheckHidesThePassword(t *testing.T) {
	const password = "Pa55-w0rd-of-the-gateway"
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "kafka-password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../configs/gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs("../../configs/devices")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FW_CHECK_PASSWORD", password)
	t.Setenv("FW_CHECK_PASSWORD_FILE", pwFile)
	write := func(name, kafka string) string {
		body := strings.Replace(string(example), "classes_dir: devices", "classes_dir: "+abs, 1)
		body = strings.Replace(body, "kafka:\n", "kafka:\n"+kafka, 1)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tlsBlock := "  tls:\n    enabled: true\n    insecure_skip_verify: true\n"
	for _, tc := range []struct {
		name, kafka, want string
		fails             bool
	}{
		{"password file", "  sasl:\n    mechanism: SCRAM-SHA-512\n    username: gw\n    password_file: ${FW_CHECK_PASSWORD_FILE}\n" + tlsBlock,
			`SASL SCRAM-SHA-512 as "gw", password from ` + pwFile, false},
		{"password variable", "  sasl:\n    mechanism: PLAIN\n    username: gw\n    password_env: FW_CHECK_PASSWORD\n" + tlsBlock,
			`TLS (NOT VERIFIED), SASL PLAIN as "gw", password from $FW_CHECK_PASSWORD`, false},
		{"the password where its variable belongs", "  sasl:\n    mechanism: PLAIN\n    username: gw\n    password_env: " + password + "\n",
			"kafka.sasl.password_env: not an environment variable name", true},
		{"the password as a key", "  sasl:\n    password: " + password + "\n", `unknown key "password"`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run([]string{"check", "--config", write(strings.ReplaceAll(tc.name, " ", "-")+".yaml", tc.kafka)}, &out)
			text := out.String()
			if err != nil {
				text += err.Error()
			}
			if (err != nil) != tc.fails || !strings.Contains(text, tc.want) {
				t.Fatalf("check: %v, output:\n%s\nwant it to contain %q", err, out.String(), tc.want)
			}
			if strings.Contains(text, password) {
				t.Fatalf("the password shows:\n%s", text)
			}
		})
	}
}
