// Package secret holds passwords and keys so that they cannot leak by
// accident: a Secret prints, logs and marshals as "<secret>", and only
// Reveal gives its text, at the one place that must send it (a SASL
// mechanism, a connection string).
//
// Config files never hold a secret in clear: they name where it is, an
// environment variable (FromEnv) or a file (FromFile, for Kubernetes and
// Docker secrets mounted as files).
//
//	pw, err := secret.FromEnv("KAFKA_PASSWORD") // or secret.FromFile("/run/secrets/kafka")
//	logger.Info("connecting", "password", pw)   // password=<secret>
//	auth := scram.Auth{User: user, Pass: pw.Reveal()}
package secret

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Redacted is what a non-empty Secret prints, logs and marshals as.
const Redacted = "<secret>"

// Secret is a text that must not be printed. The zero Secret is empty; an
// empty Secret prints as "" so that "not set" stays visible. Secrets are
// values: copy them freely.
type Secret struct {
	text string
}

// New returns a Secret holding text, for programs and tests that have the
// text already; a config gives a secret by FromEnv or FromFile.
func New(text string) Secret { return Secret{text: text} }

// FromEnv returns the value of the environment variable name. An unset
// variable is an error naming it; an empty one is too, since an empty
// password is always a mistake in a deployment.
func FromEnv(name string) (Secret, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return Secret{}, fmt.Errorf("environment variable %s is not set: export it with the secret (or give a file instead)", name)
	}
	if v == "" {
		return Secret{}, fmt.Errorf("environment variable %s is empty: set it to the secret", name)
	}
	return Secret{text: v}, nil
}

// FromFile returns the contents of the file at path without trailing line
// breaks (\n or \r\n, as an editor or `echo` leaves them). An empty file is
// an error. The error never quotes the contents.
func FromFile(path string) (Secret, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return Secret{}, fmt.Errorf("read secret file %s: %w", path, err)
	}
	text := strings.TrimRight(string(raw), "\r\n")
	if text == "" {
		return Secret{}, fmt.Errorf("secret file %s is empty: write the secret into it", path)
	}
	return Secret{text: text}, nil
}

// Reveal returns the clear text. Call it only where the text is sent to
// the party that checks it, never to build a message.
func (s Secret) Reveal() string { return s.text }

// IsZero reports whether s is empty.
func (s Secret) IsZero() bool { return s.text == "" }

// Equal compares s and o in constant time (for equal lengths), so a timing
// does not tell how much of a guess was right.
func (s Secret) Equal(o Secret) bool {
	return subtle.ConstantTimeCompare([]byte(s.text), []byte(o.text)) == 1
}

func (s Secret) redacted() string {
	if s.text == "" {
		return ""
	}
	return Redacted
}

// String returns "<secret>", or "" for an empty Secret.
func (s Secret) String() string { return s.redacted() }

// GoString is String for %#v.
func (s Secret) GoString() string { return fmt.Sprintf("secret.Secret(%q)", s.redacted()) }

// Format prints the redacted form for every verb (%s, %v, %q, %x, %d, …),
// so that no verb reaches the text.
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, s.GoString())
	case verb == 'q':
		fmt.Fprintf(f, "%q", s.redacted())
	default:
		fmt.Fprint(f, s.redacted())
	}
}

// LogValue implements slog.LogValuer: a Secret logs as "<secret>".
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.redacted()) }

// MarshalText implements encoding.TextMarshaler with the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.redacted()), nil }

// MarshalJSON marshals the redacted form as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.redacted() + `"`), nil }

// MarshalYAML marshals the redacted form.
func (s Secret) MarshalYAML() (any, error) { return s.redacted(), nil }
