package testchild

import (
	"bufio"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Log is a child's standard error as read so far, safe to read while the
// child still writes.
type Log struct {
	mu   sync.Mutex
	b    strings.Builder
	done chan struct{} // closed once standard error is read to its end
}

// eofWait bounds how long Wait waits for the end of a child's standard
// error: a grandchild holding it open must not hang the test.
const eofWait = 10 * time.Second

// Wait waits for cmd, the child l reads, to exit, and returns cmd.Wait's
// error. It first reads the child's standard error to its end (at most
// eofWait): os/exec closes the pipe in Wait, so a Wait called while the
// last lines are still unread loses them, and a test that then looks for
// the child's last line fails now and then.
func (l *Log) Wait(cmd *exec.Cmd) error {
	select {
	case <-l.done:
	case <-time.After(eofWait):
	}
	return cmd.Wait()
}

func (l *Log) add(line string) {
	l.mu.Lock()
	l.b.WriteString(line)
	l.b.WriteByte('\n')
	l.mu.Unlock()
}

// String returns the lines read so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartWaiting starts cmd, reads its standard error into a Log, and returns
// once a line matches re, with the match's submatches (for example the
// address a server logs when it listens). It fails the test if the child
// exits first or no line matches within timeout, showing what it logged.
// The test kills the child at the end if it still runs. Wait for the
// child with the Log's Wait, not cmd.Wait, to keep its last lines.
func StartWaiting(t testing.TB, cmd *exec.Cmd, re *regexp.Regexp, timeout time.Duration) ([]string, *Log) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	log := &Log{done: make(chan struct{})}
	found := make(chan []string, 1)
	go func() {
		defer close(log.done)
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			log.add(sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m
				sent = true
			}
		}
		if !sent {
			close(found)
		}
	}()
	select {
	case m, ok := <-found:
		if !ok {
			t.Fatalf("%s exited before logging a line matching %s:\n%s", cmd.Path, re, log)
		}
		return m, log
	case <-time.After(timeout):
		t.Fatalf("%s logged no line matching %s within %v:\n%s", cmd.Path, re, timeout, log)
	}
	return nil, nil
}
