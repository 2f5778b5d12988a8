package broker

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// The catalog is the broker's metadata: its cluster id and every topic's
// id, partition count and config overrides, stored as one JSON file
// (catalogFile) that is replaced atomically on every change.
const (
	catalogFile    = "topics.json"
	catalogVersion = 1
	deletedSuffix  = "-delete"
	// maxPartitions bounds one topic's partition count; a request for more
	// gets INVALID_PARTITIONS rather than an attempt to open that many logs.
	maxPartitions = 10000
)

type catalog struct {
	Version   int         `json:"version"`
	ClusterID string      `json:"cluster_id"`
	Topics    []topicMeta `json:"topics"`
}

type topicMeta struct {
	Name       string            `json:"name"`
	ID         topicID           `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

// topicID is a Kafka topic id (a UUID), written as 32 hex digits.
type topicID [16]byte

func newTopicID() topicID {
	var id topicID
	if _, err := rand.Read(id[:]); err != nil {
		panic(fmt.Sprintf("broker: crypto/rand failed: %v", err))
	}
	return id
}

func (id topicID) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(id[:])), nil }

func (id *topicID) UnmarshalText(b []byte) error {
	if n, err := hex.Decode(id[:], b); err != nil || n != len(id) {
		return fmt.Errorf("topic id %q is not 32 hex digits", b)
	}
	return nil
}

// loadCatalog reads dir's catalog, or returns a new one with a fresh cluster
// id when there is none.
func loadCatalog(dir string) (catalog, error) {
	path := filepath.Join(dir, catalogFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		id := newTopicID()
		return catalog{Version: catalogVersion, ClusterID: "fw-" + hex.EncodeToString(id[:8])}, nil
	}
	if err != nil {
		return catalog{}, fmt.Errorf("read topic catalog: %w", err)
	}
	var c catalog
	if err := json.Unmarshal(raw, &c); err != nil {
		return catalog{}, fmt.Errorf("topic catalog %s is not valid JSON (%v); restore it from a backup or move the data dir aside", path, err)
	}
	if c.Version != catalogVersion {
		return catalog{}, fmt.Errorf("topic catalog %s has version %d; this broker reads version %d", path, c.Version, catalogVersion)
	}
	for _, t := range c.Topics {
		if err := validateTopicName(t.Name); err != nil {
			return catalog{}, fmt.Errorf("topic catalog %s: %w", path, err)
		}
		if t.Partitions < 1 || t.Partitions > maxPartitions {
			return catalog{}, fmt.Errorf("topic catalog %s: topic %q has %d partitions", path, t.Name, t.Partitions)
		}
	}
	return c, nil
}

// save replaces dir's catalog atomically: write a temporary file, fsync it,
// rename it over the old one, fsync the directory. A crash leaves either the
// old or the new catalog, never a mix.
func (c catalog) save(dir string) error {
	sort.Slice(c.Topics, func(i, j int) bool { return c.Topics[i].Name < c.Topics[j].Name })
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(dir, catalogFile, append(raw, '\n'))
}

func writeFileAtomic(dir, name string, data []byte) error {
	return writeFileAtomicMode(dir, name, data, 0o644)
}

// writeFileAtomicMode replaces dir/name with data durably: a synced
// temporary file with permissions perm, renamed over it, then the
// directory synced.
func writeFileAtomicMode(dir, name string, data []byte, perm os.FileMode) error {
	tmp := filepath.Join(dir, name+".tmp")
	if err := writeSynced(tmp, data, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// writeSynced creates (or truncates) path with permissions perm, writes
// data and fsyncs it.
func writeSynced(path string, data []byte, perm os.FileMode) error {
	os.Remove(path) // a leftover temporary file keeps its permissions otherwise
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// partitionDir is where a partition's log lives, named as Kafka names it.
func partitionDir(dataDir, topic string, partition int32) string {
	return filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, partition))
}

// removeDeleted removes partition directories that a topic deletion renamed
// but did not finish removing before the broker stopped.
func removeDeleted(dataDir string) error {
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasSuffix(e.Name(), deletedSuffix) {
			if err := os.RemoveAll(filepath.Join(dataDir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateTopicName applies Kafka's rules for topic names: 1 to 249 of
// [a-zA-Z0-9._-], and not "." or "..". (factorywire's own naming grammar in
// topics/ is stricter; the broker accepts anything Kafka accepts.)
func validateTopicName(name string) error {
	switch {
	case name == "":
		return errors.New("topic name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is not allowed", name)
	case len(name) > 249:
		return fmt.Errorf("topic name of %d characters is longer than 249", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q has character %q at %d; allowed are a-z, A-Z, 0-9, '.', '_' and '-'", name, c, i)
		}
	}
	return nil
}
