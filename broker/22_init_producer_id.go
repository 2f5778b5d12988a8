package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerId v0–2, for idempotent producers.
//
// Every call hands out a new producer id with epoch 0; ids are never reused,
// across restarts too (see producerIDs). Transactions are not implemented: a
// request with a transactional id is refused with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients report without
// retrying. v3+ (epoch bumps, KIP-360) is not advertised, so clients recover
// from a sequence error by asking for a new id.
//
// Authorization: an idempotent producer needs IDEMPOTENT_WRITE on the
// cluster or WRITE on some topic (KIP-679), else CLUSTER_AUTHORIZATION_FAILED;
// a transactional one WRITE on its transactional id (before it is refused
// for transactions).

func init() { regKey(int16(kmsg.InitProducerID), 0, 2, handleInitProducerID) }

func handleInitProducerID(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		if !b.authorize(c, req.Key(), kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, *req.TransactionalID) {
			resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
			return reply{resp: resp}, nil
		}
	} else if !b.permits(c, kmsg.ACLOperationIdempotentWrite, kmsg.ACLResourceTypeCluster, clusterResourceName) &&
		!b.permitsAnyOfType(c, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic) {
		b.refused(c, req.Key(), kmsg.ACLOperationIdempotentWrite, kmsg.ACLResourceTypeCluster, clusterResourceName)
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return reply{resp: resp}, nil
	}
	if req.TransactionalID != nil && *req.TransactionalID != "" {
		b.log.Warn("transactional producer refused: transactions are not supported", "transactional_id", *req.TransactionalID)
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return reply{resp: resp}, nil
	}
	id, err := b.pids.allocate()
	if err != nil {
		// Retriable: the client asks again, and the next block
		// reservation may succeed.
		b.log.Error("init producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return reply{resp: resp}, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return reply{resp: resp}, nil
}
