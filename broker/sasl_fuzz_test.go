package broker

import (
	"net"
	"strings"
	"testing"

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
