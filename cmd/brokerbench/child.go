package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// brokerProc is a broker running in a child process. Start it with
// startChild; stop it with stop, which is idempotent.
type brokerProc struct {
	kind  string
	addr  string
	dir   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when the child has exited
	err   error         // the child's exit error, valid after done

	stopOnce sync.Once
	stopErr  error
}

// childStartTimeout bounds how long a child may take to print its address.
const childStartTimeout = 60 * time.Second

// childStopTimeout bounds how long a child may take to close its broker
// after SIGTERM before it is killed.
const childStopTimeout = 2 * time.Minute

// startChild re-executes this binary as a broker of the given kind over
// dir and waits for its address. profile, if not empty, is the file the
// child writes its CPU profile to. The child dies with this process
// (Pdeathsig, and the end of its stdin).
func startChild(ctx context.Context, kind, dir, profile string, logw io.Writer) (*brokerProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	args := []string{"serve", "-kind", kind, "-dir", dir}
	if profile != "" {
		args = append(args, "-cpuprofile", profile)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s broker: %w", kind, err)
	}
	p := &brokerProc{kind: kind, dir: dir, cmd: cmd, stdin: stdin, done: make(chan struct{})}

	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() { // bounded by the child's output, which ends when it exits
			if line := sc.Text(); !sent && strings.HasPrefix(line, addrPrefix) {
				addrc <- strings.TrimPrefix(line, addrPrefix)
				sent = true
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()

	timer := time.NewTimer(childStartTimeout)
	defer timer.Stop()
	select {
	case p.addr = <-addrc:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s broker exited before listening: %v", kind, p.err)
	case <-timer.C:
		err = fmt.Errorf("%s broker did not print its address within %v", kind, childStartTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.stop()
	return nil, err
}

// pid is the child's process id.
func (p *brokerProc) pid() int { return p.cmd.Process.Pid }

// stop asks the child to close its broker (SIGTERM), waits for it up to
// childStopTimeout, then kills it. It returns the child's exit error.
func (p *brokerProc) stop() error {
	p.stopOnce.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(childStopTimeout)
		defer timer.Stop()
		select {
		case <-p.done:
			p.stopErr = p.err
		case <-timer.C:
			p.cmd.Process.Kill()
			<-p.done
			p.stopErr = fmt.Errorf("%s broker did not stop within %v after SIGTERM; killed", p.kind, childStopTimeout)
		}
		p.stdin.Close()
		if p.stopErr != nil {
			var ee *exec.ExitError
			if errors.As(p.stopErr, &ee) {
				p.stopErr = fmt.Errorf("%s broker exited with %v", p.kind, ee.ProcessState)
			}
		}
	})
	return p.stopErr
}

// alive reports whether the child is still running.
func (p *brokerProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}
