package brokersoak

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/factorywire/factorywire/internal/benchkit"
)

// brokerPackage is what is built when no broker binary is given.
const brokerPackage = "github.com/factorywire/factorywire/cmd/broker"

// brokerStartTimeout bounds how long the broker may take to log that it
// listens; brokerStopTimeout how long it may take to stop after SIGTERM.
const (
	brokerStartTimeout = time.Minute
	brokerStopTimeout  = 30 * time.Second
)

// buildBroker builds cmd/broker into dir and returns the binary's path.
func buildBroker(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "broker")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, brokerPackage)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the broker (go build %s; run inside the factorywire module or pass -broker-bin): %v\n%s", brokerPackage, err, out)
	}
	return bin, nil
}

// brokerProc is the broker child process and its log file.
type brokerProc struct {
	child   *benchkit.Child
	addr    string
	logPath string
	logFile *os.File
}

var listeningRE = regexp.MustCompile(`msg="broker listening" addr=(\S+)`)

// startBroker runs `bin serve --config configPath`, its stdout and stderr
// to logPath, and waits for its "broker listening" line.
func startBroker(ctx context.Context, bin, configPath, logPath string) (*brokerProc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	child, err := benchkit.StartProgram("broker", bin, []string{"serve", "--config", configPath}, brokerStopTimeout, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &brokerProc{child: child, logPath: logPath, logFile: f}
	deadline := time.Now().Add(brokerStartTimeout)
	for time.Now().Before(deadline) { // bounded by brokerStartTimeout
		if raw, err := os.ReadFile(logPath); err == nil {
			if m := listeningRE.FindSubmatch(raw); m != nil {
				p.addr = string(m[1])
				return p, nil
			}
		}
		if !child.Alive() {
			p.stop()
			return nil, fmt.Errorf("broker exited before listening (%v); its log:\n%s", child.ExitErr(), tail(logPath, 20))
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			p.stop()
			return nil, err
		}
	}
	p.stop()
	return nil, fmt.Errorf("broker did not log \"broker listening\" within %v; its log:\n%s", brokerStartTimeout, tail(logPath, 20))
}

// stop stops the broker (SIGTERM, then SIGKILL after brokerStopTimeout)
// and returns its exit error. It is idempotent.
func (p *brokerProc) stop() error {
	err := p.child.Stop()
	p.logFile.Close()
	return err
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogSummary is what the broker's log says about a run.
type LogSummary struct {
	// LimitLines counts the log lines naming each limit (limit=<key>); a
	// limit is logged at most once a minute, so LimitHits adds the
	// hits_not_logged those lines carry. Both are lower bounds of the hits
	// (the hits after a limit's last line are never logged); the metric
	// factorywire_broker_limit_hits_total is exact.
	LimitLines map[string]int
	LimitHits  map[string]int
	// Levels counts lines by level (WARN, ERROR).
	Levels map[string]int
	// Panics counts lines starting a Go panic or fatal error.
	Panics int
	// Errors holds up to 10 distinct ERROR messages.
	Errors []string
}

var (
	limitRE   = regexp.MustCompile(`(?:^| )limit=("(?:[^"\\]|\\.)*"|\S+)`)
	skippedRE = regexp.MustCompile(`(?:^| )hits_not_logged=(\d+)`)
	levelRE   = regexp.MustCompile(`(?:^| )level=(\S+)`)
	msgRE     = regexp.MustCompile(`(?:^| )msg=("(?:[^"\\]|\\.)*"|\S+)`)
)

// readLog summarises the broker's log (slog's text format).
func readLog(path string) (LogSummary, error) {
	s := LogSummary{LimitLines: map[string]int{}, LimitHits: map[string]int{}, Levels: map[string]int{}}
	raw, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
			s.Panics++
			continue
		}
		if m := levelRE.FindStringSubmatch(line); m != nil {
			s.Levels[m[1]]++
			if m[1] == "ERROR" && len(s.Errors) < 10 {
				if mm := msgRE.FindStringSubmatch(line); mm != nil && !slices.Contains(s.Errors, unquote(mm[1])) {
					s.Errors = append(s.Errors, unquote(mm[1]))
				}
			}
		}
		m := limitRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		limit := unquote(m[1])
		s.LimitLines[limit]++
		s.LimitHits[limit]++
		if sk := skippedRE.FindStringSubmatch(line); sk != nil {
			n, _ := strconv.Atoi(sk[1])
			s.LimitHits[limit] += n
		}
	}
	return s, sc.Err()
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
