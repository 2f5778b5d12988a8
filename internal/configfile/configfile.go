// Package configfile decodes factorywire's YAML config files strictly: an
// unknown or mistyped key is an error that names the file, the line and the
// key, so a typo never silently falls back to a default.
//
// # Environment variables
//
// A value may hold ${NAME}: it is replaced by the environment variable
// NAME ([A-Za-z_][A-Za-z0-9_]*) before the value is decoded, so one file
// serves several machines and a secret's location can come from the
// deployment:
//
//	kafka:
//	  brokers: ["${KAFKA_BOOTSTRAP}"]
//	  sasl:
//	    username: gateway-${SITE}
//	    password_file: ${CREDENTIALS_DIRECTORY}/kafka-password
//
// An unset variable is an error naming the file, the line and the
// variable; a variable set to "" expands to "". $${ stands for a literal ${
// ("$${HOME}" is the text ${HOME}); a $ not followed by { is left as it is
// (regular expressions keep their $). A ${ that does not close with } or
// holds anything but a name is an error.
//
// Only values are expanded, never keys, and each scalar value is expanded
// after the file is parsed: a variable's text stays inside its value (it
// cannot add keys, list items or YAML syntax), and an error names the line
// of the value. A value that was a plain (unquoted) scalar is typed after
// expansion (port: ${PORT} decodes into an int); a quoted one stays a
// string.
package configfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load decodes the YAML file at path into v (a pointer to a config struct
// already holding its defaults, which keys in the file override), expanding
// ${VAR} in values from the environment.
func Load(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return Decode(path, raw, v)
}

// Decode is Load for bytes already read; name is used in error messages.
func Decode(name string, raw []byte, v any) error {
	return DecodeWith(name, raw, v, os.LookupEnv)
}

// DecodeWith is Decode with the variables of ${VAR} looked up by lookup
// instead of the process environment (os.LookupEnv's contract: ok false
// when the variable is unset).
func DecodeWith(name string, raw []byte, v any, lookup func(string) (string, bool)) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		return nil // an empty file keeps every default
	}
	if err != nil {
		return describe(name, err)
	}
	var extra yaml.Node
	if dec.Decode(&extra) != io.EOF {
		return fmt.Errorf("%s: holds more than one YAML document; put the whole config in one", name)
	}
	if err := expand(name, &doc, lookup); err != nil {
		return err
	}
	// Keys are never expanded, so the unknown keys of the file as written
	// are those of the expanded one. yaml.v3 checks keys only when it
	// decodes a stream, not a Node: find them by decoding the raw file
	// into a scratch value, keeping only its unknown-key errors (its
	// values may still read ${VAR}, which need not type-check).
	unknown := unknownKeys(raw, v)
	if err := doc.Decode(v); err != nil || len(unknown) > 0 {
		var te *yaml.TypeError
		switch {
		case err == nil:
			err = &yaml.TypeError{}
			te = err.(*yaml.TypeError)
		case !errors.As(err, &te):
			return describe(name, err)
		}
		te.Errors = append(unknown, te.Errors...)
		return describe(name, te)
	}
	return nil
}

// unknownKeys decodes raw strictly into a new value of v's type and returns
// yaml.v3's "field … not found" messages.
func unknownKeys(raw []byte, v any) []string {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var te *yaml.TypeError
	if err := dec.Decode(reflect.New(t.Elem()).Interface()); !errors.As(err, &te) {
		return nil
	}
	var out []string
	for _, e := range te.Errors {
		if unknownField.MatchString(e) {
			out = append(out, e)
		}
	}
	return out
}

// expand replaces ${VAR} in every scalar value under n (not in keys, and
// not through aliases, whose anchor is expanded where it stands).
func expand(name string, n *yaml.Node, lookup func(string) (string, bool)) error {
	var errs []error
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c)
			}
		case yaml.MappingNode:
			for i := 1; i < len(n.Content); i += 2 {
				walk(n.Content[i])
			}
		case yaml.ScalarNode:
			if !strings.Contains(n.Value, "$") {
				return
			}
			v, err := expandString(n.Value, lookup)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %w", name, n.Line, err))
				return
			}
			if v == n.Value {
				return
			}
			n.Value = v
			plain := n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0
			if plain && n.Tag == "!!str" && v != "" {
				// A plain scalar: type it from the expanded text. (An
				// empty one stays the empty string, not null.)
				n.Tag = ""
			}
		}
	}
	walk(n)
	return errors.Join(errs...)
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expandString expands ${NAME} and $${ in s.
func expandString(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		s = s[i:]
		switch {
		case strings.HasPrefix(s, "$${"):
			b.WriteString("${")
			s = s[3:]
		case strings.HasPrefix(s, "${"):
			end := strings.IndexByte(s, '}')
			if end < 0 {
				return "", fmt.Errorf("%q opens ${ without a closing }: write ${NAME}, or $${ for a literal ${", s)
			}
			v := s[2:end]
			if !varName.MatchString(v) {
				return "", fmt.Errorf("${%s}: not a variable name ([A-Za-z_][A-Za-z0-9_]*); write $${ for a literal ${", v)
			}
			val, ok := lookup(v)
			if !ok {
				return "", fmt.Errorf("${%s}: environment variable %s is not set: export it, or write $${%s} for the literal text", v, v, v)
			}
			b.WriteString(val)
			s = s[end+1:]
		default:
			b.WriteByte('$')
			s = s[1:]
		}
	}
}

var (
	unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (.+)$`)
	atLine       = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
)

// describe rewrites yaml.v3's messages as "file:line: what is wrong", in
// line order.
func describe(name string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := atLine.FindStringSubmatch(err.Error()); m != nil {
			return fmt.Errorf("%s:%s: %s", name, m[1], m[2])
		}
		return fmt.Errorf("%s: %s", name, msg)
	}
	type line struct {
		n   int
		msg string
	}
	var lines []line
	for _, e := range te.Errors {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			n, _ := strconv.Atoi(m[1])
			lines = append(lines, line{n, fmt.Sprintf("%s:%s: unknown key %q (check its spelling against the example in configs/)", name, m[1], m[2])})
		} else if m := atLine.FindStringSubmatch(e); m != nil {
			n, _ := strconv.Atoi(m[1])
			lines = append(lines, line{n, fmt.Sprintf("%s:%s: %s", name, m[1], m[2])})
		} else {
			lines = append(lines, line{0, fmt.Sprintf("%s: %s", name, e)})
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].n < lines[j].n })
	msgs := make([]string, len(lines))
	for i, l := range lines {
		msgs[i] = l.msg
	}
	return errors.New(strings.Join(msgs, "\n"))
}
