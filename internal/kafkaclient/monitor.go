package kafkaclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
)

// Cause is what is wrong with a connection that retrying cannot fix, as a
// short stable name (a metric label).
type Cause string

// The causes a Monitor tells apart.
const (
	// CauseAuthentication: the broker refused the user name or password
	// (Kafka answers a wrong password and an unknown user alike, so that
	// the answer does not tell which users exist).
	CauseAuthentication Cause = "sasl_authentication_failed"
	// CauseMechanism: the listener does not enable the SASL mechanism.
	CauseMechanism Cause = "sasl_mechanism_not_enabled"
	// CauseUntrusted: the broker's certificate is signed by an authority
	// the client does not trust.
	CauseUntrusted Cause = "tls_untrusted_certificate"
	// CauseServerName: the broker's certificate is for other names than
	// the one the client checks.
	CauseServerName Cause = "tls_server_name_mismatch"
	// CauseCertificate: the broker's certificate is invalid otherwise
	// (expired, not yet valid, not for servers).
	CauseCertificate Cause = "tls_invalid_certificate"
	// CauseClientCertificate: the broker refused the client's certificate,
	// or its absence.
	CauseClientCertificate Cause = "tls_client_certificate_rejected"
	// CauseTLSHandshake: the TLS handshake failed otherwise (no common
	// version or cipher suite).
	CauseTLSHandshake Cause = "tls_handshake_failed"
	// CauseTLSRequired: the listener speaks TLS and the client does not.
	CauseTLSRequired Cause = "tls_required"
	// CauseNotTLS: the client speaks TLS and the listener does not.
	CauseNotTLS Cause = "tls_not_offered"
)

// ConnError is a failure to connect to one broker that retrying cannot
// fix: the client's configuration or the broker's must change. Its message
// names the broker, the TLS and SASL in use, the cause and the fix, and
// never a password.
type ConnError struct {
	// Broker is the address dialled, host:port.
	Broker string
	// TLS is whether the client used TLS.
	TLS bool
	// Mechanism is the SASL mechanism, empty without SASL; User its user.
	Mechanism, User string
	// Cause is what is wrong.
	Cause Cause
	// Reason says what happened, and Fix what to change.
	Reason, Fix string
	// Err is the client's error.
	Err error
}

func (e *ConnError) Error() string {
	conn := "plaintext"
	if e.TLS {
		conn = "TLS"
	}
	if e.Mechanism != "" {
		conn += fmt.Sprintf(", SASL %s as %q", e.Mechanism, e.User)
	} else {
		conn += ", no SASL"
	}
	return fmt.Sprintf("kafka broker %s (%s): %s: %s (%v); %s", e.Broker, conn, e.Cause.words(), e.Reason, e.Err, e.Fix)
}

func (e *ConnError) Unwrap() error { return e.Err }

func (c Cause) words() string {
	switch c {
	case CauseAuthentication:
		return "SASL authentication failed"
	case CauseMechanism:
		return "SASL mechanism not enabled"
	case CauseUntrusted:
		return "TLS certificate not trusted"
	case CauseServerName:
		return "TLS certificate is for another name"
	case CauseCertificate:
		return "TLS certificate invalid"
	case CauseClientCertificate:
		return "TLS client certificate refused"
	case CauseTLSHandshake:
		return "TLS handshake failed"
	case CauseTLSRequired:
		return "the listener requires TLS"
	case CauseNotTLS:
		return "the listener does not speak TLS"
	}
	return string(c)
}

// Kafka API keys of a connection's set-up.
const (
	keySASLHandshake    = 17
	keyApiVersions      = 18
	keySASLAuthenticate = 36
)

// diagnosis is classify's answer; an empty cause is a failure that may go
// away by itself (a broker restarting, a network cut).
type diagnosis struct {
	cause       Cause
	reason, fix string
	// certain is false for a failure that a broker closing a connection
	// for another reason also gives (EOF during SASL): the Monitor
	// reports it only when it repeats.
	certain bool
}

// classify tells what err, a connection attempt's error, means for a
// client configured as c. key is the API key of the request whose read
// failed during the attempt, -1 if none.
func classify(c Config, key int16, err error) diagnosis {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verify           *tls.CertificateVerificationError
		record           tls.RecordHeaderError
		firstEOF         *kgo.ErrFirstReadEOF
		op               *net.OpError
	)
	switch {
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return diagnosis{CauseAuthentication, fmt.Sprintf("the broker refused user %q: a wrong password, or no %s user of that name", c.SASL.Username, c.SASL.Mechanism),
			"check sasl.username and the password that sasl.password_env or sasl.password_file gives (--sasl-username, --sasl-password-env, --sasl-password-file), and that the user exists for this mechanism", true}
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return diagnosis{CauseMechanism, fmt.Sprintf("the listener does not enable %s", c.SASL.Mechanism),
			"set sasl.mechanism (--sasl-mechanism) to one the listener's sasl.enabled.mechanisms lists", true}
	case errors.As(err, &unknownAuthority):
		return diagnosis{CauseUntrusted, "the broker's certificate is signed by an authority this client does not trust",
			"set tls.ca_file (--tls-ca-file) to the PEM bundle of the authority that signed the brokers' certificates (without it, the system's roots are used)", true}
	case errors.As(err, &hostname):
		names := append([]string{}, hostname.Certificate.DNSNames...)
		for _, ip := range hostname.Certificate.IPAddresses {
			names = append(names, ip.String())
		}
		return diagnosis{CauseServerName, fmt.Sprintf("the broker's certificate holds %s, not %q", strings.Join(names, ", "), hostname.Host),
			"dial the broker by a name its certificate holds, or set tls.server_name (--tls-server-name) to one of them", true}
	case errors.As(err, &invalid):
		return diagnosis{CauseCertificate, "the broker's certificate is not valid",
			"renew the broker's certificate (or correct this machine's clock if it has expired only here)", true}
	case errors.As(err, &verify):
		return diagnosis{CauseCertificate, "the broker's certificate does not verify",
			"check the broker's certificate and tls.ca_file (--tls-ca-file)", true}
	case errors.As(err, &op) && op.Op == "remote error":
		// An alert the broker sent during or right after the handshake:
		// with TLS 1.3, a refused client certificate shows at the first
		// read.
		if strings.Contains(op.Err.Error(), "certificate") {
			fix := "set tls.cert_file and tls.key_file (--tls-cert-file, --tls-key-file) to a client certificate signed by an authority the broker trusts (ssl.truststore)"
			if c.TLS.CertFile != "" {
				fix = "the broker does not accept the certificate of tls.cert_file " + c.TLS.CertFile + ": use one signed by an authority the broker trusts (ssl.truststore), valid now, for client authentication"
			}
			return diagnosis{CauseClientCertificate, "the broker refused this client's certificate", fix, true}
		}
		return diagnosis{CauseTLSHandshake, "the broker ended the TLS handshake",
			"check that client and broker share a TLS version (1.2 or later) and cipher suite", true}
	case c.TLS.Enabled && errors.As(err, &record):
		return diagnosis{CauseNotTLS, "the broker answered the TLS handshake with something else",
			"this listener is plaintext: set tls.enabled: false (drop --tls), or dial the broker's TLS listener", true}
	case !c.TLS.Enabled && strings.Contains(err.Error(), "appear to be a tls alert record"):
		// Apache Kafka's TLS listener answers a plaintext request with a
		// TLS alert, which kgo reads as a response size and reports in
		// words only.
		return diagnosis{CauseTLSRequired, "the broker answered the first request with a TLS alert: the listener speaks TLS",
			"set tls.enabled: true (--tls), or dial the broker's plaintext listener", true}
	case errors.As(err, &firstEOF):
		if !c.TLS.Enabled && key == keyApiVersions {
			return diagnosis{CauseTLSRequired, "the broker closed the connection at the first request, as a TLS listener does for a plaintext client",
				"set tls.enabled: true (--tls), or dial the broker's plaintext listener", false}
		}
		if c.TLS.Enabled && key < 0 {
			return diagnosis{CauseNotTLS, "the broker closed the connection during the TLS handshake, as a plaintext listener does",
				"this listener is plaintext: set tls.enabled: false (drop --tls), or dial the broker's TLS listener", false}
		}
	case c.SASL.Mechanism != "" && (key == keySASLHandshake || key == keySASLAuthenticate) && closed(err):
		return diagnosis{CauseAuthentication, fmt.Sprintf("the broker closed the connection during SASL authentication of user %q: a wrong password, or no %s user of that name", c.SASL.Username, c.SASL.Mechanism),
			"check sasl.username and the password that sasl.password_env or sasl.password_file gives (--sasl-username, --sasl-password-env, --sasl-password-file), and that the user exists for this mechanism", false}
	}
	return diagnosis{}
}

// closed reports whether err is the peer closing the connection.
func closed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// repeatsForUncertain is how many attempts in a row must fail alike before
// a Monitor reports a failure that is not certain (see diagnosis).
const repeatsForUncertain = 2

// Monitor is a kgo hook (kgo.WithHooks(m)) that watches a client's
// connection attempts and turns the failures retrying cannot fix into
// ConnErrors: it logs each once per broker and cause at error level (again
// only after the broker was reached in between or the cause changed),
// calls OnFailure for every failed attempt, and answers Err (is it failing
// now?) and Failed (has it failed?). A successful connection to a broker
// clears that broker's failure. Safe for concurrent use.
type Monitor struct {
	// OnFailure, if set, is called for every attempt that fails with a
	// ConnError (to count them). Set it before the client is built; it
	// must not block.
	OnFailure func(*ConnError)

	cfg    Config
	log    *slog.Logger
	mu     sync.Mutex
	broker map[string]*brokerState
	first  *ConnError
	failed chan struct{}
}

type brokerState struct {
	readKey int16      // key of the last failed read of an attempt, -1 none
	err     *ConnError // the failure not yet cleared by a success
	pending diagnosis  // an uncertain failure seen repeats times
	repeats int
}

// NewMonitor returns a Monitor of connections configured by cfg, logging
// to logger (nil: discard).
func NewMonitor(cfg Config, logger *slog.Logger) *Monitor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Monitor{cfg: cfg, log: logger, broker: map[string]*brokerState{}, failed: make(chan struct{})}
}

func (m *Monitor) state(meta kgo.BrokerMetadata) (string, *brokerState) {
	addr := net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))
	s := m.broker[addr]
	if s == nil {
		s = &brokerState{readKey: -1}
		m.broker[addr] = s
	}
	return addr, s
}

// OnBrokerRead implements kgo.HookBrokerRead: it notes which request of a
// connection's set-up (ApiVersions, SASL) a failed read was for.
func (m *Monitor) OnBrokerRead(meta kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, s := m.state(meta)
	s.readKey = key
}

// OnBrokerConnect implements kgo.HookBrokerConnect: it sees the end of
// every connection attempt, dial, TLS handshake, ApiVersions and SASL.
func (m *Monitor) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	m.mu.Lock()
	addr, s := m.state(meta)
	key := s.readKey
	s.readKey = -1
	if err == nil {
		if s.err != nil {
			m.log.Info("kafka: connected to the broker again", "broker", addr, "was", s.err.Cause)
		}
		s.err, s.repeats = nil, 0
		m.mu.Unlock()
		return
	}
	d := classify(m.cfg, key, err)
	if d.cause == "" {
		m.mu.Unlock()
		return
	}
	if !d.certain {
		if s.repeats > 0 && s.pending.cause == d.cause {
			s.repeats++
		} else {
			s.pending, s.repeats = d, 1
		}
		if s.repeats < repeatsForUncertain {
			m.mu.Unlock()
			return
		}
	}
	ce := &ConnError{Broker: addr, TLS: m.cfg.TLS.Enabled, Mechanism: m.cfg.SASL.Mechanism, User: m.cfg.SASL.Username,
		Cause: d.cause, Reason: d.reason, Fix: d.fix, Err: err}
	if s.err == nil || s.err.Cause != ce.Cause {
		m.log.Error("kafka: cannot connect; retrying will not fix this, the configuration must change", "broker", addr, "cause", ce.Cause, "err", ce)
	}
	s.err = ce
	if m.first == nil {
		m.first = ce
		close(m.failed)
	}
	m.mu.Unlock()
	if m.OnFailure != nil {
		m.OnFailure(ce)
	}
}

// Err is the failure of a broker whose connections fail now (the first by
// address when several do), nil when none does.
func (m *Monitor) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	addrs := make([]string, 0, len(m.broker))
	for a, s := range m.broker {
		if s.err != nil {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil
	}
	sort.Strings(addrs)
	return m.broker[addrs[0]].err
}

// Failed is closed at the first ConnError; First then returns it.
func (m *Monitor) Failed() <-chan struct{} { return m.failed }

// First is the first ConnError, nil before there is one.
func (m *Monitor) First() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.first == nil {
		return nil
	}
	return m.first
}

// kgoRepeatWindow is how long kgoLogger keeps a warning or error it logged
// from being logged again.
const kgoRepeatWindow = 10 * time.Minute

// kgoLogger is kgo's logger over slog, quieter when a connection fails
// over and over: the failures a Monitor reports are logged at debug level
// (the Monitor logs each once), and any other warning or error of kgo is
// logged once per message and error every kgoRepeatWindow, its repeats at
// debug level, rather than at every retry.
type kgoLogger struct {
	kgo.Logger
	cfg Config

	mu    sync.Mutex
	seen  map[string]bool
	since time.Time
}

func newKgoLogger(l *slog.Logger, cfg Config) kgo.Logger {
	return &kgoLogger{Logger: kslog.New(l), cfg: cfg, seen: map[string]bool{}}
}

func (l *kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	if level <= kgo.LogLevelWarn && level != kgo.LogLevelNone {
		key := msg
		for i := 1; i < len(keyvals); i += 2 {
			if err, ok := keyvals[i].(error); ok {
				if l.monitored(err) {
					level = kgo.LogLevelDebug
					break
				}
				key += "\x00" + err.Error()
			}
		}
		if level != kgo.LogLevelDebug && l.repeated(key) {
			level = kgo.LogLevelDebug
		}
	}
	l.Logger.Log(level, msg, keyvals...)
}

// monitored reports whether err is a failure a Monitor reports.
func (l *kgoLogger) monitored(err error) bool {
	if classify(l.cfg, -1, err).cause != "" {
		return true
	}
	var firstEOF *kgo.ErrFirstReadEOF
	return errors.As(err, &firstEOF) && classify(l.cfg, keyApiVersions, err).cause != ""
}

// repeated reports whether key was logged in this window, and notes it.
func (l *kgoLogger) repeated(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.since) > kgoRepeatWindow || len(l.seen) > 1000 {
		l.seen, l.since = map[string]bool{}, now
	}
	if l.seen[key] {
		return true
	}
	l.seen[key] = true
	return false
}
