package topics

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ACL is one Kafka ACL: who (principal and host) may or may not
// (permission) do what (operation) on which resources (type, pattern and
// name).
type ACL struct {
	Principal, Host string
	Type            kmsg.ACLResourceType
	Name            string
	Pattern         kmsg.ACLResourcePatternType
	Operation       kmsg.ACLOperation
	Permission      kmsg.ACLPermissionType
}

// Builder is the ACL as kadm creates it.
func (a ACL) Builder() *kadm.ACLBuilder {
	b := kadm.NewACLs().ResourcePatternType(a.Pattern).Operations(a.Operation)
	switch a.Type {
	case kmsg.ACLResourceTypeTopic:
		b.Topics(a.Name)
	case kmsg.ACLResourceTypeGroup:
		b.Groups(a.Name)
	case kmsg.ACLResourceTypeCluster:
		b.Clusters()
	}
	if a.Permission == kmsg.ACLPermissionTypeDeny {
		return b.Deny(a.Principal).DenyHosts(a.Host)
	}
	return b.Allow(a.Principal).AllowHosts(a.Host)
}

// FactoryAccess is what a factory's gateway and sink users may do: the
// gateway writes (and describes) the factory's topics and writes
// idempotently on the cluster; the sink reads them, reads its consumer
// group, and writes the dead-letter topics named. `broker acls
// grant-factory` and `demo --secure` grant it.
type FactoryAccess struct {
	// Prefix is the deployment prefix of the topics, if any, and Factory
	// the factory: the topics granted are those starting with
	// [Prefix.]Factory.
	Prefix, Factory string
	// GatewayUser and SinkUser are user names (principal User:<name>);
	// empty grants nothing for that role.
	GatewayUser, SinkUser string
	// SinkGroup is the sink's consumer group.
	SinkGroup string
	// DeadLetters are the dead-letter topics the sink may write: Kafka
	// ACLs match a topic's full name or a prefix, never a suffix, so each
	// is granted by name (see Admin.DeadLetterTopics).
	DeadLetters []string
}

// TopicPrefix is what every topic of the factory starts with:
// [<prefix>.]<factory>.
func (f FactoryAccess) TopicPrefix() string {
	if f.Prefix != "" {
		return f.Prefix + "." + f.Factory + "."
	}
	return f.Factory + "."
}

// ACLs are the ACLs granting the access, all ALLOW from any host.
func (f FactoryAccess) ACLs() []ACL {
	prefix := f.TopicPrefix()
	allow := func(user string, op kmsg.ACLOperation, typ kmsg.ACLResourceType, pattern kmsg.ACLResourcePatternType, name string) ACL {
		return ACL{Principal: "User:" + user, Host: "*", Type: typ, Name: name, Pattern: pattern, Operation: op, Permission: kmsg.ACLPermissionTypeAllow}
	}
	var acls []ACL
	if gw := f.GatewayUser; gw != "" {
		acls = append(acls,
			allow(gw, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypePrefixed, prefix),
			allow(gw, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypePrefixed, prefix),
			allow(gw, kmsg.ACLOperationIdempotentWrite, kmsg.ACLResourceTypeCluster, kmsg.ACLResourcePatternTypeLiteral, "kafka-cluster"))
	}
	if sink := f.SinkUser; sink != "" {
		acls = append(acls,
			allow(sink, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypePrefixed, prefix),
			allow(sink, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypePrefixed, prefix),
			allow(sink, kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, kmsg.ACLResourcePatternTypeLiteral, f.SinkGroup))
		for _, t := range f.DeadLetters {
			acls = append(acls, allow(sink, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, kmsg.ACLResourcePatternTypeLiteral, t))
		}
	}
	return acls
}

// DeadLetterTopics returns the factory's dead-letter topics that exist,
// and those of classes (which may not exist yet), sorted, once each.
func (a *Admin) DeadLetterTopics(ctx context.Context, prefix, factory string, classes []string) ([]string, error) {
	infos, err := a.Topics(ctx, prefix, factory)
	if err != nil {
		return nil, err
	}
	var dlq []string
	for _, in := range infos {
		if in.Name.DLQ {
			dlq = append(dlq, in.Name.String())
		}
	}
	for _, c := range classes {
		n, err := New(prefix, factory, c)
		if err != nil {
			return nil, fmt.Errorf("class %q: %w", c, err)
		}
		dlq = append(dlq, n.DeadLetter().String())
	}
	slices.Sort(dlq)
	return slices.Compact(dlq), nil
}

// CreateACLs creates the ACLs, one request each, and stops at the first
// refused, naming it.
func (a *Admin) CreateACLs(ctx context.Context, acls []ACL) error {
	for _, acl := range acls {
		res, err := a.adm.CreateACLs(ctx, acl.Builder())
		if err != nil {
			return fmt.Errorf("create ACLs: %w", err)
		}
		for _, r := range res {
			if r.Err != nil {
				return fmt.Errorf("create ACL %s %s %s on %s %s %q: %w%s", r.Permission, r.Principal, r.Operation, r.Type, r.Pattern, r.Name, r.Err, brokerSays(r.ErrMessage))
			}
		}
	}
	return nil
}
