package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeGroups v0–5.
//
// A group the coordinator does not know is reported in state Dead without
// an error, as Kafka does, and so is one deleted after its offsets expired
// (OffsetsRetention); one that only has committed offsets is Empty.
// Authorized operations (v3+) are reported when asked.
//
// Authorization: DESCRIBE on each group, else it is answered
// GROUP_AUTHORIZATION_FAILED with an empty state; as Kafka, refused groups
// come first in the response.

func init() { regKey(int16(kmsg.DescribeGroups), 0, 5, handleDescribeGroups) }

func handleDescribeGroups(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	var allowed []string
	for _, id := range req.Groups {
		if b.authorize(c, req.Key(), kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, id) {
			allowed = append(allowed, id)
			continue
		}
		og := kmsg.NewDescribeGroupsResponseGroup()
		og.Group, og.ErrorCode, og.AuthorizedOperations = id, kerr.GroupAuthorizationFailed.Code, notProvided
		resp.Groups = append(resp.Groups, og)
	}
	for _, id := range allowed {
		og := kmsg.NewDescribeGroupsResponseGroup()
		og.Group, og.State, og.AuthorizedOperations = id, groupDead.String(), notProvided
		g := b.groups.group(id, false)
		switch {
		case !validGroupID(id):
			og.ErrorCode = kerr.InvalidGroupID.Code
		case g == nil:
			if len(b.groups.offsets.group(id)) > 0 {
				og.State = groupEmpty.String()
			}
		case !g.do(func() { g.describe(&og) }):
			og.ErrorCode = kerr.CoordinatorNotAvailable.Code
		}
		if og.ErrorCode == 0 && req.Version >= 3 && req.IncludeAuthorizedOperations {
			og.AuthorizedOperations = b.authorizedOperations(c, kmsg.ACLResourceTypeGroup, id)
		}
		resp.Groups = append(resp.Groups, og)
	}
	return reply{resp: resp}, nil
}

// describe fills og on the group goroutine.
func (g *group) describe(og *kmsg.DescribeGroupsResponseGroup) {
	og.State, og.ProtocolType, og.Protocol = g.state.String(), g.protocolType, g.protocol
	for _, m := range g.members {
		om := kmsg.NewDescribeGroupsResponseGroupMember()
		om.MemberID, om.InstanceID, om.ClientID, om.ClientHost = m.id, m.instanceID, m.clientID, m.host
		for _, p := range m.protocols {
			if p.Name == g.protocol {
				om.ProtocolMetadata = p.Metadata
			}
		}
		om.MemberAssignment = m.assignment
		og.Members = append(og.Members, om)
	}
}
