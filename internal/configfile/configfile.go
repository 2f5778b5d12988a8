// Package configfile decodes factorywire's YAML config files strictly: an
// unknown or mistyped key is an error that names the file, the line and the
// key, so a typo never silently falls back to a default.
package configfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load decodes the YAML file at path into v (a pointer to a config struct
// already holding its defaults, which keys in the file override).
func Load(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return Decode(path, raw, v)
}

// Decode is Load for bytes already read; name is used in error messages.
func Decode(name string, raw []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return nil // an empty file keeps every default
	}
	if err != nil {
		return describe(name, err)
	}
	var extra any
	if dec.Decode(&extra) != io.EOF {
		return fmt.Errorf("%s: holds more than one YAML document; put the whole config in one", name)
	}
	return nil
}

var (
	unknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (.+)$`)
	atLine       = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
)

// describe rewrites yaml.v3's messages as "file:line: what is wrong".
func describe(name string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := atLine.FindStringSubmatch(err.Error()); m != nil {
			return fmt.Errorf("%s:%s: %s", name, m[1], m[2])
		}
		return fmt.Errorf("%s: %s", name, msg)
	}
	var lines []string
	for _, e := range te.Errors {
		if m := unknownField.FindStringSubmatch(e); m != nil {
			lines = append(lines, fmt.Sprintf("%s:%s: unknown key %q (check its spelling against the example in configs/)", name, m[1], m[2]))
		} else if m := atLine.FindStringSubmatch(e); m != nil {
			lines = append(lines, fmt.Sprintf("%s:%s: %s", name, m[1], m[2]))
		} else {
			lines = append(lines, fmt.Sprintf("%s: %s", name, e))
		}
	}
	return errors.New(strings.Join(lines, "\n"))
}
