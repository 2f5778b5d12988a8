package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/factorywire/factorywire/internal/cli"
	"github.com/factorywire/factorywire/topics"
)

// defaultSinkGroup is the sink's consumer group unless configured
// (sink.DefaultGroup; a test keeps the two equal without the broker binary
// importing the sink).
const defaultSinkGroup = "factorywire-sink"

// aclsCommand manages the ACLs of a factory's gateway and sink through
// CreateAcls, DescribeAcls and DeleteAcls (kadm), so it works on Apache
// Kafka (with an authorizer) as on ours, as kafka-acls.sh does.
func aclsCommand(out io.Writer) *ffcli.Command {
	grant := adminCommand("broker acls", "grant-factory",
		"grant-factory --factory F [--prefix P] [--gateway-user U] [--sink-user U] [--sink-group G] [--classes a,b]",
		"allow a factory's gateway to write its topics and its sink to read them and write their dead letters",
		func(fs *flag.FlagSet) func(context.Context, *topics.Admin) error {
			f := addFactoryACLFlags(fs)
			classes := fs.String("classes", "", "device classes whose dead-letter topics the sink may write even if they do not exist yet, comma-separated")
			return func(ctx context.Context, a *topics.Admin) error {
				p, err := f.plan(ctx, a, *classes)
				if err != nil {
					return err
				}
				if err := a.CreateACLs(ctx, p.ACLs()); err != nil {
					return err
				}
				fmt.Fprintln(out, "granted:")
				printACLs(out, p.ACLs())
				if f.sinkUser() != "" {
					fmt.Fprint(out, dlqNote(p))
				}
				return nil
			}
		})
	revoke := adminCommand("broker acls", "revoke-factory",
		"revoke-factory --factory F [--prefix P] [--gateway-user U] [--sink-user U]",
		"remove the topic ACLs grant-factory gave a factory's gateway and sink",
		func(fs *flag.FlagSet) func(context.Context, *topics.Admin) error {
			f := addFactoryACLFlags(fs)
			return func(ctx context.Context, a *topics.Admin) error {
				if err := f.validate(); err != nil {
					return err
				}
				prefix := topics.FactoryAccess{Prefix: *f.prefix, Factory: *f.factory}.TopicPrefix()
				var gone []aclRow
				for _, user := range []string{f.gatewayUser(), f.sinkUser()} {
					if user == "" {
						continue
					}
					// The user's topic ACLs on the factory: the
					// prefixed ones, and the literal ones of its
					// dead-letter topics.
					rows, err := describeACLs(ctx, a.Kadm(), user)
					if err != nil {
						return err
					}
					for _, r := range rows {
						if r.Type != kmsg.ACLResourceTypeTopic || r.Permission != kmsg.ACLPermissionTypeAllow || !factoryTopicACL(r, prefix) {
							continue
						}
						if err := deleteACL(ctx, a.Kadm(), r); err != nil {
							return err
						}
						gone = append(gone, r)
					}
				}
				fmt.Fprintln(out, "revoked:")
				printACLs(out, gone)
				fmt.Fprintf(out, "left: the users' cluster and group ACLs (IDEMPOTENT_WRITE, the sink's group), which other factories may need; see broker acls list\n")
				return nil
			}
		})
	list := adminCommand("broker acls", "list", "list [--principal User:NAME]",
		"list ACLs, and what each principal may do",
		func(fs *flag.FlagSet) func(context.Context, *topics.Admin) error {
			principal := fs.String("principal", "", "only this principal's ACLs (User:NAME)")
			return func(ctx context.Context, a *topics.Admin) error {
				if *principal != "" && !strings.Contains(*principal, ":") {
					return usageError{Err: fmt.Errorf("--principal %q: want a principal such as User:%s", *principal, *principal)}
				}
				rows, err := describeACLs(ctx, a.Kadm(), *principal)
				if err != nil {
					return err
				}
				printACLs(out, rows)
				fmt.Fprintln(out)
				printPermissions(out, rows)
				return nil
			}
		})
	return &ffcli.Command{
		Name:        "acls",
		ShortUsage:  "broker acls grant-factory|revoke-factory|list [flags]",
		ShortHelp:   "manage the ACLs of factories' gateways and sinks on any Kafka cluster with an authorizer",
		Subcommands: []*ffcli.Command{grant, revoke, list},
		Exec:        cli.NeedSubcommand("broker acls", []*ffcli.Command{grant, revoke, list}),
	}
}

// factoryACLFlags are the flags naming a factory and its users.
type factoryACLFlags struct {
	factory, prefix, gateway, sink, group *string
}

func addFactoryACLFlags(fs *flag.FlagSet) factoryACLFlags {
	return factoryACLFlags{
		factory: fs.String("factory", "", "factory name (required)"),
		prefix:  fs.String("prefix", "", "deployment prefix of the factory's topics"),
		gateway: fs.String("gateway-user", "", "the gateway's user (principal User:NAME)"),
		sink:    fs.String("sink-user", "", "the sink's user (principal User:NAME)"),
		group:   fs.String("sink-group", defaultSinkGroup, "the sink's consumer group"),
	}
}

func (f factoryACLFlags) validate() error {
	if err := topics.ValidateSegment("--factory", *f.factory); err != nil {
		return usageError{Err: err}
	}
	if *f.prefix != "" {
		if err := topics.ValidateSegment("--prefix", *f.prefix); err != nil {
			return usageError{Err: err}
		}
	}
	if *f.gateway == "" && *f.sink == "" {
		return usageError{Err: errors.New("--gateway-user or --sink-user: give at least one")}
	}
	for _, u := range []string{*f.gateway, *f.sink} {
		if strings.Contains(u, ":") {
			return usageError{Err: fmt.Errorf("user %q: give the user name; the principal is User:NAME", u)}
		}
	}
	if *f.group == "" {
		return usageError{Err: errors.New("--sink-group: must not be empty")}
	}
	return nil
}

func (f factoryACLFlags) gatewayUser() string { return principalOf(*f.gateway) }
func (f factoryACLFlags) sinkUser() string    { return principalOf(*f.sink) }

func principalOf(user string) string {
	if user == "" {
		return ""
	}
	return "User:" + user
}

// plan validates the flags and finds the factory's dead-letter topics:
// those that exist, and those of the classes named.
func (f factoryACLFlags) plan(ctx context.Context, a *topics.Admin, classes string) (topics.FactoryAccess, error) {
	if err := f.validate(); err != nil {
		return topics.FactoryAccess{}, err
	}
	p := topics.FactoryAccess{Prefix: *f.prefix, Factory: *f.factory, GatewayUser: *f.gateway, SinkUser: *f.sink, SinkGroup: *f.group}
	if p.SinkUser == "" {
		return p, nil
	}
	var cs []string
	if classes != "" {
		cs = strings.Split(classes, ",")
	}
	dlq, err := a.DeadLetterTopics(ctx, *f.prefix, *f.factory, cs)
	if err != nil {
		return p, usageError{Err: fmt.Errorf("--classes: %w", err)}
	}
	p.DeadLetters = dlq
	return p, nil
}

// dlqNote says which dead-letter topics the sink may write, and why only
// those.
func dlqNote(p topics.FactoryAccess) string {
	var b strings.Builder
	b.WriteString("note: Kafka ACLs match a topic's full name or a prefix, never a suffix, so the sink may write\n")
	if len(p.DeadLetters) == 0 {
		b.WriteString("no dead-letter topic yet: none exists, and --classes named none.\n")
	} else {
		fmt.Fprintf(&b, "only these dead-letter topics: %s.\n", strings.Join(p.DeadLetters, ", "))
	}
	b.WriteString("Run grant-factory again after creating a device class's topics (or name the classes with --classes).\n")
	return b.String()
}

// aclRow is one ACL as the command prints it.
type aclRow = topics.ACL

// factoryTopicACL reports whether the ACL is one grant-factory gives on the
// factory's topics: PREFIXED on the prefix, or LITERAL on one of its
// dead-letter topics.
func factoryTopicACL(r aclRow, prefix string) bool {
	switch r.Pattern {
	case kmsg.ACLResourcePatternTypePrefixed:
		return r.Name == prefix
	case kmsg.ACLResourcePatternTypeLiteral:
		return strings.HasPrefix(r.Name, prefix) && strings.HasSuffix(r.Name, ".dlq")
	}
	return false
}

// describeACLs lists every ACL, or principal's, sorted, once each.
func describeACLs(ctx context.Context, adm *kadm.Client, principal string) ([]aclRow, error) {
	b := kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations().AllowHosts().DenyHosts()
	if principal != "" {
		b.Allow(principal).Deny(principal)
	} else {
		b.Allow().Deny()
	}
	res, err := adm.DescribeACLs(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("describe ACLs: %w", err)
	}
	var rows []aclRow
	for _, r := range res {
		if r.Err != nil {
			return nil, fmt.Errorf("describe ACLs: %w%s", r.Err, says(r.ErrMessage))
		}
		for _, d := range r.Described {
			rows = append(rows, aclRow{Principal: d.Principal, Host: d.Host, Type: d.Type, Name: d.Name, Pattern: d.Pattern, Operation: d.Operation, Permission: d.Permission})
		}
	}
	slices.SortFunc(rows, func(a, b aclRow) int {
		return strings.Compare(sortKey(a), sortKey(b))
	})
	return slices.Compact(rows), nil
}

func sortKey(r aclRow) string {
	return fmt.Sprintf("%s\x00%d\x00%d\x00%s\x00%d\x00%s\x00%d", r.Principal, r.Permission, r.Type, r.Name, r.Pattern, r.Host, r.Operation)
}

func deleteACL(ctx context.Context, adm *kadm.Client, r aclRow) error {
	b := r.Builder()
	res, err := adm.DeleteACLs(ctx, b)
	if err != nil {
		return fmt.Errorf("delete ACLs: %w", err)
	}
	for _, d := range res {
		if d.Err != nil {
			return fmt.Errorf("delete ACL %s %s on %s %q: %w%s", r.Principal, r.Operation, r.Type, r.Name, d.Err, says(d.ErrMessage))
		}
	}
	return nil
}

func printACLs(out io.Writer, rows []aclRow) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PRINCIPAL\tPERMISSION\tOPERATION\tRESOURCE\tPATTERN\tNAME\tHOST")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Principal, r.Permission, r.Operation, r.Type, r.Pattern, r.Name, r.Host)
	}
	tw.Flush()
}

// printPermissions says, per principal, what its ACLs let it do, one line
// per resource pattern, host and permission.
func printPermissions(out io.Writer, rows []aclRow) {
	type key struct {
		principal  string
		permission kmsg.ACLPermissionType
		typ        kmsg.ACLResourceType
		name       string
		pattern    kmsg.ACLResourcePatternType
		host       string
	}
	var keys []key
	ops := map[key][]string{}
	for _, r := range rows {
		k := key{r.Principal, r.Permission, r.Type, r.Name, r.Pattern, r.Host}
		if _, ok := ops[k]; !ok {
			keys = append(keys, k)
		}
		ops[k] = append(ops[k], opWords(r.Operation))
	}
	last := ""
	for _, k := range keys {
		if k.principal != last {
			fmt.Fprintf(out, "%s:\n", k.principal)
			last = k.principal
		}
		may := "may"
		if k.permission == kmsg.ACLPermissionTypeDeny {
			may = "may not"
		}
		from := ""
		if k.host != "*" {
			from = " when connecting from " + k.host
		}
		fmt.Fprintf(out, "  %s %s %s%s\n", may, joinWords(ops[k]), resourceWords(k.typ, k.pattern, k.name), from)
	}
}

func opWords(op kmsg.ACLOperation) string {
	switch op {
	case kmsg.ACLOperationAll:
		return "do everything on"
	case kmsg.ACLOperationIdempotentWrite:
		return "write idempotently (IDEMPOTENT_WRITE) on"
	case kmsg.ACLOperationClusterAction:
		return "do broker-to-broker actions (CLUSTER_ACTION) on"
	case kmsg.ACLOperationDescribeConfigs:
		return "describe the configs of"
	case kmsg.ACLOperationAlterConfigs:
		return "alter the configs of"
	}
	return strings.ReplaceAll(strings.ToLower(op.String()), "_", " ")
}

func joinWords(ws []string) string {
	if len(ws) == 1 {
		return ws[0]
	}
	return strings.Join(ws[:len(ws)-1], ", ") + " and " + ws[len(ws)-1]
}

func resourceWords(typ kmsg.ACLResourceType, pattern kmsg.ACLResourcePatternType, name string) string {
	if typ == kmsg.ACLResourceTypeCluster {
		return "the cluster"
	}
	noun := strings.ReplaceAll(strings.ToLower(typ.String()), "_", " ")
	switch {
	case pattern == kmsg.ACLResourcePatternTypePrefixed:
		return fmt.Sprintf("every %s whose name starts with %q", noun, name)
	case name == "*":
		return "every " + noun
	}
	return fmt.Sprintf("%s %q", noun, name)
}
