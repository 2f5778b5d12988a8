package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteGroups v0–2.
//
// Only a group without members can be deleted (NON_EMPTY_GROUP otherwise);
// its committed offsets go with it. An unknown group is GROUP_ID_NOT_FOUND,
// and so is one already deleted because its offsets expired.
//
// Authorization: DELETE on each group, else GROUP_AUTHORIZATION_FAILED.

func init() { regKey(int16(kmsg.DeleteGroups), 0, 2, handleDeleteGroups) }

func handleDeleteGroups(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		og := kmsg.NewDeleteGroupsResponseGroup()
		og.Group = id
		if !b.authorize(c, req.Key(), kmsg.ACLOperationDelete, kmsg.ACLResourceTypeGroup, id) {
			og.ErrorCode = kerr.GroupAuthorizationFailed.Code
		} else if !validGroupID(id) {
			og.ErrorCode = kerr.InvalidGroupID.Code
		} else {
			og.ErrorCode = b.groups.delete(id)
		}
		resp.Groups = append(resp.Groups, og)
	}
	return reply{resp: resp}, nil
}
