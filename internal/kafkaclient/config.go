// Package kafkaclient is how every factorywire component connects to a
// Kafka cluster: the one `kafka:` block shape they share (Config: seed
// brokers, TLS, SASL), turned into franz-go client options in one place
// (Config.Opts), and the diagnosis of the connection failures that
// retrying cannot fix (Monitor, ConnError): a wrong password or unknown
// user, an untrusted certificate, a certificate for another name, a
// rejected client certificate, a TLS listener dialled in plaintext.
//
// # The kafka block
//
// The gateway and the sink embed Config in their own kafka block (YAML
// inline, beside their client options); the admin commands build it from
// flags (internal/cli.KafkaFlags).
//
//	kafka:
//	  brokers: [kafka-1.plant.example:9093, kafka-2.plant.example:9093]
//	  tls:
//	    enabled: true                           # default false: plaintext
//	    ca_file: /etc/factorywire/kafka-ca.pem  # default: the system's roots
//	    cert_file: /etc/factorywire/gw.crt      # with key_file: mutual TLS
//	    key_file: /etc/factorywire/gw.key
//	    server_name: ""                         # default: the host dialled
//	    insecure_skip_verify: false             # never in production
//	  sasl:
//	    mechanism: SCRAM-SHA-512                # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: none
//	    username: gateway-plant-a
//	    password_file: /run/secrets/kafka       # or password_env: KAFKA_PASSWORD
//
// A password is never written in a config file or on a command line: the
// block names the environment variable or the file that holds it, read
// when the client is built into a secret.Secret that no log, error or
// metric prints.
package kafkaclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/factorywire/factorywire/internal/secret"
)

// Config is how a client reaches a cluster: where, over TLS or not, and
// as whom. The zero Config (with Brokers set) is a plaintext connection
// without authentication.
type Config struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string `yaml:"brokers"`
	// TLS encrypts the connections and checks the brokers' certificates.
	TLS TLSConfig `yaml:"tls"`
	// SASL authenticates the client.
	SASL SASLConfig `yaml:"sasl"`
}

// TLSConfig is the TLS of the connections to the brokers. Its paths, and
// sasl.password_file, are relative to the config file's directory in a
// config file (see RelativeTo), to the working directory on a command line.
type TLSConfig struct {
	// Enabled turns TLS on. Default false. Every other key of the block
	// requires it.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the authorities that sign the brokers'
	// certificates. Default: the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are this client's certificate and its key
	// (PEM), for a listener that requires mutual TLS
	// (ssl.client.auth=required). Both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the brokers' certificates must hold. Default:
	// the host of the address dialled (the seed broker, then the
	// advertised listener of each broker).
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate: anyone on the network
	// path can then pose as the broker. The only way to turn verification
	// off; a warning is logged at every start while it is set.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// SASLConfig authenticates the client. An empty Mechanism is no SASL.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, as the listener
	// enables it (sasl.enabled.mechanisms). PLAIN sends the password as it
	// is: use it over TLS only.
	Mechanism string `yaml:"mechanism"`
	// Username is the user. Required with a Mechanism.
	Username string `yaml:"username"`
	// PasswordEnv names the environment variable that holds the password
	// (its name, not the password).
	PasswordEnv string `yaml:"password_env"`
	// PasswordFile is the path of a file that holds the password (one
	// line; a trailing line break is ignored), e.g. a mounted Kubernetes
	// secret.
	PasswordFile string `yaml:"password_file"`
	// Password is the password itself, for programs that have it already
	// (tests, an embedding process). Never read from a file: exactly one
	// of PasswordEnv, PasswordFile and Password gives the password.
	Password secret.Secret `yaml:"-" json:"-"`
}

// SASL mechanisms (SASLConfig.Mechanism).
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// FieldError is one invalid key of a Config: Validate's errors are these,
// joined. Key is the key's path in the block ("tls.ca_file"); Rekey
// rewrites it for a caller that names it otherwise (a parent block, a
// flag).
type FieldError struct {
	Key string
	// Value is the value refused, quoted in the message; empty when the
	// message is about the key's absence, or when the value must not be
	// shown.
	Value  string
	Reason string
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Key + ": " + e.Reason
	}
	return fmt.Sprintf("%s %q: %s", e.Key, e.Value, e.Reason)
}

// Rekey returns err (Validate's or Opts's) with each FieldError's key
// replaced by rename(key): a parent block prefixes its own key ("kafka." +
// key).
func Rekey(err error, rename func(key string) string) error {
	return Rewrite(err, func(fe FieldError) FieldError {
		fe.Key = rename(fe.Key)
		return fe
	})
}

// Rewrite returns err with each FieldError replaced by fn's copy of it
// (the admin commands name their flags in the key and the reason); other
// errors stay as they are.
func Rewrite(err error, fn func(FieldError) FieldError) error {
	if err == nil {
		return nil
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, len(list))
	for i, e := range list {
		var fe *FieldError
		if errors.As(e, &fe) {
			c := fn(*fe)
			e = &c
		}
		out[i] = e
	}
	return errors.Join(out...)
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks every key without reading files or the environment
// (Opts does); its errors are FieldErrors naming the key and the value,
// never a password.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, value, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Value: value, Reason: fmt.Sprintf(format, args...)})
	}
	if len(c.Brokers) == 0 {
		bad("brokers", "", "at least one broker required (host:port)")
	}
	for i, b := range c.Brokers {
		if b == "" {
			bad(fmt.Sprintf("brokers[%d]", i), "", "empty; want host:port")
		} else if strings.ContainsAny(b, " ,") || strings.Contains(b, "://") {
			bad(fmt.Sprintf("brokers[%d]", i), b, "want host:port, without a scheme, one broker per list item")
		}
	}
	t := c.TLS
	if !t.Enabled {
		for _, k := range []struct {
			key string
			set bool
		}{{"ca_file", t.CAFile != ""}, {"cert_file", t.CertFile != ""}, {"key_file", t.KeyFile != ""},
			{"server_name", t.ServerName != ""}, {"insecure_skip_verify", t.InsecureSkipVerify}} {
			if k.set {
				bad("tls."+k.key, "", "set while TLS is off: turn it on (tls.enabled: true), or remove it")
			}
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		if t.CertFile == "" {
			bad("tls.cert_file", "", "required with tls.key_file %q (mutual TLS needs the certificate and its key)", t.KeyFile)
		} else {
			bad("tls.key_file", "", "required with tls.cert_file %q (mutual TLS needs the certificate and its key)", t.CertFile)
		}
	}
	if t.InsecureSkipVerify && t.CAFile != "" {
		bad("tls.ca_file", t.CAFile, "unused with tls.insecure_skip_verify: true, which accepts any certificate; remove one of them")
	}
	s := c.SASL
	sources := 0
	for _, set := range []bool{s.PasswordEnv != "", s.PasswordFile != "", !s.Password.IsZero()} {
		if set {
			sources++
		}
	}
	switch s.Mechanism {
	case "":
		if s.Username != "" || sources > 0 {
			bad("sasl.mechanism", "", "required with sasl.username or a password: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
	case Plain, ScramSHA256, ScramSHA512:
		if s.Username == "" {
			bad("sasl.username", "", "required with sasl.mechanism %s", s.Mechanism)
		}
		switch {
		case sources == 0:
			bad("sasl.password_env", "", "give the password by sasl.password_env (the name of an environment variable) or sasl.password_file (a file holding it)")
		case sources > 1:
			bad("sasl.password_env", "", "give one of sasl.password_env and sasl.password_file, not both")
		}
	default:
		bad("sasl.mechanism", s.Mechanism, "want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (upper case, as Kafka names them)")
	}
	if s.PasswordEnv != "" && !envName.MatchString(s.PasswordEnv) {
		// Not quoted: a password written here by mistake must not show.
		bad("sasl.password_env", "", "not an environment variable name ([A-Za-z_][A-Za-z0-9_]*); it names the variable that holds the password, never the password itself")
	}
	return errors.Join(errs...)
}

// password reads the SASL password from where the config says. Its error
// names the key and the variable or file, never the password.
func (s SASLConfig) password() (secret.Secret, error) {
	switch {
	case !s.Password.IsZero():
		return s.Password, nil
	case s.PasswordEnv != "":
		p, err := secret.FromEnv(s.PasswordEnv)
		if err != nil {
			return p, &FieldError{Key: "sasl.password_env", Value: s.PasswordEnv, Reason: err.Error()}
		}
		return p, nil
	default:
		p, err := secret.FromFile(s.PasswordFile)
		if err != nil {
			return p, &FieldError{Key: "sasl.password_file", Value: s.PasswordFile, Reason: err.Error()}
		}
		return p, nil
	}
}

// Opts validates c, reads its files (CA bundle, client certificate, password
// file) and environment, and returns the client options of the connection:
// seed brokers, TLS dialer, SASL mechanism, and logging through logger (nil:
// discard) with the failures a Monitor reports logged at debug level only.
// It logs a warning when TLS verification is off and when PLAIN sends the
// password without TLS. Every component adds its own options (producer,
// consumer group) to these; none builds connection options itself.
func (c Config) Opts(logger *slog.Logger) ([]kgo.Opt, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.WithLogger(newKgoLogger(logger.With("component", "kafka"), c)),
	}
	if c.TLS.Enabled {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, err
		}
		if c.TLS.InsecureSkipVerify {
			logger.Warn("kafka: tls.insecure_skip_verify is set: the brokers' certificates are not checked, so anyone on the network path can pose as a broker and read what is sent; set tls.ca_file instead",
				"brokers", strings.Join(c.Brokers, ","))
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASL.Mechanism != "" {
		m, err := c.SASL.mechanism()
		if err != nil {
			return nil, err
		}
		if c.SASL.Mechanism == Plain && !c.TLS.Enabled {
			logger.Warn("kafka: sasl.mechanism PLAIN without TLS sends the password in clear on the network; enable tls or use SCRAM",
				"brokers", strings.Join(c.Brokers, ","))
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// config builds the tls.Config: TLS 1.2 or later, the CA bundle as roots.
func (t TLSConfig) config() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify,
	}
	if t.CAFile != "" {
		pemBytes, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, &FieldError{Key: "tls.ca_file", Value: t.CAFile, Reason: fmt.Sprintf("%v", unwrapPath(err))}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, &FieldError{Key: "tls.ca_file", Value: t.CAFile, Reason: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"}
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		if _, err := os.Stat(t.CertFile); err != nil {
			return nil, &FieldError{Key: "tls.cert_file", Value: t.CertFile, Reason: fmt.Sprintf("%v", unwrapPath(err))}
		}
		if _, err := os.Stat(t.KeyFile); err != nil {
			return nil, &FieldError{Key: "tls.key_file", Value: t.KeyFile, Reason: fmt.Sprintf("%v", unwrapPath(err))}
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, &FieldError{Key: "tls.cert_file", Value: t.CertFile,
				Reason: fmt.Sprintf("with tls.key_file %q: %v (want a PEM certificate and its unencrypted PEM key)", t.KeyFile, err)}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// mechanism reads the password and builds the SASL mechanism. The
// password is revealed here, to the mechanism that sends it, and nowhere
// else.
func (s SASLConfig) mechanism() (sasl.Mechanism, error) {
	pw, err := s.password()
	if err != nil {
		return nil, err
	}
	switch s.Mechanism {
	case Plain:
		return plain.Auth{User: s.Username, Pass: pw.Reveal()}.AsMechanism(), nil
	case ScramSHA256:
		return scram.Auth{User: s.Username, Pass: pw.Reveal()}.AsSha256Mechanism(), nil
	default:
		return scram.Auth{User: s.Username, Pass: pw.Reveal()}.AsSha512Mechanism(), nil
	}
}

// RelativeTo makes the relative paths of c (tls.ca_file, cert_file,
// key_file, sasl.password_file) relative to dir: a config file's loader
// passes the file's directory, as it does for its other paths.
func (c *Config) RelativeTo(dir string) {
	for _, p := range []*string{&c.TLS.CAFile, &c.TLS.CertFile, &c.TLS.KeyFile, &c.SASL.PasswordFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// unwrapPath drops *os.PathError's operation and path, which the
// FieldError names already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Describe is the connection in words for logs and `check` output:
// "TLS (CA /etc/ca.pem), SASL SCRAM-SHA-512 as gateway" — never a
// password.
func (c Config) Describe() string {
	var parts []string
	if c.TLS.Enabled {
		var d []string
		if c.TLS.CAFile != "" {
			d = append(d, "CA "+c.TLS.CAFile)
		} else if !c.TLS.InsecureSkipVerify {
			d = append(d, "system roots")
		}
		if c.TLS.CertFile != "" {
			d = append(d, "client certificate "+c.TLS.CertFile)
		}
		if c.TLS.ServerName != "" {
			d = append(d, "server name "+c.TLS.ServerName)
		}
		if c.TLS.InsecureSkipVerify {
			d = append(d, "NOT VERIFIED")
		}
		parts = append(parts, "TLS ("+strings.Join(d, ", ")+")")
	} else {
		parts = append(parts, "plaintext")
	}
	if c.SASL.Mechanism != "" {
		from := "given by the program"
		switch {
		case c.SASL.PasswordEnv != "":
			from = "from $" + c.SASL.PasswordEnv
		case c.SASL.PasswordFile != "":
			from = "from " + c.SASL.PasswordFile
		}
		parts = append(parts, fmt.Sprintf("SASL %s as %q, password %s", c.SASL.Mechanism, c.SASL.Username, from))
	} else {
		parts = append(parts, "no SASL")
	}
	return strings.Join(parts, ", ")
}
