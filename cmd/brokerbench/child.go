package main

import (
	"context"
	"io"
	"time"

	"github.com/factorywire/factorywire/internal/benchkit"
)

// brokerProc is a broker running in a child process. Start it with
// startChild; stop it with Stop, which is idempotent.
type brokerProc struct {
	*benchkit.Child
	kind string
	dir  string
}

// childStopTimeout bounds how long a child may take to close its broker
// after SIGTERM before it is killed.
const childStopTimeout = 2 * time.Minute

// startChild re-executes this binary as a broker of the given kind over
// dir and waits for its address. profile, if not empty, is the file the
// child writes its CPU profile to. The child dies with this process
// (Pdeathsig, and the end of its stdin).
func startChild(ctx context.Context, kind, dir, profile string, logw io.Writer) (*brokerProc, error) {
	args := []string{"serve", "-kind", kind, "-dir", dir}
	if profile != "" {
		args = append(args, "-cpuprofile", profile)
	}
	c, err := benchkit.StartRole(ctx, benchkit.Role{Name: kind + " broker", Env: childEnv + "=1", Args: args, StopTimeout: childStopTimeout}, logw)
	if err != nil {
		return nil, err
	}
	return &brokerProc{Child: c, kind: kind, dir: dir}, nil
}
