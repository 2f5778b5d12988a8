package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const clear = "hunter2-Ünïcode"

// TestRedacted prints, logs and marshals a Secret every way a program
// might, alone and inside a struct, and checks that the text never shows.
func TestRedacted(t *testing.T) {
	s := New(clear)
	type holder struct {
		User     string
		Password Secret
		Ptr      *Secret
	}
	h := holder{User: "u", Password: s, Ptr: &s}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%T"} {
		out = append(out, fmt.Sprintf(verb, s), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h))
	}
	out = append(out, fmt.Sprint(s), fmt.Sprintln(h), s.String(), s.GoString(), fmt.Errorf("login: %v", s).Error())
	for _, v := range []any{s, h, &h} {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		y, err := yaml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(j), string(y))
	}
	txt, _ := s.MarshalText()
	out = append(out, string(txt))
	var buf bytes.Buffer
	for _, handler := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		l := slog.New(handler)
		l.Info("connect", "password", s, "holder", h, "ptr", &s)
		l.Info("group", slog.Group("sasl", "password", s))
	}
	out = append(out, buf.String())
	for _, o := range out {
		if strings.Contains(o, clear) || strings.Contains(o, fmt.Sprintf("%x", clear)) || strings.Contains(o, fmt.Sprintf("%X", clear)) {
			t.Errorf("secret leaked: %s", o)
		}
	}
	if got := fmt.Sprint(s); got != Redacted {
		t.Errorf("Sprint = %q, want %q", got, Redacted)
	}
	if !strings.Contains(buf.String(), "password="+Redacted) {
		t.Errorf("text log lacks password=%s: %s", Redacted, buf.String())
	}
	var decoded string
	if j, _ := json.Marshal(s); json.Unmarshal(j, &decoded) != nil || decoded != Redacted {
		t.Errorf("JSON %s", j)
	}
	if s.Reveal() != clear {
		t.Errorf("Reveal = %q", s.Reveal())
	}
	if got := fmt.Sprint(Secret{}); got != "" {
		t.Errorf("empty secret prints %q, want \"\"", got)
	}
}

func TestEqual(t *testing.T) {
	cases := []struct {
		name string
		a, b Secret
		want bool
	}{
		{"same", New("abc"), New("abc"), true},
		{"different", New("abc"), New("abd"), false},
		{"prefix", New("abc"), New("abcd"), false},
		{"both empty", Secret{}, New(""), true},
		{"one empty", Secret{}, New("a"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.a.Equal(c.b); got != c.want {
				t.Errorf("Equal = %v, want %v", got, c.want)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("SECRET_TEST_SET", clear)
	t.Setenv("SECRET_TEST_EMPTY", "")
	cases := []struct {
		name, env string
		want      string // error substring; empty = success
	}{
		{"set", "SECRET_TEST_SET", ""},
		{"unset names the variable", "SECRET_TEST_UNSET", "environment variable SECRET_TEST_UNSET is not set"},
		{"empty", "SECRET_TEST_EMPTY", "SECRET_TEST_EMPTY is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := FromEnv(c.env)
			check(t, s, err, c.want)
		})
	}
}

func TestFromFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, path string
		want       string // error substring; empty = success
	}{
		{"bare", write("bare", clear, 0o600), ""},
		{"trailing newline trimmed", write("nl", clear+"\n", 0o600), ""},
		{"trailing CRLF trimmed", write("crlf", clear+"\r\n", 0o600), ""},
		{"missing names the path", filepath.Join(dir, "nope"), "read secret file " + filepath.Join(dir, "nope") + ": no such file"},
		{"empty", write("empty", "\n", 0o600), "is empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := FromFile(c.path)
			check(t, s, err, c.want)
		})
	}
	s, err := FromFile(write("inner", " a b\nc \n", 0o600))
	if err != nil || s.Reveal() != " a b\nc " {
		t.Errorf("inner spaces and line breaks must stay: %q %v", s.Reveal(), err)
	}
}

func check(t *testing.T, s Secret, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil || s.Reveal() != clear {
			t.Fatalf("got %q, %v; want the secret", s.Reveal(), err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to contain %q", err, want)
	}
	if strings.Contains(err.Error(), clear) || errors.Unwrap(err) != nil && strings.Contains(errors.Unwrap(err).Error(), clear) {
		t.Fatalf("error quotes the secret: %v", err)
	}
}
