package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/factorywire/factorywire/internal/testchild"
)

// The log format tests run this test binary as the gateway command: with
// argsEnv set, TestMain calls main with those arguments instead of running
// tests.
const argsEnv = "FACTORYWIRE_TEST_GATEWAY_MAIN_ARGS"

func TestMain(m *testing.M) {
	if raw := os.Getenv(argsEnv); raw != "" {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			panic(err)
		}
		os.Args = append([]string{"gateway"}, args...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func command(env []string, args ...string) *exec.Cmd {
	raw, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), argsEnv+"="+string(raw)), env...)
	return cmd
}

// smallConfig writes a gateway config with one device on a connection
// nothing answers and a broker that is not there: enough to start, run
// and stop.
func smallConfig(t *testing.T) string {
	classes, err := filepath.Abs("../../configs/devices")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	body := "factory: plant-l\n" +
		"data_dir: " + filepath.Join(dir, "data") + "\n" +
		"classes_dir: " + classes + "\n" +
		"http_listen: 127.0.0.1:0\n" +
		"kafka:\n  brokers: [127.0.0.1:1]\n" +
		"connections:\n  - {name: line-1, transport: tcp, address: 127.0.0.1:1, timeout: 100ms}\n" +
		"devices:\n  - {id: press-01, class: press, connection: line-1, unit: 1, interval: 1s}\n"
	p := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLogFormatJSON: gateway run --log-format json (or its environment
// twin) writes one JSON object per line, each with time, level and msg.
func TestLogFormatJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", nil, []string{"--log-format", "json"}},
		{"environment", []string{"FACTORYWIRE_GATEWAY_LOG_FORMAT=json"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := command(tc.env, append([]string{"run", "--config", smallConfig(t)}, tc.args...)...)
			m, log := testchild.StartWaiting(t, cmd, regexp.MustCompile(`^\{.*"msg":"gateway running".*\}$`), 30*time.Second)
			var running map[string]any
			if err := json.Unmarshal([]byte(m[0]), &running); err != nil {
				t.Fatalf("startup line is not JSON: %v\n%s", err, m[0])
			}
			if running["level"] != "INFO" || running["factory"] != "plant-l" {
				t.Errorf("startup record %v", running)
			}
			cmd.Process.Signal(syscall.SIGTERM)
			if err := log.Wait(cmd); err != nil {
				t.Fatalf("exit after SIGTERM: %v\n%s", err, log)
			}
			lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
			for _, line := range lines {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("a line is not JSON: %v\n%s", err, line)
				}
				ts, _ := rec["time"].(string)
				if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || rec["level"] == nil || rec["msg"] == nil {
					t.Fatalf("a record lacks time, level or msg: %s", line)
				}
			}
			if !strings.Contains(lines[len(lines)-1], `"msg":"gateway stopped"`) {
				t.Errorf("last line is not the stop:\n%s", log)
			}
		})
	}
}

// TestLogFormatUnknown: an unknown --log-format is a usage error naming
// the flag, exit status 2.
func TestLogFormatUnknown(t *testing.T) {
	out, err := command(nil, "run", "--config", smallConfig(t), "--log-format", "logfmt").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit %v, want status 2\n%s", err, out)
	}
	if !strings.Contains(string(out), `--log-format "logfmt": want text or json`) {
		t.Fatalf("output does not name the flag:\n%s", out)
	}
}
