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

// proc is a child process: a role of this binary, re-executed (a
// simulator, the broker, our gateway), or another program (Telegraf).
// Start it with startRole or startProgram; stop it with stop, which is
// idempotent. Children die with this process: Pdeathsig, and for roles
// also the end of their stdin.
type proc struct {
	name  string
	addr  string // the address a role announced; "" for programs
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string   // a role's stdout lines after the address; closed when it exits
	done  chan struct{} // closed when the child has exited
	err   error         // the child's exit error, valid after done

	askMu    sync.Mutex
	stopOnce sync.Once
	stopErr  error
}

// childStartTimeout bounds how long a role may take to print its address.
const childStartTimeout = time.Minute

// childStopTimeout bounds how long a child may take to stop after SIGTERM
// before it is killed. A gateway gives its forwarder up to 5 s.
const childStopTimeout = 30 * time.Second

// startRole re-executes this binary as role (serve.go) with args and waits
// for the address it prints. Its stderr goes to logw.
func startRole(ctx context.Context, role string, args []string, logw io.Writer) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"="+role)
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
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	p := &proc{name: role, cmd: cmd, stdin: stdin, lines: make(chan string, 16), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() { // bounded by the child's output, which ends when it exits
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()

	timer := time.NewTimer(childStartTimeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				<-p.done
				return nil, fmt.Errorf("%s exited before listening: %v", role, p.err)
			}
			if a, found := strings.CutPrefix(line, addrPrefix); found {
				p.addr = a
				return p, nil
			}
			continue
		case <-timer.C:
			err = fmt.Errorf("%s did not print its address within %v", role, childStartTimeout)
		case <-ctx.Done():
			err = ctx.Err()
		}
		p.stop()
		return nil, err
	}
}

// startProgram starts another program, its stdout and stderr to logw.
func startProgram(name, path string, args []string, logw io.Writer) (*proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Stdout = logw
	cmd.Stderr = logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid is the child's process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// alive reports whether the child is still running.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// ask sends a command line to a role and returns its reply line (after
// replyPrefix), waiting up to timeout.
func (p *proc) ask(command string, timeout time.Duration) (string, error) {
	p.askMu.Lock()
	defer p.askMu.Unlock()
	if p.stdin == nil {
		return "", fmt.Errorf("%s takes no commands", p.name)
	}
	if _, err := io.WriteString(p.stdin, command+"\n"); err != nil {
		return "", fmt.Errorf("%s: send %q: %w", p.name, command, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return "", fmt.Errorf("%s exited while asked %q", p.name, command)
			}
			if r, found := strings.CutPrefix(line, replyPrefix); found {
				return r, nil
			}
		case <-timer.C:
			return "", fmt.Errorf("%s did not answer %q within %v", p.name, command, timeout)
		}
	}
}

// stop asks the child to stop (SIGTERM), waits for it up to
// childStopTimeout, then kills it. It returns the child's exit error.
func (p *proc) stop() error {
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
			p.stopErr = fmt.Errorf("%s did not stop within %v after SIGTERM; killed", p.name, childStopTimeout)
		}
		if p.stdin != nil {
			p.stdin.Close()
		}
		var ee *exec.ExitError
		if errors.As(p.stopErr, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				p.stopErr = nil // a program without a SIGTERM handler
			} else {
				p.stopErr = fmt.Errorf("%s exited with %v", p.name, ee.ProcessState)
			}
		}
	})
	return p.stopErr
}

// stopAll stops every child, the last started first, and returns the first
// error.
func stopAll(ps []*proc) error {
	var first error
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i] == nil {
			continue
		}
		if err := ps[i].stop(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
