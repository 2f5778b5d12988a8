package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeUserScramCredentials v0.
//
// Lists the SASL users and, for each, the SCRAM mechanisms and iteration
// counts it has credentials for (never a salt or key). No users asked for
// means every user; a user named twice gets DUPLICATE_RESOURCE, an unknown
// one RESOURCE_NOT_FOUND, as Kafka answers.
//
// Authorization: DESCRIBE on the cluster, else CLUSTER_AUTHORIZATION_FAILED
// for the request and each user named (Kafka leaves the user name of these
// results empty; they carry it here).

func init() {
	regKey(int16(kmsg.DescribeUserSCRAMCredentials), 0, 0, handleDescribeUserSCRAMCredentials)
}

// scramMechanismCode is the mechanism's code in the SCRAM credential APIs
// (Kafka's ScramMechanism: 1 is SCRAM-SHA-256, 2 SCRAM-SHA-512).
func scramMechanismCode(mech string) int8 {
	switch mech {
	case mechScramSHA256:
		return 1
	case mechScramSHA512:
		return 2
	}
	return 0
}

func scramMechanismName(code int8) string {
	switch code {
	case 1:
		return mechScramSHA256
	case 2:
		return mechScramSHA512
	}
	return ""
}

func handleDescribeUserSCRAMCredentials(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DescribeUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !b.authorizeCluster(c, req.Key(), kmsg.ACLOperationDescribe) {
		resp.ErrorCode, resp.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, kmsg.StringPtr(msgClusterAuthorizationFailed)
		for _, u := range req.Users {
			r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
			r.User, r.ErrorCode, r.ErrorMessage = u.Name, resp.ErrorCode, resp.ErrorMessage
			resp.Results = append(resp.Results, r)
		}
		return reply{resp: resp}, nil
	}
	if len(req.Users) == 0 {
		for _, u := range b.users.list() {
			resp.Results = append(resp.Results, describedUser(u))
		}
		return reply{resp: resp}, nil
	}
	count, answered := map[string]int{}, map[string]bool{}
	for _, u := range req.Users {
		count[u.Name]++
	}
	for _, u := range req.Users {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = u.Name
		if count[u.Name] > 1 {
			if answered[u.Name] {
				continue
			}
			answered[u.Name] = true
			r.ErrorCode = kerr.DuplicateResource.Code
			r.ErrorMessage = kmsg.StringPtr("Cannot describe SCRAM credentials for the same user twice in a single request")
			resp.Results = append(resp.Results, r)
			continue
		}
		found := b.users.list(u.Name)
		if len(found) == 0 {
			r.ErrorCode = kerr.ResourceNotFound.Code
			r.ErrorMessage = kmsg.StringPtr("Attempt to describe a user credential that does not exist")
			resp.Results = append(resp.Results, r)
			continue
		}
		resp.Results = append(resp.Results, describedUser(found[0]))
	}
	return reply{resp: resp}, nil
}

func describedUser(u userInfo) kmsg.DescribeUserSCRAMCredentialsResponseResult {
	r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
	r.User = u.Name
	for _, cr := range u.Creds {
		info := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
		info.Mechanism, info.Iterations = scramMechanismCode(cr.Mechanism), int32(cr.Iterations)
		r.CredentialInfos = append(r.CredentialInfos, info)
	}
	return r
}
