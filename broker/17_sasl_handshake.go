package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslHandshake v0–1.
//
// It chooses the SASL mechanism of a connection on a SASL listener. After
// v1 the exchange comes in SaslAuthenticate requests; after v0 (clients
// from before KIP-152, such as sarama before 1.41 and kafka-python) in raw
// frames, a 4-byte length and the token, answered alike. A mechanism the
// listener does not enable gets UNSUPPORTED_SASL_MECHANISM with the enabled
// ones after failed_authentication_delay, and the connection is closed. On a listener without SASL the
// request gets ILLEGAL_SASL_STATE, as Kafka answers it.

func init() { regKey(int16(kmsg.SASLHandshake), 0, 1, handleSaslHandshake) }

func handleSaslHandshake(_ *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.SASLHandshakeRequest)
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	if !c.lis.sasl() {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return reply{resp: resp}, nil
	}
	resp.SupportedMechanisms = c.lis.mechanisms
	if !c.supportsMechanism(req.Mechanism) {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		c.auth.failed = true
		c.b.metrics.authFailures.WithLabelValues(c.lis.name, "").Inc()
		c.log.Warn("SASL mechanism not enabled on this listener; connection closed",
			"listener", c.lis.name, "mechanism", fmt.Sprintf("%.40q", req.Mechanism), "enabled", c.lis.mechanisms)
		return c.b.delayed(resp), nil
	}
	c.auth.mech = req.Mechanism
	c.auth.raw = req.Version == 0
	return reply{resp: resp}, nil
}
