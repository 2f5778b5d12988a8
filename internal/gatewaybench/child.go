package gatewaybench

import (
	"context"
	"io"
	"time"

	"github.com/factorywire/factorywire/internal/benchkit"
)

// proc is a child process: a role of this binary, re-executed (a
// simulator, the broker, our gateway), or another program (Telegraf).
type proc = benchkit.Child

// childStopTimeout bounds how long a child may take to stop after SIGTERM
// before it is killed. A gateway gives its forwarder up to 5 s.
const childStopTimeout = 30 * time.Second

// startRole re-executes this binary as role (serve.go) with args and waits
// for the address it prints. Its stderr goes to logw.
func startRole(ctx context.Context, role string, args []string, logw io.Writer) (*proc, error) {
	return benchkit.StartRole(ctx, benchkit.Role{Name: role, Env: ChildEnv + "=" + role, Args: args, StopTimeout: childStopTimeout}, logw)
}

// startProgram starts another program, its stdout and stderr to logw.
func startProgram(name, path string, args []string, logw io.Writer) (*proc, error) {
	return benchkit.StartProgram(name, path, args, childStopTimeout, logw)
}
