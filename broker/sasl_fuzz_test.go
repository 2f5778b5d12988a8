package broker

import (
	"encoding/binary"
	"net"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/xdg-go/scram"
)

// FuzzSASLExchange feeds two arbitrary client tokens to each mechanism's
// exchange on a SASL listener's connection: no input panics, none
// authenticates (the seeds hold no valid proof and the password is not
// guessable), and a refusal is the one message that reveals nothing.
//
//	go test -run '^$' -fuzz FuzzSASLExchange -fuzztime 5m ./broker/
func FuzzSASLExchange(f *testing.F) {
	sb := startSecureBroker(f)
	var sasl *listener
	for _, l := range sb.listeners {
		if l.name == "SASL_SSL" {
			sasl = l
		}
	}
	client, _ := scram.SHA512.NewClient("admin", "not-the-password", "")
	first, _ := client.NewConversation().Step("")
	for _, seed := range []struct {
		mech       byte
		tok1, tok2 string
	}{
		{0, "\x00admin\x00wrong", ""},
		{0, "admin\x00admin\x00wrong", ""},
		{0, "\x00\x00", ""},
		{1, "n,,n=admin,r=abc", "c=biws,r=abc,p=AAAA"},
		{2, first, "c=biws,r=" + strings.Repeat("x", 40) + ",p=dGVzdA=="},
		{2, "p=tls-unique,,n=admin,r=x", ""},
		{2, "n,a=other,n=admin,r=x", "c=biws"},
		{1, "n,,n=ad=2Cmin,r=x", "garbage"},
	} {
		f.Add(seed.mech, []byte(seed.tok1), []byte(seed.tok2))
	}
	mechs := []string{mechPlain, mechScramSHA256, mechScramSHA512}
	f.Fuzz(func(t *testing.T, mech byte, tok1, tok2 []byte) {
		client, server := net.Pipe()
		defer client.Close()
		defer server.Close()
		c := newConn(sb.Broker, sasl, server)
		defer c.cancel()
		c.auth.mech = mechs[int(mech)%len(mechs)]
		_, err := c.authenticate(tok1)
		if err == nil && !c.auth.done {
			_, err = c.authenticate(tok2)
		}
		if c.auth.done || c.principal != anonymousPrincipal {
			t.Fatalf("%s authenticated %s from tokens %q, %q", c.auth.mech, c.principal, tok1, tok2)
		}
		if err != nil && err.Error() != authFailedMessage(c.auth.mech) {
			t.Fatalf("refusal %q reveals more than the fixed message", err)
		}
	})
}

// FuzzSASLRequestStream feeds arbitrary bytes to a connection on a SASL
// listener, as FuzzRequestStream does on a plaintext one: handshakes of
// either version, raw token frames after a v0 handshake, SaslAuthenticate
// requests, requests sent before authentication. The broker must not
// panic or hang, must close or answer, and must never authenticate the
// connection (no seed holds a password, and none can be guessed).
//
//	go test -run '^$' -fuzz FuzzSASLRequestStream -fuzztime 5m ./broker/
func FuzzSASLRequestStream(f *testing.F) {
	sb := startSecureBroker(f)
	var sasl *listener
	for _, l := range sb.listeners {
		if l.name == "SASL_PLAIN" {
			sasl = l
		}
	}
	rawFrame := func(token string) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(token))), token...)
	}
	apiv := kmsg.NewPtrApiVersionsRequest()
	apiv.Version = 3
	apiv.ClientSoftwareName, apiv.ClientSoftwareVersion = "fuzz", "1"
	metadata := kmsg.NewPtrMetadataRequest()
	metadata.Version = 7
	for _, s := range [][]byte{
		frame(apiv, 1),
		append(frame(handshakeReq(1, mechScramSHA256), 1), frame(authReq([]byte("n,,n=admin,r=abc")), 2)...),
		append(frame(handshakeReq(0, mechScramSHA512), 1), rawFrame("n,,n=admin,r=abc")...),
		append(frame(handshakeReq(1, mechScramSHA512), 1), frame(metadata, 2)...),
		frame(metadata, 1),
		append(frame(handshakeReq(1, "PLAIN"), 1), frame(authReq([]byte("\x00admin\x00guess")), 2)...),
		append(frame(handshakeReq(0, mechScramSHA256), 1), 0xff, 0xff, 0xff, 0xff),
		{0, 0, 0, 8, 0, 17, 0, 1, 0, 0, 0, 1},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := serveFuzzInput(t, sb.Broker, sasl, data)
		if c.auth.done || c.principal != anonymousPrincipal {
			t.Fatalf("fuzz input authenticated the connection as %s", c.principal)
		}
	})
}
