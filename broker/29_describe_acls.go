package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeAcls v1–3 (Kafka 4 removed v0, KIP-896).
//
// Needs DESCRIBE on the cluster (else CLUSTER_AUTHORIZATION_FAILED).
// Without authorization enabled the answer is SECURITY_DISABLED, as Kafka
// without an authorizer. The filter is Kafka's AclBindingFilter (pattern
// types ANY and MATCH included); a filter with an element Kafka reads as
// UNKNOWN is INVALID_REQUEST. ACLs come grouped by resource pattern, sorted.

func init() { regKey(int16(kmsg.DescribeACLs), 1, 3, handleDescribeACLs) }

// msgClusterAuthorizationFailed is the message of a request refused for
// lack of an operation on the cluster.
const msgClusterAuthorizationFailed = "Cluster authorization failed."

func handleDescribeACLs(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DescribeACLsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	fail := func(code int16, msg string) (reply, error) {
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		return reply{resp: resp}, nil
	}
	if !b.authorizeCluster(c, req.Key(), kmsg.ACLOperationDescribe) {
		return fail(kerr.ClusterAuthorizationFailed.Code, msgClusterAuthorizationFailed)
	}
	if b.authz == nil {
		return fail(kerr.SecurityDisabled.Code, "No Authorizer is configured on the broker")
	}
	f := aclFilter{
		ResourceType: req.ResourceType, Name: req.ResourceName, Pattern: req.ResourcePatternType,
		Principal: req.Principal, Host: req.Host, Operation: req.Operation, Permission: req.PermissionType,
	}
	if f.unknown() {
		return fail(kerr.InvalidRequest.Code, "DescribeAclsRequest contains UNKNOWN elements")
	}
	for _, e := range b.authz.describeACLs(f) {
		n := len(resp.Resources)
		if n == 0 || resp.Resources[n-1].ResourceType != e.ResourceType || resp.Resources[n-1].ResourceName != e.Name ||
			resp.Resources[n-1].ResourcePatternType != e.Pattern {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType, r.ResourceName, r.ResourcePatternType = e.ResourceType, e.Name, e.Pattern
			resp.Resources = append(resp.Resources, r)
			n++
		}
		a := kmsg.NewDescribeACLsResponseResourceACL()
		a.Principal, a.Host, a.Operation, a.PermissionType = e.Principal, e.Host, e.Operation, e.Permission
		resp.Resources[n-1].ACLs = append(resp.Resources[n-1].ACLs, a)
	}
	return reply{resp: resp}, nil
}
