package broker

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// IncrementalAlterConfigs v0–1, for topics.
//
// SET and DELETE work on every implemented topic config; APPEND and SUBTRACT
// only on the list config cleanup.policy (whose only valid value is
// "delete"). All operations on a resource are validated before any is
// applied; an invalid one fails the resource with INVALID_CONFIG naming it.
// Broker configs are static (broker.yaml) and cannot be altered here.
//
// Authorization: ALTER_CONFIGS on the topic (else TOPIC_AUTHORIZATION_FAILED)
// or, for the broker, on the cluster (else CLUSTER_AUTHORIZATION_FAILED).

func init() { regKey(int16(kmsg.IncrementalAlterConfigs), 0, 1, handleIncrementalAlterConfigs) }

func handleIncrementalAlterConfigs(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	seen := map[string]int{}
	for _, rr := range req.Resources {
		seen[fmt.Sprint(rr.ResourceType, rr.ResourceName)]++
	}
	for _, rr := range req.Resources {
		or := kmsg.NewIncrementalAlterConfigsResponseResource()
		or.ResourceType, or.ResourceName = rr.ResourceType, rr.ResourceName
		code, msg := int16(0), ""
		switch {
		case seen[fmt.Sprint(rr.ResourceType, rr.ResourceName)] > 1:
			code, msg = kerr.InvalidRequest.Code, fmt.Sprintf("resource %q appears more than once in the request", rr.ResourceName)
		case rr.ResourceType == kmsg.ConfigResourceTypeBroker && !b.authorizeCluster(c, req.Key(), kmsg.ACLOperationAlterConfigs):
			code, msg = kerr.ClusterAuthorizationFailed.Code, msgClusterAuthorizationFailed
		case rr.ResourceType == kmsg.ConfigResourceTypeBroker:
			code, msg = kerr.InvalidRequest.Code, "broker configs are static: edit broker.yaml and restart the broker"
		case rr.ResourceType != kmsg.ConfigResourceTypeTopic:
			code, msg = kerr.InvalidRequest.Code, fmt.Sprintf("resource type %d cannot be altered; only topics (2)", rr.ResourceType)
		case !b.authorize(c, req.Key(), kmsg.ACLOperationAlterConfigs, kmsg.ACLResourceTypeTopic, rr.ResourceName):
			code, msg = kerr.TopicAuthorizationFailed.Code, "Topic authorization failed."
		default:
			code, msg = b.incrementalAlterTopic(rr, req.ValidateOnly)
		}
		or.ErrorCode = code
		if msg != "" {
			or.ErrorMessage = &msg
		}
		resp.Resources = append(resp.Resources, or)
	}
	return reply{resp: resp}, nil
}

func (b *Broker) incrementalAlterTopic(rr kmsg.IncrementalAlterConfigsRequestResource, validateOnly bool) (int16, string) {
	t := b.topic(rr.ResourceName)
	if t == nil {
		return kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("topic %q does not exist", rr.ResourceName)
	}
	configs := maps.Clone(t.meta.Configs)
	if configs == nil {
		configs = map[string]string{}
	}
	for _, c := range rr.Configs {
		tc, ok := lookupTopicConfig(c.Name)
		if !ok {
			return kerr.InvalidConfig.Code, validateTopicConfig(c.Name, "").Error()
		}
		value := ""
		if c.Value != nil {
			value = *c.Value
		}
		switch c.Op {
		case kmsg.IncrementalAlterConfigOpSet:
			if err := validateTopicConfig(c.Name, value); err != nil {
				return kerr.InvalidConfig.Code, err.Error()
			}
			configs[c.Name] = value
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(configs, c.Name)
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if tc.typ != kmsg.ConfigTypeList {
				return kerr.InvalidConfig.Code, fmt.Sprintf("%s is not a list config; APPEND and SUBTRACT apply only to lists", c.Name)
			}
			current, _ := b.cfg.Topics.effective(configs, c.Name)
			items := strings.Split(current, ",")
			for _, v := range strings.Split(value, ",") {
				has := slices.Contains(items, v)
				if c.Op == kmsg.IncrementalAlterConfigOpAppend && !has {
					items = append(items, v)
				} else if c.Op == kmsg.IncrementalAlterConfigOpSubtract && has {
					items = slices.DeleteFunc(items, func(s string) bool { return s == v })
				}
			}
			joined := strings.Join(items, ",")
			if err := validateTopicConfig(c.Name, joined); err != nil {
				return kerr.InvalidConfig.Code, err.Error()
			}
			configs[c.Name] = joined
		default:
			return kerr.InvalidRequest.Code, fmt.Sprintf("config operation %d on %s is unknown", c.Op, c.Name)
		}
	}
	if validateOnly {
		return 0, ""
	}
	return b.alterTopicConfigs(rr.ResourceName, configs)
}
