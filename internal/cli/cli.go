// Package cli is what factorywire's commands share around ffcli: the
// usage error that exits with status 2, and main's exit codes.
package cli

import (
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// UsageError marks an error in how a command was called (flags, config):
// Main exits with status 2 for it.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }

func (e UsageError) Unwrap() error { return e.Err }

// ExitError is an outcome that is neither success nor failure, which Main
// reports with its own exit status: sink query gaps returns one with Code
// 3 when samples are missing, so a check can tell lost samples from a
// query that failed (1) or a mistyped command (2). Main prints Err as it
// prints a failure.
type ExitError struct {
	Code int // 3 or more: 1 and 2 are Main's
	Err  error
}

func (e ExitError) Error() string { return e.Err.Error() }

func (e ExitError) Unwrap() error { return e.Err }

// Run parses args into root and runs the subcommand they name. --help is
// not an error; a parse error is a UsageError.
func Run(root *ffcli.Command, args []string) error {
	if err := root.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return UsageError{Err: err}
	}
	return root.Run(context.Background())
}

// Main runs run with the process's arguments and standard output and exits:
// 0 on success, 2 for a UsageError or --help, an ExitError's Code for an
// ExitError, 1 for any other error; it prints the error after name.
func Main(name string, run func(args []string, stdout io.Writer) error) {
	err := run(os.Args[1:], os.Stdout)
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	var ee ExitError
	if errors.As(err, &ee) && ee.Code > 2 {
		os.Exit(ee.Code)
	}
	var ue UsageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	os.Exit(1)
}

// LogFormatUsage is the help text of every --log-format flag.
const LogFormatUsage = "text (key=value pairs) or json (one object per line: time, level, msg, then the attributes)"

// Logger is the logger to standard error at the --log-level level ("debug",
// "info", "warn" or "error") in the --log-format format: "text" (slog's
// key=value lines) or "json" (one JSON object per line with the keys time,
// level and msg, then the attributes). An unknown level or format is a
// UsageError naming its flag.
func Logger(level, format string) (*slog.Logger, error) {
	return NewLogger(os.Stderr, level, format)
}

// NewLogger is Logger writing to w. In JSON, a duration is its string as
// in text ("1.5s", not slog's nanoseconds, whose unit the key does not
// name), and a value that is a fmt.Stringer but neither an error nor a
// json.Marshaler or encoding.TextMarshaler (a *net.TCPAddr) is its String,
// as text shows it, not its struct fields.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, UsageError{Err: fmt.Errorf("--log-level %q: %v", level, err)}
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		opts.ReplaceAttr = jsonAttr
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, UsageError{Err: fmt.Errorf("--log-format %q: want text or json", format)}
}

// jsonAttr is the JSON handler's ReplaceAttr: see NewLogger. slog has
// resolved LogValuers (secrets print redacted) before it is called.
func jsonAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindDuration:
		return slog.String(a.Key, a.Value.Duration().String())
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case error, json.Marshaler, encoding.TextMarshaler:
		case fmt.Stringer:
			return slog.String(a.Key, v.String())
		}
	}
	return a
}

// NeedSubcommand is the Exec of a command that only groups subcommands
// (broker topics): called without one, or with a word that names none, it
// returns a UsageError that says which, and lists the subcommands with the
// way to their help ("try 'broker topics create --help'").
func NeedSubcommand(path string, subs []*ffcli.Command) func(context.Context, []string) error {
	return func(_ context.Context, args []string) error {
		names := make([]string, len(subs))
		for i, s := range subs {
			names[i] = s.Name
		}
		want := fmt.Sprintf("want %s; try '%s %s --help'", orList(names), path, names[0])
		if len(args) == 0 {
			return UsageError{Err: fmt.Errorf("missing subcommand: %s", want)}
		}
		return UsageError{Err: fmt.Errorf("unknown subcommand %q: %s", args[0], want)}
	}
}

// orList is "a", "a or b", "a, b or c".
func orList(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// KeyToFlag returns err, a config validation error that begins with a
// config key ("data_dir: required"), beginning with that key's flag
// instead ("--data-dir: required") when flagOf has one: for a command run
// with flags and no config file, whose user never wrote the key.
func KeyToFlag(err error, flagOf map[string]string) error {
	msg := err.Error()
	key, rest, ok := strings.Cut(msg, ":")
	if flag, known := flagOf[key]; ok && known {
		return renamed{msg: flag + ":" + rest, err: err}
	}
	return err
}

// renamed is an error with another message that still wraps the original.
type renamed struct {
	msg string
	err error
}

func (r renamed) Error() string { return r.msg }

func (r renamed) Unwrap() error { return r.err }
