package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeClientQuotas v0–1.
//
// The broker enforces no client quotas (no produce, fetch or request-rate
// throttling per user, client id or IP), so every valid filter matches no
// entry: the answer is an empty list, what Kafka answers when no quota is
// set. It is served because Kafka's own tools ask for it: kafka-configs.sh
// --describe --entity-type users describes a user's quotas beside its SCRAM
// credentials. AlterClientQuotas is not implemented (not advertised), so no
// quota can be set. The filter is checked as Kafka checks it: entity types
// user, client-id and ip, each at most once, ip alone, match types exact
// (with a name), default and any; otherwise INVALID_REQUEST. It needs
// DESCRIBE_CONFIGS on the cluster (CLUSTER_AUTHORIZATION_FAILED).

func init() { regKey(int16(kmsg.DescribeClientQuotas), 0, 1, handleDescribeClientQuotas) }

func handleDescribeClientQuotas(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DescribeClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	if !b.authorizeCluster(c, req.Key(), kmsg.ACLOperationDescribeConfigs) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return reply{resp: resp}, nil
	}
	if err := validateQuotaFilter(req.Components); err != nil {
		resp.ErrorCode = kerr.InvalidRequest.Code
		resp.ErrorMessage = kmsg.StringPtr(err.Error())
		return reply{resp: resp}, nil
	}
	resp.Entries = []kmsg.DescribeClientQuotasResponseEntry{}
	return reply{resp: resp}, nil
}

func validateQuotaFilter(components []kmsg.DescribeClientQuotasRequestComponent) error {
	seen := map[string]bool{}
	for _, comp := range components {
		switch comp.EntityType {
		case "user", "client-id", "ip":
		default:
			return fmt.Errorf("unexpected entity type %q: want user, client-id or ip", comp.EntityType)
		}
		if seen[comp.EntityType] {
			return fmt.Errorf("duplicate filter component entity type %s", comp.EntityType)
		}
		seen[comp.EntityType] = true
		switch comp.MatchType {
		case kmsg.QuotasMatchTypeExact:
			if comp.Match == nil {
				return fmt.Errorf("unexpected null match for entity type %s with match type exact", comp.EntityType)
			}
		case kmsg.QuotasMatchTypeDefault, kmsg.QuotasMatchTypeAny:
		default:
			return fmt.Errorf("unexpected match type %d", comp.MatchType)
		}
	}
	if seen["ip"] && len(seen) > 1 {
		return fmt.Errorf("invalid entity filter component combination: ip with user or client-id")
	}
	return nil
}
