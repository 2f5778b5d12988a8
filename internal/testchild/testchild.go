// Package testchild runs a package's test binary again as a child process
// that plays a component (a gateway, a sink) from a YAML config, for tests
// that kill processes. The package's TestMain runs the component instead
// of the tests when the child's environment variable is set.
package testchild

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Start writes cfg as YAML to dir/file and starts the test binary again,
// running no test, with configEnv set to that file and the extra
// environment env ("NAME=value"). Its standard error is the test's. The
// test kills it at the end if it still runs.
func Start(t testing.TB, configEnv string, cfg any, dir, file string, env ...string) *exec.Cmd {
	t.Helper()
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), configEnv+"="+path), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}
