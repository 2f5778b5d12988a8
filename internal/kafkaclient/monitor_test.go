package kafkaclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestClassify covers the errors kfake cannot produce: Apache Kafka's
// SASL error codes (kgo wraps them with the broker's message), an expired
// certificate, a plaintext answer to a TLS client hello; and failures that
// retrying may fix, which are not classified.
func TestClassify(t *testing.T) {
	scram := Config{SASL: SASLConfig{Mechanism: ScramSHA256, Username: "gw"}}
	tlsOn := Config{TLS: TLSConfig{Enabled: true}}
	plaintext := Config{}
	cases := []struct {
		name    string
		cfg     Config
		key     int16
		err     error
		cause   Cause
		certain bool
	}{
		{"Kafka's SASL_AUTHENTICATION_FAILED", scram, keySASLAuthenticate,
			fmt.Errorf("%w: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256", kerr.SaslAuthenticationFailed), CauseAuthentication, true},
		{"Kafka's UNSUPPORTED_SASL_MECHANISM", scram, -1, kerr.UnsupportedSaslMechanism, CauseMechanism, true},
		{"connection closed during SASL", scram, keySASLAuthenticate, io.EOF, CauseAuthentication, false},
		{"connection reset during the handshake", scram, keySASLHandshake, &net.OpError{Op: "read", Err: fmt.Errorf("x: %w", io.ErrUnexpectedEOF)}, CauseAuthentication, false},
		{"EOF during SASL without SASL configured", plaintext, keySASLAuthenticate, io.EOF, "", false},
		{"EOF of another request", scram, 3, io.EOF, "", false},
		{"expired certificate", tlsOn, -1, &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired}}, CauseCertificate, true},
		{"plaintext answer to TLS", tlsOn, -1, fmt.Errorf("unable to dial: %w", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), CauseNotTLS, true},
		{"TLS alert: protocol version", tlsOn, keyApiVersions, &net.OpError{Op: "remote error", Err: errors.New("tls: protocol version not supported")}, CauseTLSHandshake, true},
		{"Apache Kafka's TLS alert to a plaintext request", plaintext, keyApiVersions,
			errors.New("invalid large response size 352518912 > limit 104857600; the first three bytes received appear to be a tls alert record for TLS v1.2; is this a plaintext connection speaking to a tls endpoint?"),
			CauseTLSRequired, true},
		{"connection refused", plaintext, -1, &net.OpError{Op: "dial", Err: errors.New("connect: connection refused")}, "", false},
		{"timeout", tlsOn, -1, fmt.Errorf("unable to dial: %w", &net.OpError{Op: "dial", Err: errors.New("i/o timeout")}), "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := classify(c.cfg, c.key, c.err)
			if d.cause != c.cause || d.cause != "" && d.certain != c.certain {
				t.Fatalf("classify = %s (certain %v), want %s (certain %v)", d.cause, d.certain, c.cause, c.certain)
			}
			if d.cause != "" && (d.reason == "" || d.fix == "") {
				t.Fatalf("no reason or fix: %+v", d)
			}
		})
	}
}
