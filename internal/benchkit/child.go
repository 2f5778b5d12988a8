package benchkit

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

// The lines a role's stdout carries to its parent: its address once it
// listens, and its answers to Ask.
const (
	AddrPrefix  = "ADDR "
	ReplyPrefix = "REPLY "
)

// StartTimeout bounds how long a role may take to print its address.
const StartTimeout = time.Minute

// Role is this binary re-executed as a child that serves something and
// prints AddrPrefix and its address on stdout.
type Role struct {
	Name string   // for messages: "simulator", "ours broker"
	Env  string   // NAME=value that makes the binary play the role
	Args []string // its arguments
	// StopTimeout bounds how long it may take to stop after SIGTERM
	// before it is killed.
	StopTimeout time.Duration
}

// Child is a child process: a Role of this binary or another program.
// Start it with StartRole or StartProgram; stop it with Stop, which is
// idempotent. Children die with this process: Pdeathsig, and for roles
// also the end of their stdin.
type Child struct {
	Name string
	Addr string // the address a role announced; "" for programs

	cmd         *exec.Cmd
	stdin       io.WriteCloser
	lines       chan string   // a role's stdout lines after the address; closed when it exits
	done        chan struct{} // closed when the child has exited
	err         error         // the child's exit error, valid after done
	stopTimeout time.Duration

	askMu    sync.Mutex
	stopOnce sync.Once
	stopErr  error
}

// StartRole re-executes this binary as r and waits for the address it
// prints. Its stderr goes to logw.
func StartRole(ctx context.Context, r Role, logw io.Writer) (*Child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(exe, r.Args...)
	cmd.Env = append(os.Environ(), r.Env)
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
		return nil, fmt.Errorf("start %s: %w", r.Name, err)
	}
	p := &Child{Name: r.Name, cmd: cmd, stdin: stdin, lines: make(chan string, 16), done: make(chan struct{}), stopTimeout: r.StopTimeout}
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

	timer := time.NewTimer(StartTimeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				<-p.done
				return nil, fmt.Errorf("%s exited before listening: %v", r.Name, p.err)
			}
			if a, found := strings.CutPrefix(line, AddrPrefix); found {
				p.Addr = a
				return p, nil
			}
			continue
		case <-timer.C:
			err = fmt.Errorf("%s did not print its address within %v", r.Name, StartTimeout)
		case <-ctx.Done():
			err = ctx.Err()
		}
		p.Stop()
		return nil, err
	}
}

// StartProgram starts another program, its stdout and stderr to logw.
func StartProgram(name, path string, args []string, stopTimeout time.Duration, logw io.Writer) (*Child, error) {
	cmd := exec.Command(path, args...)
	cmd.Stdout = logw
	cmd.Stderr = logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Child{Name: name, cmd: cmd, done: make(chan struct{}), stopTimeout: stopTimeout}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process id.
func (p *Child) Pid() int { return p.cmd.Process.Pid }

// Alive reports whether the child is still running.
func (p *Child) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// ExitErr is the child's exit error once it has exited, nil before.
func (p *Child) ExitErr() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Ask sends a command line to a role and returns its reply line (after
// ReplyPrefix), waiting up to timeout.
func (p *Child) Ask(command string, timeout time.Duration) (string, error) {
	p.askMu.Lock()
	defer p.askMu.Unlock()
	if p.stdin == nil {
		return "", fmt.Errorf("%s takes no commands", p.Name)
	}
	if _, err := io.WriteString(p.stdin, command+"\n"); err != nil {
		return "", fmt.Errorf("%s: send %q: %w", p.Name, command, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				return "", fmt.Errorf("%s exited while asked %q", p.Name, command)
			}
			if r, found := strings.CutPrefix(line, ReplyPrefix); found {
				return r, nil
			}
		case <-timer.C:
			return "", fmt.Errorf("%s did not answer %q within %v", p.Name, command, timeout)
		}
	}
}

// Stop asks the child to stop (SIGTERM), waits for it up to its stop
// timeout, then kills it. It returns the child's exit error; a child that
// died of the SIGTERM (a program without a handler) stopped fine.
func (p *Child) Stop() error {
	p.stopOnce.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(p.stopTimeout)
		defer timer.Stop()
		select {
		case <-p.done:
			p.stopErr = p.err
		case <-timer.C:
			p.cmd.Process.Kill()
			<-p.done
			p.stopErr = fmt.Errorf("%s did not stop within %v after SIGTERM; killed", p.Name, p.stopTimeout)
		}
		if p.stdin != nil {
			p.stdin.Close()
		}
		var ee *exec.ExitError
		if errors.As(p.stopErr, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				p.stopErr = nil
			} else {
				p.stopErr = fmt.Errorf("%s exited with %v", p.Name, ee.ProcessState)
			}
		}
	})
	return p.stopErr
}

// StopAll stops every child, the last started first, and returns the first
// error. Nil entries are skipped.
func StopAll(ps []*Child) error {
	var first error
	for i := len(ps) - 1; i >= 0; i-- {
		if ps[i] == nil {
			continue
		}
		if err := ps[i].Stop(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
