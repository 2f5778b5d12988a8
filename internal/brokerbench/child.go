package brokerbench

import (
	"context"
	"io"
	"time"

	"github.com/factorywire/factorywire/internal/benchkit"
	"github.com/factorywire/factorywire/internal/procstat"
)

// brokerProc is a broker running in a child process: a broker child of
// this binary (startChild) or Apache Kafka's java process (startKafka).
// Stop it with Stop, which is idempotent.
type brokerProc struct {
	kind string
	Addr string       // its listener
	ep   endpoint     // how clients reach it; set by bench.withBroker
	dir  string       // its data dir
	pid  int          // the process /proc is read for
	stop func() error // idempotent
	// disk returns the bytes of benchTopic's data on disk; nil means
	// procstat.DirBytes(dir).
	disk func() int64
}

// Pid is the broker's process id.
func (p *brokerProc) Pid() int { return p.pid }

// diskBytes is the size of the broker's data on disk: its data dir's files
// (apparent size) for ours and kfake, benchTopic's partition folders
// (allocated blocks) for Kafka.
func (p *brokerProc) diskBytes() int64 {
	if p.disk != nil {
		return p.disk()
	}
	return procstat.DirBytes(p.dir)
}

// Stop stops the broker and reports whether it ran and stopped cleanly.
func (p *brokerProc) Stop() error { return p.stop() }

// childStopTimeout bounds how long a child may take to close its broker
// after SIGTERM before it is killed.
const childStopTimeout = 2 * time.Minute

// startChild re-executes this binary as a broker of the given kind over
// dir and waits for its address. secureDir holds the secure kind's
// certificate, key and password (secureFiles; ignored by the other kinds).
// profile, if not empty, is the file the child writes its CPU profile to.
// The child dies with this process (Pdeathsig, and the end of its stdin).
func startChild(ctx context.Context, kind, dir, secureDir, profile string, logw io.Writer) (*brokerProc, error) {
	args := []string{"serve", "-kind", kind, "-dir", dir}
	if kind == kindOursSASLSSL {
		args = append(args, "-secure", secureDir)
	}
	if profile != "" {
		args = append(args, "-cpuprofile", profile)
	}
	c, err := benchkit.StartRole(ctx, benchkit.Role{Name: kind + " broker", Env: ChildEnv + "=1", Args: args, StopTimeout: childStopTimeout}, logw)
	if err != nil {
		return nil, err
	}
	return &brokerProc{kind: kind, Addr: c.Addr, dir: dir, pid: c.Pid(), stop: c.Stop}, nil
}
