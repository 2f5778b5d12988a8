package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/factorywire/factorywire/internal/cli"
)

// childArgsEnv, when set to a JSON array of arguments, makes the test
// binary run sink with them instead of the tests: a child process that a
// test can signal.
const childArgsEnv = "FW_SINK_TEST_CHILD_ARGS"

func TestMain(m *testing.M) {
	if raw := os.Getenv(childArgsEnv); raw != "" {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", childArgsEnv, err)
			os.Exit(2)
		}
		os.Args = append([]string{"sink"}, args...)
		cli.Main("sink", run)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// syncBuffer is a bytes.Buffer safe for a process writing while a test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStandin runs `sink standin` as a child process, reads the URI it
// prints first, pings and writes through it, stops it with SIGTERM and
// checks that it exits 0 and warned that it is not MongoDB.
func TestStandin(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "standin") // the command creates it
	args, err := json.Marshal([]string{"standin", "--data-dir", dir, "--listen", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childArgsEnv+"="+string(args))
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
	}()
	var uri string
	select {
	case line := <-lines:
		uri = strings.TrimSuffix(line, "\n")
	case <-time.After(60 * time.Second):
		t.Fatalf("no URI printed after 60s; standard error:\n%s", stderr.String())
	}
	if !strings.HasPrefix(uri, "mongodb://127.0.0.1:") || !strings.HasSuffix(uri, "/") {
		t.Fatalf("first line %q, want mongodb://127.0.0.1:PORT/; standard error:\n%s", uri, stderr.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(ctx, nil); err != nil {
		t.Fatalf("ping %s: %v", uri, err)
	}
	if _, err := client.Database("factorywire").Collection("plant-a.press").InsertOne(ctx, map[string]string{"device": "press-01"}); err != nil {
		t.Fatalf("insert through %s: %v", uri, err)
	}
	// Disconnected first, so the stand-in need not wait for the connection.
	if err := client.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if files, _ := os.ReadDir(dir); len(files) == 0 {
		t.Errorf("no files in --data-dir %s", dir)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("sink standin still runs 60s after SIGTERM; standard error:\n%s", stderr.String())
	}
	if err != nil {
		t.Fatalf("sink standin exited with %v after SIGTERM, want status 0; standard error:\n%s", err, stderr.String())
	}
	for _, want := range []string{"THIS IS NOT MONGODB", "mongodb.time_series: false", uri, "stand-in stopped"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("standard error lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestStandinUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no data dir", nil, "--data-dir DIR is required"},
		{"all interfaces", []string{"--data-dir", dir, "--listen", ":27017"}, `--listen ":27017" is not a loopback address`},
		{"another host", []string{"--data-dir", dir, "--listen", "192.0.2.1:27017"}, "give --allow-remote"},
		{"no port", []string{"--data-dir", dir, "--listen", "127.0.0.1"}, `--listen "127.0.0.1"`},
		{"bad log format", []string{"--data-dir", dir, "--log-format", "yaml"}, `--log-format "yaml"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(append([]string{"standin", "--log-level", "error"}, tc.args...), &bytes.Buffer{})
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run = %v, want a usage error containing %q", err, tc.want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a refused standin wrote into %s", dir)
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:27017": true, "127.0.0.2:0": true, "[::1]:27017": true, "localhost:27017": true,
		":27017": false, "0.0.0.0:27017": false, "[::]:27017": false, "10.0.0.1:27017": false, "db.example:27017": false, "127.0.0.1": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
