package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Security protocols of a listener, as Kafka names them
// (listener.security.protocol.map).
const (
	protocolPlaintext     = "PLAINTEXT"
	protocolSSL           = "SSL"
	protocolSASLPlaintext = "SASL_PLAINTEXT"
	protocolSASLSSL       = "SASL_SSL"
)

// SASL mechanisms the broker serves.
const (
	mechPlain       = "PLAIN"
	mechScramSHA256 = "SCRAM-SHA-256"
	mechScramSHA512 = "SCRAM-SHA-512"
)

// ListenerConfig is one address the broker accepts Kafka connections on and
// how clients there are secured (Kafka's listeners,
// listener.security.protocol.map and listener.name.<name>.* settings).
type ListenerConfig struct {
	// Name identifies the listener in logs and metrics, in upper case
	// (Kafka's listener name). Default: the protocol.
	Name string `yaml:"name"`
	// Address is the host:port to listen on; port 0 picks a free port.
	// Required.
	Address string `yaml:"address"`
	// Advertised is the host:port clients connecting here are told to
	// use in Metadata and FindCoordinator. Default: the address listened
	// on.
	Advertised string `yaml:"advertised"`
	// Protocol is PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL.
	Protocol string `yaml:"protocol"`
	// SASLMechanisms are those a SASL listener accepts: PLAIN,
	// SCRAM-SHA-256, SCRAM-SHA-512 (Kafka's sasl.enabled.mechanisms).
	// Default: SCRAM-SHA-256 and SCRAM-SHA-512. PLAIN sends the password
	// itself, so the broker warns if it is enabled without TLS.
	SASLMechanisms []string `yaml:"sasl_mechanisms"`
	// TLS is required by SSL and SASL_SSL, and refused by the others.
	TLS ListenerTLS `yaml:"tls"`
}

// ListenerTLS is a TLS listener's certificate and its check of clients'
// certificates. The files are read at start and again by Broker.ReloadTLS
// (SIGHUP for `broker serve`); connections open at a reload keep the
// session they have.
type ListenerTLS struct {
	// CertFile is the broker's certificate chain (PEM), leaf first, and
	// KeyFile its private key (PEM). Required.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientAuth is none (default), requested (a client certificate, if
	// sent, must verify) or required (mutual TLS), as Kafka's
	// ssl.client.auth.
	ClientAuth string `yaml:"client_auth"`
	// ClientCAFile is the PEM bundle of the authorities that sign client
	// certificates. Required unless client_auth is none.
	ClientCAFile string `yaml:"client_ca_file"`
	// PrincipalMappingRules turn a client certificate's subject (RFC 2253
	// form, such as "CN=gateway-plant-a,O=Plant A") into the principal's
	// name on an SSL listener, as Kafka's ssl.principal.mapping.rules:
	// each "RULE:pattern/replacement/" (optionally followed by L or U
	// for lower or upper case) or "DEFAULT" (the subject unchanged),
	// tried in order; pattern must match the whole subject. Default
	// ["DEFAULT"]. A certificate no rule matches is refused.
	PrincipalMappingRules []string `yaml:"principal_mapping_rules"`
}

// listenerConfigs returns the listeners the configuration asks for: those
// of Listeners, or a single PLAINTEXT listener on Listen, advertised as
// AdvertisedAddr.
func (c Config) listenerConfigs() []ListenerConfig {
	if len(c.Listeners) > 0 {
		out := slices.Clone(c.Listeners)
		for i := range out {
			if out[i].Protocol == "" {
				out[i].Protocol = protocolPlaintext
			}
			if out[i].Name == "" {
				out[i].Name = out[i].Protocol
			}
			if isSASL(out[i].Protocol) && len(out[i].SASLMechanisms) == 0 {
				out[i].SASLMechanisms = []string{mechScramSHA256, mechScramSHA512}
			}
		}
		return out
	}
	return []ListenerConfig{{Name: protocolPlaintext, Address: c.Listen, Advertised: c.AdvertisedAddr, Protocol: protocolPlaintext}}
}

func isSASL(protocol string) bool {
	return protocol == protocolSASLPlaintext || protocol == protocolSASLSSL
}
func isTLS(protocol string) bool { return protocol == protocolSSL || protocol == protocolSASLSSL }

var listenerName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// validateListeners checks the listeners, each error naming the listener
// by its index and the key.
func (c Config) validateListeners() error {
	if len(c.Listeners) > 0 && c.AdvertisedAddr != "" {
		return errors.New("advertised_addr: set listeners[].advertised instead when listeners are configured")
	}
	names := map[string]bool{}
	for i, l := range c.listenerConfigs() {
		at := fmt.Sprintf("listeners[%d]", i)
		if len(c.Listeners) == 0 {
			at = "listen"
		}
		if !listenerName.MatchString(l.Name) {
			return fmt.Errorf("%s.name: %q must be upper-case letters, digits and '_', starting with a letter", at, l.Name)
		}
		if names[l.Name] {
			return fmt.Errorf("%s.name: %q is used by two listeners", at, l.Name)
		}
		names[l.Name] = true
		if _, _, err := net.SplitHostPort(l.Address); err != nil {
			if len(c.Listeners) == 0 {
				return fmt.Errorf("listen: %q is not host:port: %v", l.Address, err)
			}
			return fmt.Errorf("%s.address: %q is not host:port: %v", at, l.Address, err)
		}
		if l.Advertised != "" {
			if _, _, err := net.SplitHostPort(l.Advertised); err != nil {
				if len(c.Listeners) == 0 {
					return fmt.Errorf("advertised_addr: %q is not host:port: %v", l.Advertised, err)
				}
				return fmt.Errorf("%s.advertised: %q is not host:port: %v", at, l.Advertised, err)
			}
		}
		switch l.Protocol {
		case protocolPlaintext, protocolSSL, protocolSASLPlaintext, protocolSASLSSL:
		default:
			return fmt.Errorf("%s.protocol: %q must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", at, l.Protocol)
		}
		if !isSASL(l.Protocol) && len(l.SASLMechanisms) > 0 {
			return fmt.Errorf("%s.sasl_mechanisms: only a SASL_PLAINTEXT or SASL_SSL listener takes mechanisms", at)
		}
		for _, m := range l.SASLMechanisms {
			if m != mechPlain && m != mechScramSHA256 && m != mechScramSHA512 {
				return fmt.Errorf("%s.sasl_mechanisms: %q must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", at, m)
			}
		}
		t := l.TLS
		if !isTLS(l.Protocol) {
			if t.CertFile != "" || t.KeyFile != "" || t.ClientAuth != "" || t.ClientCAFile != "" || len(t.PrincipalMappingRules) > 0 {
				return fmt.Errorf("%s.tls: only an SSL or SASL_SSL listener takes tls settings", at)
			}
			continue
		}
		if t.CertFile == "" || t.KeyFile == "" {
			return fmt.Errorf("%s.tls: cert_file and key_file are required for protocol %s", at, l.Protocol)
		}
		if _, err := clientAuthType(t.ClientAuth); err != nil {
			return fmt.Errorf("%s.tls.client_auth: %w", at, err)
		}
		if t.ClientAuth != "" && t.ClientAuth != "none" && t.ClientCAFile == "" {
			return fmt.Errorf("%s.tls.client_ca_file: required with client_auth %s", at, t.ClientAuth)
		}
		if _, err := parsePrincipalRules(t.PrincipalMappingRules); err != nil {
			return fmt.Errorf("%s.tls.principal_mapping_rules: %w", at, err)
		}
	}
	return nil
}

func clientAuthType(s string) (tls.ClientAuthType, error) {
	switch s {
	case "", "none":
		return tls.NoClientCert, nil
	case "requested":
		return tls.VerifyClientCertIfGiven, nil
	case "required":
		return tls.RequireAndVerifyClientCert, nil
	}
	return 0, fmt.Errorf("%q must be none, requested or required", s)
}

// listener is one running listener.
type listener struct {
	name, protocol string
	ln             net.Listener
	advHost        string
	advPort        int32
	mechanisms     []string // enabled SASL mechanisms, in the configured order
	tls            *tlsFiles
	rules          []principalRule
}

func (l *listener) sasl() bool { return isSASL(l.protocol) }

// openListener listens on lc's address and loads its TLS files.
func openListener(lc ListenerConfig) (*listener, error) {
	l := &listener{name: lc.Name, protocol: lc.Protocol, mechanisms: lc.SASLMechanisms}
	if isTLS(lc.Protocol) {
		l.tls = &tlsFiles{listener: lc.Name, certFile: lc.TLS.CertFile, keyFile: lc.TLS.KeyFile, clientCAFile: lc.TLS.ClientCAFile}
		l.tls.clientAuth, _ = clientAuthType(lc.TLS.ClientAuth)
		if _, err := l.tls.load(); err != nil {
			return nil, err
		}
		l.rules, _ = parsePrincipalRules(lc.TLS.PrincipalMappingRules)
	}
	ln, err := net.Listen("tcp", lc.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %s: listen on %s: %w", lc.Name, lc.Address, err)
	}
	addr := lc.Advertised
	if addr == "" {
		addr = ln.Addr().String()
	}
	host, port, _ := net.SplitHostPort(addr)
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p > 65535 {
		ln.Close()
		return nil, fmt.Errorf("listener %s: advertised address %q has no valid port", lc.Name, addr)
	}
	l.ln, l.advHost, l.advPort = ln, host, int32(p)
	return l, nil
}

// tlsFiles is a TLS listener's certificate, key and client authorities,
// reread by reload; handshakes use the latest that loaded.
type tlsFiles struct {
	listener                        string
	certFile, keyFile, clientCAFile string
	clientAuth                      tls.ClientAuthType
	cur                             atomic.Pointer[tls.Config]
	// serverConfig is what connections handshake with: it hands each
	// one the current cur.
	serverConfig *tls.Config
}

// load reads the files and, if they are valid, makes them the ones new
// handshakes use. It returns a description of the certificate loaded. On
// error the previous files stay in use.
func (t *tlsFiles) load() (string, error) {
	pair, err := tls.LoadX509KeyPair(t.certFile, t.keyFile)
	if err != nil {
		// crypto/tls's errors name neither file; they never quote the
		// key's bytes.
		return "", fmt.Errorf("listener %s: tls cert_file %s, key_file %s: %w", t.listener, t.certFile, t.keyFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return "", fmt.Errorf("listener %s: tls cert_file %s: %w", t.listener, t.certFile, err)
		}
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   t.clientAuth,
		MinVersion:   tls.VersionTLS12,
	}
	if t.clientCAFile != "" {
		pem, err := os.ReadFile(t.clientCAFile)
		if err != nil {
			return "", fmt.Errorf("listener %s: tls client_ca_file: %w", t.listener, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return "", fmt.Errorf("listener %s: tls client_ca_file %s holds no PEM certificate", t.listener, t.clientCAFile)
		}
		cfg.ClientCAs = pool
	}
	t.cur.Store(cfg)
	if t.serverConfig == nil {
		t.serverConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return t.cur.Load(), nil
			},
		}
	}
	return fmt.Sprintf("subject %q, expires %s", leaf.Subject.String(), leaf.NotAfter.UTC().Format(time.RFC3339)), nil
}

// ReloadTLS rereads every TLS listener's certificate, key and client
// authorities (`broker serve` calls it on SIGHUP). New handshakes use the
// new files; open connections keep theirs. A listener whose files fail to
// load keeps its previous ones, and the error names the listener and the
// files.
func (b *Broker) ReloadTLS() error {
	var errs []error
	for _, l := range b.listeners {
		if l.tls == nil {
			continue
		}
		desc, err := l.tls.load()
		if err != nil {
			b.log.Error("TLS reload failed; the listener keeps its previous certificate", "listener", l.name, "err", err)
			errs = append(errs, err)
			continue
		}
		b.log.Info("TLS certificate reloaded", "listener", l.name, "cert_file", l.tls.certFile, "certificate", desc)
	}
	return errors.Join(errs...)
}

// principalRule is one of ssl.principal.mapping.rules: DEFAULT (re nil) or
// a pattern with its replacement and case.
type principalRule struct {
	re          *regexp.Regexp
	replacement string
	toLower     bool
	toUpper     bool
}

var ruleSyntax = regexp.MustCompile(`^RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?)$`)

func parsePrincipalRules(rules []string) ([]principalRule, error) {
	if len(rules) == 0 {
		return []principalRule{{}}, nil
	}
	var out []principalRule
	for _, r := range rules {
		r = strings.TrimSpace(r)
		if r == "DEFAULT" {
			out = append(out, principalRule{})
			continue
		}
		m := ruleSyntax.FindStringSubmatch(r)
		if m == nil {
			return nil, fmt.Errorf("%q is neither DEFAULT nor RULE:pattern/replacement/[LU]", r)
		}
		re, err := regexp.Compile(`^(?:` + m[1] + `)$`)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", r, err)
		}
		// Java's $1 is Go's ${1}: Go would read "$1x" as a group
		// named 1x.
		repl := regexp.MustCompile(`\$(\d+)`).ReplaceAllString(m[2], `$${$1}`)
		out = append(out, principalRule{re: re, replacement: repl, toLower: m[3] == "L", toUpper: m[3] == "U"})
	}
	return out, nil
}

// mapPrincipal applies the rules to a certificate subject; ok is false if
// none matches.
func mapPrincipal(rules []principalRule, subject string) (name string, ok bool) {
	for _, r := range rules {
		if r.re == nil {
			return subject, true
		}
		m := r.re.FindStringSubmatchIndex(subject)
		if m == nil {
			continue
		}
		name = string(r.re.ExpandString(nil, r.replacement, subject, m))
		switch {
		case r.toLower:
			name = strings.ToLower(name)
		case r.toUpper:
			name = strings.ToUpper(name)
		}
		return name, true
	}
	return "", false
}
