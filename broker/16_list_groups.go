package broker

import (
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListGroups v0–4.
//
// Every group with members, and every group with committed offsets (Empty).
// An Empty group whose offsets expired (OffsetsRetention) is deleted and no
// longer listed. v4 filters by state names, case-insensitively.
//
// Authorization: with DESCRIBE on the cluster every group is listed, else
// only those the client may DESCRIBE.

func init() { regKey(int16(kmsg.ListGroups), 0, 4, handleListGroups) }

func handleListGroups(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	if b.groupsOffline != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return reply{resp: resp}, nil
	}
	all := b.permits(c, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeCluster, clusterResourceName)
	for _, l := range b.groups.list() {
		if len(req.StatesFilter) > 0 && !slices.ContainsFunc(req.StatesFilter, func(s string) bool { return strings.EqualFold(s, l.state) }) {
			continue
		}
		if !all && !b.permits(c, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, l.id) {
			continue
		}
		og := kmsg.NewListGroupsResponseGroup()
		og.Group, og.ProtocolType, og.GroupState = l.id, l.protocolType, l.state
		resp.Groups = append(resp.Groups, og)
	}
	return reply{resp: resp}, nil
}
