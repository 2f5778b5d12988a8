package broker

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
)

// This file holds the catalog changes behind CreateTopics, DeleteTopics,
// CreatePartitions and IncrementalAlterConfigs. Each persists the catalog
// before it answers, so an acknowledged change survives a crash.

func (b *Broker) topic(name string) *topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.topics[name]
}

func (b *Broker) topicByID(id [16]byte) *topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, t := range b.topics {
		if t.meta.ID == id {
			return t
		}
	}
	return nil
}

// partition returns the named partition, or nil.
func (b *Broker) partition(name string, p int32) *partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t := b.topics[name]
	if t == nil || p < 0 || int(p) >= len(t.partitions) {
		return nil
	}
	return t.partitions[p]
}

func (b *Broker) sortedTopics() []*topic {
	b.mu.RLock()
	ts := make([]*topic, 0, len(b.topics))
	for _, t := range b.topics {
		ts = append(ts, t)
	}
	b.mu.RUnlock()
	sort.Slice(ts, func(i, j int) bool { return ts[i].meta.Name < ts[j].meta.Name })
	return ts
}

// saveCatalogLocked rebuilds the catalog from b.topics and persists it.
// Callers hold b.mu for writing.
func (b *Broker) saveCatalogLocked() error {
	cat := b.catalog
	cat.Topics = cat.Topics[:0:0]
	for _, t := range b.topics {
		cat.Topics = append(cat.Topics, t.meta)
	}
	if err := cat.save(b.cfg.DataDir); err != nil {
		return fmt.Errorf("persist topic catalog: %w", err)
	}
	b.catalog = cat
	return nil
}

// createTopic validates and creates a topic. It returns the topic (nil on
// error or validateOnly), a Kafka error code and a message for the client.
func (b *Broker) createTopic(name string, partitions int32, configs map[string]string, validateOnly bool) (*topic, int16, string) {
	if err := validateTopicName(name); err != nil {
		return nil, kerr.InvalidTopicException.Code, err.Error()
	}
	if partitions == -1 {
		partitions = b.cfg.DefaultPartitions
	}
	if partitions < 1 || partitions > maxPartitions {
		return nil, kerr.InvalidPartitions.Code, fmt.Sprintf("number of partitions %d must be within [1, %d]", partitions, maxPartitions)
	}
	for _, k := range sortedKeys(configs) {
		if err := validateTopicConfig(k, configs[k]); err != nil {
			return nil, kerr.InvalidConfig.Code, err.Error()
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.topics[name]; ok {
		return nil, kerr.TopicAlreadyExists.Code, fmt.Sprintf("topic %q already exists", name)
	}
	if other := b.collidingTopicLocked(name); other != "" {
		return nil, kerr.InvalidTopicException.Code, fmt.Sprintf("topic %q collides with existing topic %q: names that differ only in '.' and '_' are refused, as Kafka refuses them (its metric names replace '.' with '_')", name, other)
	}
	if code, msg := b.checkPartitionLimitLocked(name, partitions); code != 0 {
		return nil, code, msg
	}
	if validateOnly {
		return nil, 0, ""
	}
	meta := topicMeta{Name: name, ID: newTopicID(), Partitions: partitions, Configs: configs}
	t := &topic{meta: meta}
	for p := int32(0); p < partitions; p++ {
		part, err := b.openPartition(meta, p)
		if err != nil {
			for _, q := range t.partitions {
				q.log.Delete()
			}
			b.log.Error("create topic failed", "topic", name, "err", err)
			return nil, kerr.KafkaStorageError.Code, err.Error()
		}
		t.partitions = append(t.partitions, part)
	}
	b.topics[name] = t
	if err := b.saveCatalogLocked(); err != nil {
		delete(b.topics, name)
		for _, q := range t.partitions {
			q.log.Delete()
		}
		b.log.Error("create topic failed", "topic", name, "err", err)
		return nil, kerr.KafkaStorageError.Code, err.Error()
	}
	b.log.Info("topic created", "topic", name, "partitions", partitions, "configs", configs)
	return t, 0, ""
}

// collidingTopicLocked returns an existing topic whose name equals name
// once every '.' is read as '_' (Kafka's Topic.hasCollision), or "".
// Callers hold b.mu.
func (b *Broker) collidingTopicLocked(name string) string {
	if !strings.ContainsAny(name, "._") {
		return ""
	}
	key := strings.ReplaceAll(name, ".", "_")
	for other := range b.topics {
		if other != name && strings.ReplaceAll(other, ".", "_") == key {
			return other
		}
	}
	return ""
}

// deleteTopic removes a topic from the catalog, then its partition logs.
// A crash between the two leaves directories that the next start removes.
func (b *Broker) deleteTopic(name string) (int16, string) {
	b.mu.Lock()
	t, ok := b.topics[name]
	if !ok {
		b.mu.Unlock()
		return kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("topic %q does not exist", name)
	}
	delete(b.topics, name)
	if err := b.saveCatalogLocked(); err != nil {
		b.topics[name] = t
		b.mu.Unlock()
		return kerr.KafkaStorageError.Code, err.Error()
	}
	b.mu.Unlock()
	for _, p := range t.partitions {
		dir := partitionDir(b.cfg.DataDir, p.topic, p.index)
		if p.log != nil {
			p.log.Close()
		}
		// Rename first so a crash mid-removal leaves a directory the
		// next start recognises as deleted.
		gone := fmt.Sprintf("%s.%x%s", dir, t.meta.ID[:4], deletedSuffix)
		if err := os.Rename(dir, gone); err != nil {
			b.log.Error("delete topic: rename partition dir", "dir", dir, "err", err)
			continue
		}
		if err := os.RemoveAll(gone); err != nil {
			b.log.Error("delete topic: remove partition dir", "dir", gone, "err", err)
		}
	}
	b.data.broadcast() // wake fetches waiting on the deleted partitions
	b.metrics.traffic.dropTopic(name)
	b.log.Info("topic deleted", "topic", name)
	return 0, ""
}

// checkPartitionLimitLocked refuses adding more partitions to topic name
// than max_partitions leaves room for, with POLICY_VIOLATION (as Kafka's
// create-topic policies answer), and counts the refusal. Callers hold b.mu.
func (b *Broker) checkPartitionLimitLocked(name string, more int32) (int16, string) {
	have := 0
	for _, t := range b.topics {
		have += len(t.partitions)
	}
	if have+int(more) <= b.cfg.MaxPartitions {
		return 0, ""
	}
	msg := fmt.Sprintf("adding %d partitions for topic %q would make %d, above this broker's max_partitions %d (it has %d); delete unused topics or raise max_partitions",
		more, name, have+int(more), b.cfg.MaxPartitions, have)
	b.limits.hit(limitMaxPartitions, "partitions refused: the broker holds max_partitions", "topic", name, "partitions", have, "requested", more, "max_partitions", b.cfg.MaxPartitions)
	return kerr.PolicyViolation.Code, msg
}

// addPartitions grows a topic to count partitions.
func (b *Broker) addPartitions(name string, count int32, validateOnly bool) (int16, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[name]
	if !ok {
		return kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("topic %q does not exist", name)
	}
	have := int32(len(t.partitions))
	switch {
	case count <= have:
		return kerr.InvalidPartitions.Code, fmt.Sprintf("topic %q has %d partitions; the new count %d must be larger", name, have, count)
	case count > maxPartitions:
		return kerr.InvalidPartitions.Code, fmt.Sprintf("number of partitions %d is above the limit %d", count, maxPartitions)
	}
	if code, msg := b.checkPartitionLimitLocked(name, count-have); code != 0 {
		return code, msg
	}
	if validateOnly {
		return 0, ""
	}
	meta := t.meta
	meta.Partitions = count
	parts := append([]*partition(nil), t.partitions...)
	for p := have; p < count; p++ {
		part, err := b.openPartition(meta, p)
		if err != nil {
			for _, q := range parts[have:] {
				q.log.Delete()
			}
			return kerr.KafkaStorageError.Code, err.Error()
		}
		parts = append(parts, part)
	}
	old := t
	b.topics[name] = &topic{meta: meta, partitions: parts}
	if err := b.saveCatalogLocked(); err != nil {
		b.topics[name] = old
		for _, q := range parts[have:] {
			q.log.Delete()
		}
		return kerr.KafkaStorageError.Code, err.Error()
	}
	b.log.Info("partitions added", "topic", name, "from", have, "to", count)
	return 0, ""
}

// alterTopicConfigs replaces a topic's overrides with configs (already
// validated) and applies them to its logs.
func (b *Broker) alterTopicConfigs(name string, configs map[string]string) (int16, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[name]
	if !ok {
		return kerr.UnknownTopicOrPartition.Code, fmt.Sprintf("topic %q does not exist", name)
	}
	meta := t.meta
	meta.Configs = configs
	old := t
	b.topics[name] = &topic{meta: meta, partitions: t.partitions}
	if err := b.saveCatalogLocked(); err != nil {
		b.topics[name] = old
		return kerr.KafkaStorageError.Code, err.Error()
	}
	opts := b.cfg.Topics.logOptions(b.logOpts, configs)
	for _, p := range t.partitions {
		p.maxMessageBytes.Store(b.cfg.Topics.effectiveInt(configs, "max.message.bytes"))
		if p.log == nil {
			continue // offline: opened with the new configs after repair
		}
		if err := p.log.SetOptions(opts); err != nil {
			b.log.Error("apply topic config", "topic", name, "partition", p.index, "err", err)
		}
	}
	b.log.Info("topic configs altered", "topic", name, "configs", configs)
	return 0, ""
}
