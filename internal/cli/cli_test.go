package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func TestNewLogger(t *testing.T) {
	t.Run("json", func(t *testing.T) {
		var buf bytes.Buffer
		l, err := NewLogger(&buf, "info", "json")
		if err != nil {
			t.Fatal(err)
		}
		l.Debug("hidden")
		l.Info("broker listening", "addr", "127.0.0.1:9092")
		lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if len(lines) != 1 {
			t.Fatalf("want one line (debug filtered out), got:\n%s", buf.String())
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
			t.Fatalf("line is not JSON: %v\n%s", err, lines[0])
		}
		if rec["msg"] != "broker listening" || rec["level"] != "INFO" || rec["addr"] != "127.0.0.1:9092" {
			t.Fatalf("record %v", rec)
		}
		ts, _ := rec["time"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Fatalf("time %q: %v", rec["time"], err)
		}
	})
	t.Run("json values", func(t *testing.T) {
		var buf bytes.Buffer
		l, err := NewLogger(&buf, "info", "json")
		if err != nil {
			t.Fatal(err)
		}
		l.Info("values", "wait", 1500*time.Millisecond, "addr", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9092},
			"err", errors.New("connection refused"), "password", secret("hunter2"), "n", 3)
		var rec map[string]any
		if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, buf.String())
		}
		want := map[string]any{"wait": "1.5s", "addr": "127.0.0.1:9092", "err": "connection refused", "password": "<secret>", "n": 3.0}
		for k, v := range want {
			if rec[k] != v {
				t.Errorf("%s = %#v, want %#v (line %s)", k, rec[k], v, buf.String())
			}
		}
		if strings.Contains(buf.String(), "hunter2") {
			t.Errorf("the secret shows: %s", buf.String())
		}
	})
	t.Run("text", func(t *testing.T) {
		var buf bytes.Buffer
		l, err := NewLogger(&buf, "warn", "text")
		if err != nil {
			t.Fatal(err)
		}
		l.Info("hidden")
		l.Warn("spool full", "samples", 3)
		if got := buf.String(); !strings.Contains(got, `level=WARN msg="spool full" samples=3`) || strings.Contains(got, "hidden") {
			t.Fatalf("text output:\n%s", got)
		}
	})
	for _, tc := range []struct {
		name, level, format, want string
	}{
		{"unknown format", "info", "yaml", `--log-format "yaml": want text or json`},
		{"empty format", "info", "", `--log-format ""`},
		{"format is case-sensitive", "info", "JSON", `--log-format "JSON"`},
		{"unknown level", "loud", "json", `--log-level "loud"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewLogger(&bytes.Buffer{}, tc.level, tc.format)
			var ue UsageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewLogger(%q, %q) = %v, want a UsageError containing %q", tc.level, tc.format, err, tc.want)
			}
		})
	}
}

// secret redacts itself as the repository's secrets do.
type secret string

func (secret) LogValue() slog.Value { return slog.StringValue("<secret>") }

func (secret) String() string { return "<secret>" }

func TestNeedSubcommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "missing subcommand: want create, list or delete; try 'broker topics create --help'"},
		{[]string{"bogus"}, `unknown subcommand "bogus": want create, list or delete; try 'broker topics create --help'`},
	} {
		subs := []*ffcli.Command{{Name: "create"}, {Name: "list"}, {Name: "delete"}}
		root := &ffcli.Command{Name: "topics", Subcommands: subs, Exec: NeedSubcommand("broker topics", subs)}
		err := Run(root, tc.args)
		var ue UsageError
		if !errors.As(err, &ue) || err.Error() != tc.want {
			t.Errorf("%v: got %v (%T), want the usage error %q", tc.args, err, err, tc.want)
		}
	}
}
