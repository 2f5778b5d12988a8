//go:build ignore

// testsummary reads `go test -json` on standard input and prints what a CI
// log needs: each package's result as `go test` prints it, the whole
// output of every test that failed (and of a package that failed outside
// any test: a build error, a panic in TestMain), and at the end every
// skipped test with its reason, so a skip that should not happen is seen.
// Lines that are not test2json events are printed as they come.
//
//	go test -json ./... | go run .ci/testsummary.go
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	Elapsed    float64
	ImportPath string // build events
}

type skip struct{ pkg, test, reason string }

func main() {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	outputs := map[string][]string{} // package + "\x00" + test -> output lines
	var skips []skip
	failed := 0
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		line := in.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(out, "%s\n", line)
			continue
		}
		switch e.Action {
		case "build-output":
			fmt.Fprint(out, e.Output)
			continue
		case "build-fail":
			continue
		}
		key := e.Package + "\x00" + e.Test
		switch e.Action {
		case "output":
			outputs[key] = append(outputs[key], e.Output)
		case "pass":
			if e.Test == "" {
				fmt.Fprintf(out, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
			}
			delete(outputs, key)
		case "skip":
			if e.Test == "" {
				fmt.Fprintf(out, "?   \t%s\t[no test files]\n", e.Package)
			} else {
				skips = append(skips, skip{e.Package, e.Test, reason(outputs[key])})
			}
			delete(outputs, key)
		case "fail":
			// The output ends with go test's own --- FAIL or FAIL
			// line.
			if e.Test != "" {
				failed++
			}
			for _, l := range outputs[key] {
				fmt.Fprint(out, l)
			}
			delete(outputs, key)
		}
		out.Flush()
	}
	if err := in.Err(); err != nil {
		fmt.Fprintf(out, "testsummary: reading the test output: %v\n", err)
	}
	fmt.Fprintf(out, "\n%d tests skipped", len(skips))
	if len(skips) > 0 {
		fmt.Fprint(out, ":")
	}
	fmt.Fprintln(out)
	for _, s := range skips {
		fmt.Fprintf(out, "  %s %s: %s\n", s.pkg, s.test, s.reason)
	}
	fmt.Fprintf(out, "%d tests failed\n", failed)
}

// reason is what a skipped test said: its output without the framing
// lines go test adds (=== RUN, --- SKIP), on one line.
func reason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " | ")
}
