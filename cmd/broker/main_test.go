package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/factorywire/factorywire/internal/testchild"
)

// The tests run this test binary as the broker command: with argsEnv set,
// TestMain calls main with those arguments instead of running tests.
const argsEnv = "FACTORYWIRE_TEST_BROKER_MAIN_ARGS"

func TestMain(m *testing.M) {
	if raw := os.Getenv(argsEnv); raw != "" {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			panic(err)
		}
		os.Args = append([]string{"broker"}, args...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func command(t *testing.T, env []string, args ...string) *exec.Cmd {
	raw, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), argsEnv+"="+string(raw)), env...)
	return cmd
}

var listeningLine = regexp.MustCompile(`msg="broker listening" addr=(\S+) data_dir=(\S+)`)

// startServe runs `broker serve` and returns once it logs its address.
func startServe(t *testing.T, env []string, args ...string) (*exec.Cmd, string, *testchild.Log) {
	cmd := command(t, env, append([]string{"serve"}, args...)...)
	m, log := testchild.StartWaiting(t, cmd, listeningLine, 30*time.Second)
	return cmd, m[1], log
}

func TestServeAnswersAndStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "broker.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(t.TempDir(), "unused")+"\n"), 0o644)
	// The environment twin overrides the file's data_dir.
	cmd, addr, log := startServe(t, []string{"FACTORYWIRE_BROKER_DATA_DIR=" + dir}, "--config", cfg)
	if !strings.Contains(log.String(), "data_dir="+dir) {
		t.Fatalf("startup line does not name the data dir from the environment:\n%s", log)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "cli"); err != nil {
		t.Fatalf("create topic through the binary: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := log.Wait(cmd); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, log)
	}
	if _, err := os.Stat(filepath.Join(dir, "cli-0")); err != nil {
		t.Fatalf("topic directory missing after a clean stop: %v", err)
	}
}

// TestServeHTTP: the environment twin of --http-listen turns the HTTP
// endpoints on; the startup line names their address.
func TestServeHTTP(t *testing.T) {
	cmd, _, log := startServe(t, []string{"FACTORYWIRE_BROKER_HTTP_LISTEN=127.0.0.1:0"}, "--listen", "127.0.0.1:0", "--data-dir", t.TempDir())
	m := regexp.MustCompile(`msg="broker listening" .* http=(\S+)`).FindStringSubmatch(log.String())
	if m == nil {
		t.Fatalf("startup line does not name the HTTP address:\n%s", log)
	}
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		resp, err := http.Get("http://" + m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", path, resp.StatusCode, body)
		}
		if path == "/metrics" && !strings.Contains(string(body), "factorywire_broker_connections") {
			t.Fatalf("/metrics lacks the broker's metrics:\n%s", body)
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := log.Wait(cmd); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, log)
	}
}

// TestServeLogFormatJSON: with the environment twin of --log-format json,
// every line broker serve logs is a JSON object with time, level and msg.
func TestServeLogFormatJSON(t *testing.T) {
	dir := t.TempDir()
	cmd := command(t, []string{"FACTORYWIRE_BROKER_LOG_FORMAT=json"}, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir)
	m, log := testchild.StartWaiting(t, cmd, regexp.MustCompile(`^\{.*"msg":"broker listening".*\}$`), 30*time.Second)
	var listening map[string]any
	if err := json.Unmarshal([]byte(m[0]), &listening); err != nil {
		t.Fatalf("startup line is not JSON: %v\n%s", err, m[0])
	}
	if listening["level"] != "INFO" || listening["data_dir"] != dir {
		t.Errorf("startup record %v", listening)
	}
	if addr, _ := listening["addr"].(string); !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("addr = %#v, want host:port as a string", listening["addr"])
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := log.Wait(cmd); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, log)
	}
	for _, line := range strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a line is not JSON: %v\n%s", err, line)
		}
		ts, _ := rec["time"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || rec["level"] == nil || rec["msg"] == nil {
			t.Fatalf("a record lacks time, level or msg: %s", line)
		}
	}
}

func TestExitCodes(t *testing.T) {
	badYAML := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(badYAML, []byte("listen: 127.0.0.1:0\ndata_dri: /tmp/x\n"), 0o644)
	emptyYAML := filepath.Join(t.TempDir(), "empty.yaml")
	os.WriteFile(emptyYAML, []byte("listen: 127.0.0.1:0\n"), 0o644)
	locked := t.TempDir()
	startServe(t, nil, "--listen", "127.0.0.1:0", "--data-dir", locked)

	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown config key", []string{"serve", "--config", badYAML}, 2, badYAML + `:2: unknown key "data_dri"`},
		{"missing data dir", []string{"serve", "--listen", "127.0.0.1:0"}, 2, "broker: --data-dir: required"},
		{"missing data dir in a config file", []string{"serve", "--config", emptyYAML}, 2, emptyYAML + ": data_dir: required"},
		{"bad flush policy", []string{"serve", "--data-dir", t.TempDir(), "--flush", "sometimes"}, 2, `--flush: "sometimes"`},
		{"bad http listen", []string{"serve", "--data-dir", t.TempDir(), "--http-listen", "nowhere"}, 2, `--http-listen: "nowhere"`},
		{"unknown flag", []string{"serve", "--bogus"}, 2, "bogus"},
		{"unknown log format", []string{"serve", "--data-dir", t.TempDir(), "--log-format", "xml"}, 2, `--log-format "xml": want text or json`},
		{"repair: unknown log format", []string{"repair", "--data-dir", t.TempDir(), "--topic", "t", "--partition", "0", "--log-format", "xml"}, 2, `--log-format "xml"`},
		{"no subcommand", nil, 2, "missing subcommand: want serve, topics"},
		{"unknown subcommand", []string{"bogus"}, 2, `unknown subcommand "bogus": want serve, topics`},
		{"unknown topics subcommand", []string{"topics", "lst"}, 2, `unknown subcommand "lst": want create, list, describe, alter or delete; try 'broker topics create --help'`},
		{"data dir locked", []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", locked}, 1, "locked by another process"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := command(t, nil, c.args...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != c.code {
				t.Fatalf("exit %v, want code %d\n%s", err, c.code, out)
			}
			if !strings.Contains(string(out), c.want) {
				t.Fatalf("output does not say %q:\n%s", c.want, out)
			}
		})
	}
}
