package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions v0–3.
//
// A request at a version above 3 is answered in the v0 format with
// UNSUPPORTED_VERSION and the supported ranges (KIP-511), so newer clients
// can downgrade. Produce is advertised from v0 although v0–2 are refused
// (they carry pre-v2 message sets): librdkafka disables compression when a
// broker's minimum Produce version is above 0.

func init() { regKey(int16(kmsg.ApiVersions), 0, 3, handleApiVersions) }

func handleApiVersions(_ *Broker, _ *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = apiKeys()
	if req.Version >= 3 && !validClientSoftware(req.ClientSoftwareName, req.ClientSoftwareVersion) {
		resp.ErrorCode = kerr.InvalidRequest.Code
	}
	return reply{resp: resp}, nil
}

func apiVersionsUnsupported() reply {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = apiKeys()
	return reply{resp: resp}
}

// validClientSoftware applies Kafka's check of the v3 client software fields
// (the pattern [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?): letters, digits,
// '.' and '-', starting and ending with a letter or digit.
func validClientSoftware(name, version string) bool {
	ok := func(s string) bool {
		if s == "" {
			return false
		}
		alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
		if !alnum(s[0]) || !alnum(s[len(s)-1]) {
			return false
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; !alnum(c) && c != '.' && c != '-' {
				return false
			}
		}
		return true
	}
	return ok(name) && ok(version)
}
