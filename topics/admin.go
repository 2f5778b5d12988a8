package topics

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
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

// partitions returns the partition count of each topic that exists, from a
// fresh metadata request: kadm's ListTopics answers from a metadata cache
// (franz-go's MetadataMinAge, 5 s by default) that does not see a topic
// created or grown in the meantime.
func (a *Admin) partitions(ctx context.Context, topics []string) (map[string]int, error) {
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
	out := map[string]int{}
	for _, t := range resp.Topics {
		if t.Topic == nil || t.IsInternal {
			continue
		}
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
		case err != nil:
			return nil, fmt.Errorf("topics: metadata of %s: %w", *t.Topic, err)
		default:
			out[*t.Topic] = len(t.Partitions)
		}
	}
	return out, nil
}

// awaitMetadata is partitions of topics, asked again for a while (up to
// metadataSettle) until done says the metadata shows what it should. An
// Apache Kafka broker learns of a topic created or deleted a moment after
// the controller answered the request.
func (a *Admin) awaitMetadata(ctx context.Context, topics []string, done func(found map[string]int) bool) (map[string]int, error) {
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
	// NoDLQ skips the dead-letter topics (<topic>.dlq, one partition,
	// the same retention), which the sink needs.
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
	var configs map[string]*string
	if spec.Retention != 0 {
		configs = map[string]*string{"retention.ms": kadm.StringPtr(retentionMillis(spec.Retention))}
	}
	var changes []Change
	var errs []error
	var alter, raced []string
	have := func(name string, partitions, asked int32) {
		action := "unchanged"
		switch {
		case partitions < asked:
			action = fmt.Sprintf("has %d partitions, %d asked: not added (add them with AddPartitions; keys move)", partitions, asked)
		case partitions > asked:
			action = fmt.Sprintf("has %d partitions, %d asked: kept (partitions cannot be removed)", partitions, asked)
		}
		changes = append(changes, Change{name, action})
		if spec.Retention != 0 {
			alter = append(alter, name)
		}
	}
	asked := map[string]int32{}
	for _, w := range wants {
		asked[w.name] = w.partitions
		if n, ok := existing[w.name]; ok {
			have(w.name, int32(n), w.partitions)
			continue
		}
		resp, err := a.adm.CreateTopic(ctx, w.partitions, -1, configs, w.name)
		if err == nil {
			err = resp.Err
		}
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
			raced = append(raced, w.name)
		case err != nil:
			errs = append(errs, fmt.Errorf("create %s: %w", w.name, err))
		default:
			changes = append(changes, Change{w.name, fmt.Sprintf("created (%d partitions)", w.partitions)})
		}
	}
	// A topic that exists but was not in the metadata: created by someone
	// else meanwhile, or just created and not yet in the answering
	// broker's metadata (Apache Kafka's brokers learn of a topic a moment
	// after its CreateTopics returns). It is an existing topic.
	if len(raced) > 0 {
		found, err := a.awaitMetadata(ctx, raced, func(found map[string]int) bool { return len(found) == len(raced) })
		if err != nil {
			errs = append(errs, err)
		}
		for _, name := range raced {
			if n, ok := found[name]; ok {
				have(name, int32(n), asked[name])
			} else {
				changes = append(changes, Change{name, "exists (created concurrently; not yet in the metadata)"})
			}
		}
	}
	if len(alter) > 0 {
		changed, err := a.setRetention(ctx, alter, spec.Retention)
		if err != nil {
			errs = append(errs, err)
		}
		for i := range changes {
			if changed[changes[i].Topic] {
				if changes[i].Action == "unchanged" {
					changes[i].Action = "retention changed"
				} else {
					changes[i].Action += "; retention changed"
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
	_, err := a.setRetention(ctx, topics, d)
	return err
}

// setRetention sets retention.ms where it differs and reports which topics
// changed.
func (a *Admin) setRetention(ctx context.Context, topics []string, d time.Duration) (map[string]bool, error) {
	want := retentionMillis(d)
	current, err := a.retentions(ctx, topics)
	if err != nil {
		return nil, err
	}
	var todo []string
	for _, t := range topics {
		if current[t] != want {
			todo = append(todo, t)
		}
	}
	changed := map[string]bool{}
	if len(todo) == 0 {
		return changed, nil
	}
	resps, err := a.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "retention.ms", Value: &want}}, todo...)
	if err != nil {
		return nil, fmt.Errorf("topics: set retention.ms=%s: %w", want, err)
	}
	var errs []error
	for _, r := range resps {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("set retention.ms of %s: %w", r.Name, r.Err))
			continue
		}
		changed[r.Name] = true
	}
	return changed, errors.Join(errs...)
}

// retentions returns retention.ms of each topic as the cluster reports it.
func (a *Admin) retentions(ctx context.Context, topics []string) (map[string]string, error) {
	rcs, err := a.adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("topics: describe configs: %w", err)
	}
	ret := map[string]string{}
	for _, rc := range rcs {
		if rc.Err != nil {
			return nil, fmt.Errorf("topics: describe configs of %s: %w", rc.Name, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" && c.Value != nil {
				ret[rc.Name] = *c.Value
			}
		}
	}
	return ret, nil
}

// TopicInfo is one topic as List reports it.
type TopicInfo struct {
	Name       Name
	Partitions int
	// Retention is retention.ms as the cluster reports it ("-1":
	// unlimited).
	Retention string
	// Records is the records the topic holds now: the sum over its
	// partitions of end minus start offset (Kafka's clients have no
	// portable way to ask for bytes).
	Records int64
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
	for name, partitions := range all {
		n, err := Parse(name)
		if err != nil || n.Prefix != prefix || (factory != "" && n.Factory != factory) {
			continue
		}
		infos = append(infos, TopicInfo{Name: n, Partitions: partitions})
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name.String() < infos[j].Name.String() })
	return infos, nil
}

// List returns factorywire's topics (those that parse with this package's
// grammar) of factory under prefix, or of every factory when factory is
// empty, sorted by name, with partitions, retention, records and the lag of
// every consumer group that reads them.
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
	ret, err := a.retentions(ctx, names)
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
		t.Retention = ret[t.Name.String()]
	}
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok {
			byName[o.Topic].Records += o.Offset - s.Offset
		}
	})
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
		if _, err := a.awaitMetadata(ctx, deleted, func(found map[string]int) bool { return len(found) == 0 }); err != nil {
			errs = append(errs, err)
		}
	}
	return names, errors.Join(errs...) // sorted, as Topics returns them
}
