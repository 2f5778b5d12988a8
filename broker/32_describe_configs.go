package broker

import (
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeConfigs v0–4.
//
// Topics report the topic configs this broker implements: an override's
// source is DYNAMIC_TOPIC_CONFIG, anything else comes from the broker's
// topic defaults (DEFAULT_CONFIG when it is the built-in default,
// STATIC_BROKER_CONFIG when broker.yaml changed it). Synonyms (v1+) list the
// override, then the broker default under its broker-level name, as Kafka
// does; like Kafka, the built-in defaults of retention.ms and segment.ms
// have no synonym (Kafka's log.retention.ms and log.roll.ms have no default
// of their own: it comes from log.retention.hours and log.roll.hours). The
// broker resource (node 0) reports those broker-level defaults, read-only.
//
// Authorization: DESCRIBE_CONFIGS on the topic (else
// TOPIC_AUTHORIZATION_FAILED) or, for the broker, on the cluster (else
// CLUSTER_AUTHORIZATION_FAILED); a refused resource has no configs.

func init() { regKey(int16(kmsg.DescribeConfigs), 0, 4, handleDescribeConfigs) }

func handleDescribeConfigs(b *Broker, c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		or := kmsg.NewDescribeConfigsResponseResource()
		or.ResourceType, or.ResourceName = rr.ResourceType, rr.ResourceName
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			if !b.authorize(c, req.Key(), kmsg.ACLOperationDescribeConfigs, kmsg.ACLResourceTypeTopic, rr.ResourceName) {
				or.ErrorCode, or.ErrorMessage = kerr.TopicAuthorizationFailed.Code, kmsg.StringPtr("Topic authorization failed.")
				break
			}
			t := b.topic(rr.ResourceName)
			if t == nil {
				or.ErrorCode = kerr.UnknownTopicOrPartition.Code
				msg := fmt.Sprintf("topic %q does not exist", rr.ResourceName)
				or.ErrorMessage = &msg
				break
			}
			or.Configs = b.describeTopicConfigs(t.meta.Configs, rr.ConfigNames, req.IncludeSynonyms)
		case kmsg.ConfigResourceTypeBroker:
			if !b.authorizeCluster(c, req.Key(), kmsg.ACLOperationDescribeConfigs) {
				or.ErrorCode, or.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, kmsg.StringPtr(msgClusterAuthorizationFailed)
				break
			}
			if rr.ResourceName != "" && rr.ResourceName != fmt.Sprint(nodeID) {
				or.ErrorCode = kerr.InvalidRequest.Code
				msg := fmt.Sprintf("broker %q does not exist; this is node %d", rr.ResourceName, nodeID)
				or.ErrorMessage = &msg
				break
			}
			or.Configs = b.describeBrokerConfigs(rr.ConfigNames)
		default:
			or.ErrorCode = kerr.InvalidRequest.Code
			msg := fmt.Sprintf("resource type %d is not supported; describe a topic (2) or the broker (4)", rr.ResourceType)
			or.ErrorMessage = &msg
		}
		for i := range or.Configs {
			c := &or.Configs[i]
			if req.Version == 0 {
				c.IsDefault = c.Source != kmsg.ConfigSourceDynamicTopicConfig
			}
			if req.IncludeDocumentation {
				if tc, ok := lookupTopicConfig(c.Name); ok {
					doc := tc.doc
					c.Documentation = &doc
				}
			}
		}
		resp.Resources = append(resp.Resources, or)
	}
	return reply{resp: resp}, nil
}

// describeTopicConfigs lists a topic's effective configs, limited to names
// when names is non-nil.
func (b *Broker) describeTopicConfigs(overrides map[string]string, names []string, synonyms bool) []kmsg.DescribeConfigsResponseResourceConfig {
	builtin := DefaultConfig().Topics
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, tc := range topicConfigs {
		if names != nil && !slices.Contains(names, tc.name) {
			continue
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name, c.ConfigType = tc.name, tc.typ
		brokerValue := tc.def(b.cfg.Topics)
		brokerSource := kmsg.ConfigSourceStaticBrokerConfig
		if brokerValue == tc.def(builtin) {
			brokerSource = kmsg.ConfigSourceDefaultConfig
		}
		value, overridden := b.cfg.Topics.effective(overrides, tc.name)
		c.Value = &value
		c.Source = brokerSource
		if overridden {
			c.Source = kmsg.ConfigSourceDynamicTopicConfig
		}
		if synonyms {
			if overridden {
				s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				s.Name, s.Value, s.Source = tc.name, &value, kmsg.ConfigSourceDynamicTopicConfig
				c.ConfigSynonyms = append(c.ConfigSynonyms, s)
			}
			if !tc.derivedDefault || brokerSource != kmsg.ConfigSourceDefaultConfig {
				s := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				bv := brokerValue
				s.Name, s.Value, s.Source = tc.brokerName, &bv, brokerSource
				c.ConfigSynonyms = append(c.ConfigSynonyms, s)
			}
		}
		out = append(out, c)
	}
	return out
}

func (b *Broker) describeBrokerConfigs(names []string) []kmsg.DescribeConfigsResponseResourceConfig {
	builtin := DefaultConfig().Topics
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, tc := range topicConfigs {
		if names != nil && !slices.Contains(names, tc.brokerName) {
			continue
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		value := tc.def(b.cfg.Topics)
		c.Name, c.Value, c.ConfigType, c.ReadOnly = tc.brokerName, &value, tc.typ, true
		c.Source = kmsg.ConfigSourceStaticBrokerConfig
		if value == tc.def(builtin) {
			c.Source = kmsg.ConfigSourceDefaultConfig
		}
		out = append(out, c)
	}
	return out
}
