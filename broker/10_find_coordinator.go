package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FindCoordinator v0–4.
//
// This broker coordinates every consumer group. Transaction coordinators
// are refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as InitProducerId
// refuses transactional ids: transactions are not implemented. v4 answers a
// batch of keys. While the committed offsets' log is offline (corrupt at
// start-up) every group key is answered COORDINATOR_NOT_AVAILABLE, which
// clients retry.
//
// Authorization: DESCRIBE on the group (else GROUP_AUTHORIZATION_FAILED) or
// on the transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

func init() { regKey(int16(kmsg.FindCoordinator), 0, 4, handleFindCoordinator) }

func handleFindCoordinator(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	answer := func(key string) (int16, string) {
		switch {
		case req.CoordinatorType == 1 && !b.authorize(c, req.Key(), kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTransactionalId, key):
			return kerr.TransactionalIDAuthorizationFailed.Code, "Transactional Id authorization failed."
		case req.CoordinatorType == 1:
			return kerr.TransactionalIDAuthorizationFailed.Code, "transactions are not supported by this broker"
		case req.CoordinatorType != 0:
			return kerr.InvalidRequest.Code, "unknown coordinator type"
		case !b.authorize(c, req.Key(), kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeGroup, key):
			return kerr.GroupAuthorizationFailed.Code, "Group authorization failed."
		case !validGroupID(key):
			return kerr.InvalidGroupID.Code, "group id must be 1 to 1024 bytes"
		case b.groupsOffline != nil:
			return kerr.CoordinatorNotAvailable.Code, fmt.Sprintf("consumer groups are offline: %v; see broker repair", b.groupsOffline)
		}
		return 0, ""
	}
	if req.Version >= 4 {
		for _, key := range req.CoordinatorKeys {
			rc := kmsg.NewFindCoordinatorResponseCoordinator()
			rc.Key, rc.NodeID, rc.Host, rc.Port = key, nodeID, c.lis.advHost, c.lis.advPort
			code, msg := answer(key)
			if rc.ErrorCode = code; code != 0 {
				rc.NodeID, rc.Host, rc.Port, rc.ErrorMessage = -1, "", -1, &msg
			}
			resp.Coordinators = append(resp.Coordinators, rc)
		}
		return reply{resp: resp}, nil
	}
	resp.NodeID, resp.Host, resp.Port = nodeID, c.lis.advHost, c.lis.advPort
	if code, msg := answer(req.CoordinatorKey); code != 0 {
		resp.ErrorCode, resp.ErrorMessage = code, &msg
		resp.NodeID, resp.Host, resp.Port = -1, "", -1
	}
	return reply{resp: resp}, nil
}

func validGroupID(id string) bool { return id != "" && len(id) <= maxGroupIDLength }
