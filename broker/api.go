package broker

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// reply is what a handler gives back for one request. Handlers run on the
// connection's reader goroutine, in request order; work that must wait (an
// fsync before a produce ack, a fetch long poll) goes in finish, which the
// connection's writer runs in correlation-id order.
type reply struct {
	resp   kmsg.Response
	finish func(ctx context.Context) kmsg.Response
	// none is set for acks=0 produce requests, which get no response;
	// finish still runs (it makes the records durable and visible).
	none bool
	// raw, if set, is written as a bare frame (a length and these bytes,
	// no response header): a SASL token after a v0 SaslHandshake.
	raw *[]byte
}

// A handler answers one request. A non-nil error means the request could not
// be understood and the connection is closed; Kafka errors go in the
// response.
type handler func(b *Broker, c *conn, req kmsg.Request) (reply, error)

type apiRange struct {
	min, max int16
	handle   handler
}

// apis holds the implemented range of every API key, registered by each
// NN_name.go file's init. ApiVersions advertises exactly these ranges.
var apis = map[int16]apiRange{}

func regKey(key, min, max int16, h handler) {
	if _, dup := apis[key]; dup {
		panic("broker: API key registered twice")
	}
	if max > kmsg.RequestForKey(key).MaxVersion() {
		panic("broker: registered a version kmsg cannot encode")
	}
	apis[key] = apiRange{min, max, h}
}

// apiKeys returns the advertised ranges sorted by key.
func apiKeys() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(apis))
	for k, r := range apis {
		keys = append(keys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: r.min, MaxVersion: r.max})
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ApiKey < keys[j].ApiKey })
	return keys
}
