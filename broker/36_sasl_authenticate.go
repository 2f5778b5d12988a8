package broker

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslAuthenticate v0–2.
//
// One step of the SASL exchange chosen by SaslHandshake v1: PLAIN takes one
// step, SCRAM two. Success sets the connection's principal to User:<name>
// and answers a session lifetime of 0 (no re-authentication, KIP-368). A
// failure answers SASL_AUTHENTICATION_FAILED with the same message whatever
// the cause (the log line says which), after failed_authentication_delay,
// and the connection is then closed. On a listener without SASL the
// request gets ILLEGAL_SASL_STATE.

func init() { regKey(int16(kmsg.SASLAuthenticate), 0, 2, handleSaslAuthenticate) }

func handleSaslAuthenticate(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.SASLAuthenticateRequest)
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if !c.lis.sasl() {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		msg := "SaslAuthenticate on listener " + c.lis.name + ", which has no SASL"
		resp.ErrorMessage = &msg
		return reply{resp: resp}, nil
	}
	token, err := c.authenticate(req.SASLAuthBytes)
	if err == nil {
		resp.SASLAuthBytes = token
		return reply{resp: resp}, nil
	}
	resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
	msg := err.Error()
	resp.ErrorMessage = &msg
	return b.delayed(resp), nil
}

// delayed answers resp after failed_authentication_delay. The wait runs in
// the connection's writer, so it holds up nothing else; shutdown does not
// cut it short (it is at most a minute).
func (b *Broker) delayed(resp kmsg.Response) reply {
	return reply{finish: func(context.Context) kmsg.Response {
		time.Sleep(b.cfg.SASL.FailedAuthenticationDelay)
		return resp
	}}
}
