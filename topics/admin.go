package topics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Admin administers a factory's topics and consumer groups on any
// Kafka-compatible cluster (Apache Kafka, Redpanda, our broker) through
// kadm. It holds no state beyond the client.
type Admin struct {
	cl  *kgo.Client
	adm *kadm.Client
}

// NewAdmin returns an Admin using cl; the caller closes cl.
func NewAdmin(cl *kgo.Client) *Admin { return &Admin{cl: cl, adm: kadm.NewClient(cl)} }

// brokerSays is the detail a broker gave with an error code, as a suffix
// of the error, or nothing when it gave none.
func brokerSays(msg string) string {
	if msg == "" {
		return ""
	}
	return " (the broker says: " + msg + ")"
}

// shape is a topic's partition count and replication factor.
type shape struct{ partitions, replicas int }

// partitions returns the shape of each topic that exists, from a
// fresh metadata request: kadm's ListTopics answers from a metadata cache
// (franz-go's MetadataMinAge, 5 s by default) that does not see a topic
// created or grown in the meantime.
func (a *Admin) partitions(ctx context.Context, topics []string) (map[string]shape, error) {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	if topics == nil {
		req.Topics = nil // every topic
	}
	resp, err := req.RequestWith(ctx, a.cl)
	if err != nil {
		return nil, fmt.Errorf("topics: metadata: %w", err)
	}
	out := map[string]shape{}
	for _, t := range resp.Topics {
		if t.Topic == nil || t.IsInternal {
			continue
		}
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
		case err != nil:
			return nil, fmt.Errorf("topics: metadata of %s: %w", *t.Topic, err)
		default:
			sh := shape{partitions: len(t.Partitions)}
			if len(t.Partitions) > 0 {
				sh.replicas = len(t.Partitions[0].Replicas)
			}
			out[*t.Topic] = sh
		}
	}
	return out, nil
}

// awaitMetadata is partitions of topics, asked again for a while (up to
// metadataSettle) until done says the metadata shows what it should. An
// Apache Kafka broker learns of a topic created or deleted a moment after
// the controller answered the request.
func (a *Admin) awaitMetadata(ctx context.Context, topics []string, done func(found map[string]shape) bool) (map[string]shape, error) {
	deadline := time.Now().Add(metadataSettle)
	for {
		found, err := a.partitions(ctx, topics)
		if err != nil || done(found) || time.Now().After(deadline) {
			return found, err
		}
		select {
		case <-ctx.Done():
			return found, nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// metadataSettle bounds how long Ensure and DeleteFactory wait for a
// broker's metadata to show a topic that exists, or no longer show one
// deleted.
const metadataSettle = 5 * time.Second

// FactorySpec is what Ensure makes true for one factory.
type FactorySpec struct {
	Prefix  string   // deployment prefix, "" for none
	Factory string   // required
	Classes []string // device classes: one samples topic each; required
	// Partitions is the partition count of each samples topic. Default 6.
	Partitions int32
	// Retention is retention.ms of the samples topics; 0 leaves the
	// cluster's default, negative means unlimited.
	Retention time.Duration
	// ReplicationFactor is how many brokers hold each partition of the
	// topics created. 0 leaves the cluster's default
	// (default.replication.factor). Ensure reports, and does not change,
	// the factor of existing topics (that takes a partition
	// reassignment).
	ReplicationFactor int16
	// MinInsyncReplicas is min.insync.replicas of the topics: how many
	// replicas must hold a record before an acks=all produce is
	// acknowledged; with fewer in sync, produce is refused with
	// NOT_ENOUGH_REPLICAS. 0 leaves the cluster's default. Kafka's advice
	// for a replication factor of 3 is 2.
	MinInsyncReplicas int
	// NoDLQ skips the dead-letter topics (<topic>.dlq, one partition,
	// the same retention and replication), which the sink needs.
	NoDLQ bool
}

// Change is what Ensure did, or found, for one topic.
type Change struct {
	Topic  string
	Action string // "created", "unchanged", "retention changed", "has more partitions than asked (kept)", …
}

// Ensure creates the factory's missing topics and sets the retention of the
// existing ones; it is idempotent and reports per topic what it did. It
// never removes partitions (Kafka cannot) and never adds any: Ensure
// reports a difference and AddPartitions does that on request, because
// adding partitions moves keys (devices) to other partitions.
func (a *Admin) Ensure(ctx context.Context, spec FactorySpec) ([]Change, error) {
	if spec.Partitions == 0 {
		spec.Partitions = 6
	}
	if spec.Partitions < 1 {
		return nil, fmt.Errorf("topics: partitions %d: want at least 1", spec.Partitions)
	}
	if len(spec.Classes) == 0 {
		return nil, errors.New("topics: no classes given: a factory's topics are one per device class")
	}
	if spec.ReplicationFactor < 0 || spec.MinInsyncReplicas < 0 {
		return nil, fmt.Errorf("topics: replication factor %d, min.insync.replicas %d: want 0 (the cluster's default) or more", spec.ReplicationFactor, spec.MinInsyncReplicas)
	}
	if spec.ReplicationFactor > 0 && spec.MinInsyncReplicas > int(spec.ReplicationFactor) {
		return nil, fmt.Errorf("topics: min.insync.replicas %d is more than the replication factor %d: no acks=all produce could succeed", spec.MinInsyncReplicas, spec.ReplicationFactor)
	}
	type want struct {
		name       string
		partitions int32
	}
	var wants []want
	for _, class := range spec.Classes {
		n, err := New(spec.Prefix, spec.Factory, class)
		if err != nil {
			return nil, err
		}
		wants = append(wants, want{n.String(), spec.Partitions})
		if !spec.NoDLQ {
			wants = append(wants, want{n.DeadLetter().String(), 1})
		}
	}
	names := make([]string, len(wants))
	for i, w := range wants {
		names[i] = w.name
	}
	existing, err := a.partitions(ctx, names)
	if err != nil {
		return nil, err
	}
	configs := map[string]*string{}
	if spec.Retention != 0 {
		configs["retention.ms"] = kadm.StringPtr(retentionMillis(spec.Retention))
	}
	if spec.MinInsyncReplicas != 0 {
		configs["min.insync.replicas"] = kadm.StringPtr(strconv.Itoa(spec.MinInsyncReplicas))
	}
	rf := spec.ReplicationFactor
	if rf == 0 {
		rf = -1 // the cluster's default.replication.factor
	}
	var changes []Change
	var errs []error
	var alter, raced, created []string
	have := func(name string, sh shape, asked int32) {
		var notes []string
		switch partitions := int32(sh.partitions); {
		case partitions < asked:
			notes = append(notes, fmt.Sprintf("has %d partitions, %d asked: not added (add them with AddPartitions; keys move)", partitions, asked))
		case partitions > asked:
			notes = append(notes, fmt.Sprintf("has %d partitions, %d asked: kept (partitions cannot be removed)", partitions, asked))
		}
		if spec.ReplicationFactor > 0 && sh.replicas != int(spec.ReplicationFactor) {
			notes = append(notes, fmt.Sprintf("has %d replicas, %d asked: kept (changing it takes a partition reassignment)", sh.replicas, spec.ReplicationFactor))
		}
		action := "unchanged"
		if len(notes) > 0 {
			action = strings.Join(notes, "; ")
		}
		changes = append(changes, Change{name, action})
		if len(configs) > 0 {
			alter = append(alter, name)
		}
	}
	asked := map[string]int32{}
	for _, w := range wants {
		asked[w.name] = w.partitions
		if sh, ok := existing[w.name]; ok {
			have(w.name, sh, w.partitions)
			continue
		}
		resp, err := a.adm.CreateTopic(ctx, w.partitions, rf, configs, w.name)
		if err == nil {
			err = resp.Err
		}
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
			raced = append(raced, w.name)
		case err != nil:
			errs = append(errs, fmt.Errorf("create %s: %w%s", w.name, err, brokerSays(resp.ErrMessage)))
		default:
			created = append(created, w.name)
			changes = append(changes, Change{w.name, fmt.Sprintf("created (%d partitions)", w.partitions)})
		}
	}
	if len(created) > 0 {
		// So that a producer or a listing right after finds them.
		if _, err := a.awaitMetadata(ctx, created, func(found map[string]shape) bool { return len(found) == len(created) }); err != nil {
			errs = append(errs, err)
		}
	}
	// A topic that exists but was not in the metadata: created by someone
	// else meanwhile, or just created and not yet in the answering
	// broker's metadata (Apache Kafka's brokers learn of a topic a moment
	// after its CreateTopics returns). It is an existing topic.
	if len(raced) > 0 {
		found, err := a.awaitMetadata(ctx, raced, func(found map[string]shape) bool { return len(found) == len(raced) })
		if err != nil {
			errs = append(errs, err)
		}
		for _, name := range raced {
			if sh, ok := found[name]; ok {
				have(name, sh, asked[name])
			} else {
				changes = append(changes, Change{name, "exists (created concurrently; not yet in the metadata)"})
			}
		}
	}
	if len(alter) > 0 {
		changed, err := a.setConfigs(ctx, alter, configs)
		if err != nil {
			errs = append(errs, err)
		}
		for i := range changes {
			for _, key := range changed[changes[i].Topic] {
				what := configNames[key] + " changed"
				if changes[i].Action == "unchanged" {
					changes[i].Action = what
				} else {
					changes[i].Action += "; " + what
				}
			}
		}
	}
	return changes, errors.Join(errs...)
}

// retentionMillis is d as a retention.ms value; negative means unlimited.
func retentionMillis(d time.Duration) string {
	if d < 0 {
		return "-1"
	}
	return strconv.FormatInt(d.Milliseconds(), 10)
}

// SetRetention sets retention.ms of topics (negative: unlimited).
func (a *Admin) SetRetention(ctx context.Context, topics []string, d time.Duration) error {
	_, err := a.setConfigs(ctx, topics, map[string]*string{"retention.ms": kadm.StringPtr(retentionMillis(d))})
	return err
}

// configNames are the topic configs Ensure keeps in line, as a Change
// names them.
var configNames = map[string]string{"retention.ms": "retention", "min.insync.replicas": "min.insync.replicas"}

// setConfigs sets the configs want of topics where they differ, and
// reports which keys of which topics changed.
func (a *Admin) setConfigs(ctx context.Context, topics []string, want map[string]*string) (map[string][]string, error) {
	keys := slices.Sorted(maps.Keys(want))
	current, err := a.topicConfigs(ctx, topics, keys...)
	if err != nil {
		return nil, err
	}
	changed := map[string][]string{}
	var errs []error
	for _, key := range keys {
		var todo []string
		for _, t := range topics {
			if current[t][key] != *want[key] {
				todo = append(todo, t)
			}
		}
		if len(todo) == 0 {
			continue
		}
		resps, err := a.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: key, Value: want[key]}}, todo...)
		if err != nil {
			return nil, fmt.Errorf("topics: set %s=%s: %w", key, *want[key], err)
		}
		for _, r := range resps {
			if r.Err != nil {
				errs = append(errs, fmt.Errorf("set %s of %s: %w%s", key, r.Name, r.Err, brokerSays(r.ErrMessage)))
				continue
			}
			changed[r.Name] = append(changed[r.Name], key)
		}
	}
	return changed, errors.Join(errs...)
}

// topicConfigs returns the values of keys of each topic as the cluster
// reports them.
func (a *Admin) topicConfigs(ctx context.Context, topics []string, keys ...string) (map[string]map[string]string, error) {
	rcs, err := a.adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("topics: describe configs: %w", err)
	}
	out := map[string]map[string]string{}
	for _, rc := range rcs {
		if rc.Err != nil {
			return nil, fmt.Errorf("topics: describe configs of %s: %w", rc.Name, rc.Err)
		}
		out[rc.Name] = map[string]string{}
		for _, c := range rc.Configs {
			if slices.Contains(keys, c.Key) && c.Value != nil {
				out[rc.Name][c.Key] = *c.Value
			}
		}
	}
	return out, nil
}

// TopicInfo is one topic as List reports it.
type TopicInfo struct {
	Name       Name
	Partitions int
	// Replicas is the replication factor (of its first partition).
	Replicas int
	// MinInsyncReplicas is min.insync.replicas as the cluster reports
	// it; empty where the broker has no such config (ours, single node).
	MinInsyncReplicas string
	// Retention is retention.ms as the cluster reports it ("-1":
	// unlimited).
	Retention string
	// Records is the records the topic holds now: the sum over its
	// partitions of end minus start offset.
	Records int64
	// Bytes is the size of the topic's logs, from DescribeLogDirs: the
	// sum over its partitions of the largest replica's segment bytes, so
	// one copy (on disk it takes up to the replication factor times
	// that). -1 when unknown: BytesErr says why.
	Bytes int64
	// BytesErr is why Bytes is unknown: the cluster refused
	// DescribeLogDirs (not authorized to describe the cluster, or a
	// broker too old), or reported no size for a partition (an offline
	// log dir). The same error for every topic it concerns.
	BytesErr error
	// Lag is, per consumer group that has committed offsets for the
	// topic, the records not yet consumed.
	Lag map[string]int64
}

// Topics returns factorywire's topics (those that parse with this
// package's grammar) of factory under prefix, or of every factory when
// factory is empty, sorted by name, with their partition counts only: one
// metadata request, where List also asks for configs, offsets and groups.
func (a *Admin) Topics(ctx context.Context, prefix, factory string) ([]TopicInfo, error) {
	all, err := a.partitions(ctx, nil)
	if err != nil {
		return nil, err
	}
	var infos []TopicInfo
	for name, sh := range all {
		n, err := Parse(name)
		if err != nil || n.Prefix != prefix || (factory != "" && n.Factory != factory) {
			continue
		}
		infos = append(infos, TopicInfo{Name: n, Partitions: sh.partitions, Replicas: sh.replicas})
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name.String() < infos[j].Name.String() })
	return infos, nil
}

// List returns factorywire's topics (those that parse with this package's
// grammar) of factory under prefix, or of every factory when factory is
// empty, sorted by name, with partitions, retention, records, bytes and the
// lag of every consumer group that reads them. A cluster refusing
// DescribeLogDirs only leaves Bytes unknown (TopicInfo.BytesErr).
//
// A topic deleted while List reads it (Apache Kafka's brokers list a
// deleted topic in their metadata for a moment) makes List start again, a
// few times.
func (a *Admin) List(ctx context.Context, prefix, factory string) ([]TopicInfo, error) {
	for attempt := 1; ; attempt++ {
		infos, err := a.list(ctx, prefix, factory)
		if !errors.Is(err, kerr.UnknownTopicOrPartition) || attempt == listAttempts {
			return infos, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// listAttempts bounds how often List starts again after a topic vanished.
const listAttempts = 5

func (a *Admin) list(ctx context.Context, prefix, factory string) ([]TopicInfo, error) {
	infos, err := a.Topics(ctx, prefix, factory)
	if err != nil || len(infos) == 0 {
		return nil, err
	}
	names := make([]string, len(infos))
	for i := range infos {
		names[i] = infos[i].Name.String()
		infos[i].Lag = map[string]int64{}
	}
	configs, err := a.topicConfigs(ctx, names, "retention.ms", "min.insync.replicas")
	if err != nil {
		return nil, err
	}
	starts, err := a.adm.ListStartOffsets(ctx, names...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("topics: list start offsets: %w", err)
	}
	ends, err := a.adm.ListEndOffsets(ctx, names...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("topics: list end offsets: %w", err)
	}
	byName := map[string]*TopicInfo{}
	for i := range infos {
		t := &infos[i]
		byName[t.Name.String()] = t
		t.Retention = configs[t.Name.String()]["retention.ms"]
		t.MinInsyncReplicas = configs[t.Name.String()]["min.insync.replicas"]
	}
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok {
			byName[o.Topic].Records += o.Offset - s.Offset
		}
	})
	a.sizes(ctx, infos)
	groups, err := a.adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("topics: list groups: %w", err)
	}
	if ids := groups.Groups(); len(ids) > 0 {
		// kadm.Lag would list every start and end offset again: the
		// groups' lag on these topics needs only their descriptions and
		// commits, with the offsets listed above.
		described, err := a.adm.DescribeGroups(ctx, ids...)
		var se *kadm.ShardErrors
		if err != nil && !(errors.As(err, &se) && !se.AllFailed) {
			return nil, fmt.Errorf("topics: describe groups: %w", err)
		}
		fetched := a.adm.FetchManyOffsets(ctx, ids...)
		for _, g := range described {
			f, ok := fetched[g.Group]
			if g.Err != nil || !ok || f.Err != nil {
				continue // as kadm.Lag: no lag for a group it cannot read
			}
			for topic, ps := range kadm.CalculateGroupLagWithStartOffsets(g, f.Fetched, starts, ends) {
				t := byName[topic]
				if t == nil {
					continue
				}
				var sum int64
				for _, l := range ps {
					if l.Err == nil && l.Lag > 0 {
						sum += l.Lag
					}
				}
				t.Lag[g.Group] = sum
			}
		}
	}
	return infos, nil
}

// errNoSize is why a topic's size is unknown when DescribeLogDirs succeeded
// but left a partition out: Kafka before v3 of the request answers a client
// not allowed to describe the cluster with no dirs and no error.
var errNoSize = errors.New("topics: describe log dirs: the cluster reported no size for some partitions (is this client allowed to describe the cluster?)")

// sizes sets the Bytes of infos from DescribeLogDirs, or -1 and BytesErr
// where the cluster reports no size.
func (a *Admin) sizes(ctx context.Context, infos []TopicInfo) {
	set := kadm.TopicsSet{}
	for _, t := range infos {
		for p := range t.Partitions {
			set.Add(t.Name.String(), int32(p))
		}
	}
	described, err := a.adm.DescribeAllLogDirs(ctx, set)
	if err != nil {
		err = fmt.Errorf("topics: describe log dirs: %w", err)
	}
	// Each partition's largest replica: the leader's, or a follower that
	// has not yet truncated; never a future log being moved.
	largest := map[string]map[int32]int64{}
	var dirErr error
	described.Each(func(d kadm.DescribedLogDir) {
		if d.Err != nil {
			dirErr = fmt.Errorf("topics: describe log dirs: broker %d, log dir %s: %w", d.Broker, d.Dir, d.Err)
			return
		}
		for topic, ps := range d.Topics {
			for p, dp := range ps {
				if dp.IsFuture {
					continue
				}
				if largest[topic] == nil {
					largest[topic] = map[int32]int64{}
				}
				if cur, ok := largest[topic][p]; !ok || dp.Size > cur {
					largest[topic][p] = dp.Size
				}
			}
		}
	})
	why := cmp.Or(err, dirErr, errNoSize)
	for i := range infos {
		t := &infos[i]
		name := t.Name.String()
		for p := range t.Partitions {
			size, ok := largest[name][int32(p)]
			if !ok {
				t.Bytes, t.BytesErr = -1, why
				break
			}
			t.Bytes += size
		}
	}
}

// AddPartitions raises topic's partition count to total. Keys hash to
// other partitions afterwards: a device's new samples may land on another
// partition than its old ones, so per-device order holds only within the
// samples written after the change.
func (a *Admin) AddPartitions(ctx context.Context, topic string, total int) error {
	resps, err := a.adm.UpdatePartitions(ctx, total, topic)
	if err == nil {
		var r kadm.CreatePartitionsResponse
		if r, err = resps.On(topic, nil); err == nil {
			err = r.Err
		}
	}
	if err != nil {
		return fmt.Errorf("topics: set %s to %d partitions: %w", topic, total, err)
	}
	return nil
}

// DeleteFactory deletes every topic of factory under prefix (samples and
// dead letters) and returns their names. What they held is gone. It
// returns once the metadata no longer lists them, or after a few seconds.
func (a *Admin) DeleteFactory(ctx context.Context, prefix, factory string) ([]string, error) {
	if err := ValidateSegment("factory", factory); err != nil {
		return nil, err
	}
	infos, err := a.Topics(ctx, prefix, factory)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, t := range infos {
		names = append(names, t.Name.String())
	}
	if len(names) == 0 {
		return nil, nil
	}
	resps, err := a.adm.DeleteTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("topics: delete: %w", err)
	}
	var errs []error
	var deleted []string
	for _, r := range resps {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", r.Topic, r.Err))
		} else {
			deleted = append(deleted, r.Topic)
		}
	}
	if len(deleted) > 0 {
		// So that a listing or a creation right after sees them gone.
		if _, err := a.awaitMetadata(ctx, deleted, func(found map[string]shape) bool { return len(found) == 0 }); err != nil {
			errs = append(errs, err)
		}
	}
	return names, errors.Join(errs...) // sorted, as Topics returns them
}

// Kadm returns the kadm client the Admin uses, for the administration this
// package does not cover (SCRAM users, ACLs).
func (a *Admin) Kadm() *kadm.Client { return a.adm }
