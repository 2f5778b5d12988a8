package testchild

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// AsMain lets a command's tests run the test binary as the command: call
// it first in TestMain. When RunMain started this process (argsEnv holds
// the arguments) or the command started it as one of its children (the
// environment variable childEnv is set; "" for none), it calls main, which
// is expected to exit; otherwise it returns and TestMain runs the tests.
func AsMain(name, argsEnv, childEnv string, main func()) {
	if childEnv != "" && os.Getenv(childEnv) != "" {
		main()
	}
	if raw := os.Getenv(argsEnv); raw != "" {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			panic(err)
		}
		os.Args = append([]string{name}, args...)
		main()
	}
}

// RunMain runs the test binary as the command (see AsMain) with args and
// returns its standard output, standard error and exit status.
func RunMain(t testing.TB, argsEnv string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	raw, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), argsEnv+"="+string(raw))
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}
