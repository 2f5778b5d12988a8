package gateway

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/devices/modbus"
	"github.com/factorywire/factorywire/internal/configfile"
	"github.com/factorywire/factorywire/internal/kafkaclient"
	"github.com/factorywire/factorywire/storage/commitlog"
	"github.com/factorywire/factorywire/topics"
)

// Config is a gateway's configuration, decoded strictly from YAML
// (configs/gateway.yaml documents every key with an example).
type Config struct {
	// Factory names the plant this gateway serves: the first part of its
	// topics, <factory>.<class>. Required; lower-case [a-z0-9-].
	Factory string `yaml:"factory"`
	// TopicPrefix, if set, is put before every topic:
	// <prefix>.<factory>.<class>. Lower-case [a-z0-9-].
	TopicPrefix string `yaml:"topic_prefix"`
	// DataDir holds the spool (DataDir/spool). Required.
	DataDir string `yaml:"data_dir"`
	// ClassesDir holds the register-map files, one per device class
	// (*.yaml). A relative path is relative to the config file's
	// directory. Default "devices".
	ClassesDir string `yaml:"classes_dir"`
	// HTTPListen is the address of /metrics, /healthz and /readyz; empty
	// disables them. Default 127.0.0.1:9108.
	HTTPListen string `yaml:"http_listen"`
	// Tags are static tags every device's samples carry (Telegraf's
	// global_tags): key → value, as DeviceConfig.Tags. A device's own tag
	// of the same key wins.
	Tags map[string]string `yaml:"tags"`
	// Kafka is where samples are produced.
	Kafka KafkaConfig `yaml:"kafka"`
	// Spool bounds the local buffer.
	Spool SpoolConfig `yaml:"spool"`
	// Poller tunes the backoff of failing devices.
	Poller modbus.PollerConfig `yaml:"poller"`
	// Connections are the Modbus links: TCP endpoints (a device, or a
	// TCP-to-RTU gateway with several units behind it) and serial lines.
	Connections []modbus.ConnConfig `yaml:"connections"`
	// Devices are the devices polled.
	Devices []DeviceConfig `yaml:"devices"`
	// ReportByException turns on report by exception for every device of
	// a class, by class name: see ExceptionConfig. A device may override
	// it, or turn it on for itself alone (DeviceConfig.ReportByException).
	ReportByException map[string]ExceptionConfig `yaml:"report_by_exception"`
}

// KafkaConfig says where and how samples are produced.
type KafkaConfig struct {
	// Config is the connection: brokers (default [127.0.0.1:9092]), tls
	// and sasl, as every component spells them (see kafkaclient).
	kafkaclient.Config `yaml:",inline"`
	// Compression is zstd (default, at its fastest level), lz4, snappy,
	// gzip or none.
	Compression string `yaml:"compression"`
	// Linger is how long the producer waits to fill a batch. Default 10ms.
	Linger time.Duration `yaml:"linger"`
	// StallTimeout is how long samples may wait for the broker's
	// acknowledgement, or keep failing to be produced, before /readyz
	// reports the gateway not ready, naming the topic and the cause. The
	// producer itself keeps retrying, and the spool keeps every sample.
	// A leader moving to another broker takes a few seconds; a partition
	// with fewer in-sync replicas than its min.insync.replicas stalls
	// until they return. Default 15s.
	StallTimeout time.Duration `yaml:"stall_timeout"`
	// DeliveryTimeout bounds how long the producer keeps retrying the
	// samples of one forwarding attempt, counted from the attempt's start
	// (not from the sample's time, as franz-go's RecordDeliveryTimeout
	// would: a backlog older than the timeout could never be retried).
	// Past it the attempt fails as soon as the producer can give its
	// records up without risking duplicates or gaps (idempotence); the
	// failure is logged and counted in produce_errors_total, the samples
	// stay in the spool, and the forwarder produces them again from its
	// checkpoint after a backoff, so a cause that goes away (replicas
	// back, a topic created) ends the failure without a restart.
	// Default 2m.
	DeliveryTimeout time.Duration `yaml:"delivery_timeout"`
}

// SpoolConfig bounds the spool.
type SpoolConfig struct {
	// MaxBytes is the most the spool holds while the broker cannot be
	// reached. Default 1 GiB; at least 1 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
	// WhenFull is drop_oldest (default) or pause_polling: see DropOldest
	// and PausePolling.
	WhenFull string `yaml:"when_full"`
	// Sync is when spooled samples are fsynced: "always" (default since
	// issue 16): each scan's, before the poller goes on, one fsync per
	// topic covering every scan appended together (group commit), and
	// the forwarder sends them as soon as it returns; "interval": every
	// SyncInterval, the poller going on as soon as a scan's samples are
	// written, the forwarder sending them after the next fsync (up to
	// SyncInterval later). A crashed or killed process loses nothing
	// written either way (the data is in the page cache); a power cut or
	// kernel crash loses, with interval, at most the last SyncInterval of
	// polls, which were never forwarded. The forwarder sends only samples
	// that are fsynced.
	Sync string `yaml:"sync"`
	// SyncInterval is the fsync period of Sync "interval". Default 200ms.
	SyncInterval time.Duration `yaml:"sync_interval"`
	// FS is the file system of the spool's logs, for tests that inject
	// faults (a full disk); nil is the operating system's. Not in YAML.
	FS commitlog.FS `yaml:"-"`
}

// Spool sync policies (SpoolConfig.Sync).
const (
	SyncAlways   = "always"
	SyncInterval = "interval"
)

// segmentBytes sizes spool segments so that dropping the oldest one frees
// about an eighth of MaxBytes, at most 64 MiB.
func (c SpoolConfig) segmentBytes() int64 {
	return min(64<<20, max(c.MaxBytes/8, 64<<10))
}

// DeviceConfig is one polled device.
type DeviceConfig struct {
	// ID identifies the device: the record key of its samples, unique in
	// the gateway. Required.
	ID string `yaml:"id"`
	// Class names its register map (the class key of a file in
	// ClassesDir). Required.
	Class string `yaml:"class"`
	// Connection names the entry of Connections it is reached through.
	// Required.
	Connection string `yaml:"connection"`
	// Unit is its Modbus unit id on that connection. Default 1.
	Unit *uint8 `yaml:"unit"`
	// MaxRegistersPerRead lowers the 125-register limit of one read for
	// devices that accept less. 0 keeps Modbus's limit.
	MaxRegistersPerRead int `yaml:"max_registers_per_read"`
	// Interval or Cron: when the device is polled (exactly one).
	modbus.Schedule `yaml:",inline"`
	// ReportByException, if set, turns on report by exception for this
	// device, over its class's entry in Config.ReportByException if any.
	ReportByException *ExceptionConfig `yaml:"report_by_exception"`
	// Tags are the device's static tags, key → value (line, location,
	// asset id), carried by each of its samples (schema version 2) and
	// stored in MongoDB under meta.tags. Keys: 1 to 64 of [a-z0-9_],
	// starting with a letter, as field names (they become MongoDB field
	// names); values: 1 to 256 bytes of UTF-8; at most 32 tags with
	// Config.Tags (devices.ValidateTag, devices.MaxTags).
	Tags map[string]string `yaml:"tags"`
}

// tags returns the tags of device d: c's, overridden by d's; nil when
// neither has any. The gateway builds it once per device and every sample
// of the device shares it.
func (c Config) tags(d DeviceConfig) map[string]string {
	if len(c.Tags)+len(d.Tags) == 0 {
		return nil
	}
	tags := make(map[string]string, len(c.Tags)+len(d.Tags))
	maps.Copy(tags, c.Tags)
	maps.Copy(tags, d.Tags)
	return tags
}

// validateTags returns the problems of tags, each named after field
// (tags, devices[3] (press-01).tags) and the key.
func validateTags(field string, tags map[string]string) []error {
	var errs []error
	for _, k := range sortedKeys(tags) {
		if err := devices.ValidateTag(k, tags[k]); err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %v", field, k, err))
		}
	}
	return errs
}

// DefaultConfig returns a Config with every default set.
func DefaultConfig() Config {
	return Config{
		ClassesDir: "devices",
		HTTPListen: "127.0.0.1:9108",
		Kafka:      KafkaConfig{Config: kafkaclient.Config{Brokers: []string{"127.0.0.1:9092"}}, Compression: "zstd", Linger: 10 * time.Millisecond, StallTimeout: 15 * time.Second, DeliveryTimeout: 2 * time.Minute},
		Spool:      SpoolConfig{MaxBytes: 1 << 30, WhenFull: DropOldest, Sync: SyncAlways, SyncInterval: 200 * time.Millisecond},
		Poller:     modbus.DefaultPollerConfig(),
	}
}

// LoadConfig reads the YAML file at path over DefaultConfig, expanding
// ${VAR} from the environment, and resolves ClassesDir and the kafka
// block's files (tls.ca_file, cert_file, key_file, sasl.password_file)
// against the file's directory. It does not validate.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if err := configfile.Load(path, &cfg); err != nil {
		return Config{}, err
	}
	if cfg.ClassesDir != "" && !filepath.IsAbs(cfg.ClassesDir) {
		cfg.ClassesDir = filepath.Join(filepath.Dir(path), cfg.ClassesDir)
	}
	cfg.Kafka.RelativeTo(filepath.Dir(path))
	return cfg, nil
}

// Topic is the topic of a device class's samples.
func (c Config) Topic(class string) string {
	return topics.Name{Prefix: c.TopicPrefix, Factory: c.Factory, Class: class}.String()
}

// Validate checks every field; its errors name the field and the value.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := topics.ValidateSegment("factory", c.Factory); err != nil {
		bad("factory: %v", err)
	}
	if c.TopicPrefix != "" {
		if err := topics.ValidateSegment("topic_prefix", c.TopicPrefix); err != nil {
			bad("topic_prefix: %v", err)
		}
	}
	if c.DataDir == "" {
		bad("data_dir: required (where the spool lives)")
	}
	if c.ClassesDir == "" {
		bad("classes_dir: required (the register-map files)")
	}
	if err := c.Kafka.Config.Validate(); err != nil {
		errs = append(errs, kafkaclient.Rekey(err, func(k string) string { return "kafka." + k }))
	}
	if _, ok := codecs[c.Kafka.Compression]; !ok {
		bad("kafka.compression %q: want zstd, lz4, snappy, gzip or none", c.Kafka.Compression)
	}
	if c.Kafka.StallTimeout <= 0 {
		bad("kafka.stall_timeout %s: must be positive", c.Kafka.StallTimeout)
	}
	if c.Kafka.DeliveryTimeout <= 0 {
		bad("kafka.delivery_timeout %s: must be positive", c.Kafka.DeliveryTimeout)
	}
	if c.Kafka.Linger < 0 {
		bad("kafka.linger %s: must not be negative", c.Kafka.Linger)
	}
	if c.Spool.MaxBytes < 1<<20 {
		bad("spool.max_bytes %d: at least 1048576 (1 MiB)", c.Spool.MaxBytes)
	}
	if c.Spool.WhenFull != DropOldest && c.Spool.WhenFull != PausePolling {
		bad("spool.when_full %q: want %s or %s", c.Spool.WhenFull, DropOldest, PausePolling)
	}
	switch {
	case c.Spool.Sync != SyncAlways && c.Spool.Sync != SyncInterval:
		bad("spool.sync %q: want %s or %s", c.Spool.Sync, SyncInterval, SyncAlways)
	case c.Spool.Sync == SyncInterval && (c.Spool.SyncInterval < time.Millisecond || c.Spool.SyncInterval > time.Minute):
		bad("spool.sync_interval %s: want 1ms to 1m", c.Spool.SyncInterval)
	}
	if err := c.Poller.Validate(); err != nil {
		bad("poller: %v", err)
	}
	errs = append(errs, validateTags("tags", c.Tags)...)
	if len(c.Tags) > devices.MaxTags {
		bad("tags: %d tags, at most %d", len(c.Tags), devices.MaxTags)
	}
	conns := map[string]bool{}
	for i, cc := range c.Connections {
		cc = cc.WithDefaults()
		if err := cc.Validate(); err != nil {
			bad("connections[%d]: %v", i, err)
		}
		if conns[cc.Name] {
			bad("connections[%d]: name %q used twice", i, cc.Name)
		}
		conns[cc.Name] = true
	}
	ids := map[string]bool{}
	if len(c.Devices) == 0 {
		bad("devices: at least one device required")
	}
	for i, d := range c.Devices {
		if err := devices.ValidateDevice(d.ID); err != nil {
			bad("devices[%d].id %q: %v", i, d.ID, err)
		}
		if ids[d.ID] {
			bad("devices[%d].id %q: used twice", i, d.ID)
		}
		ids[d.ID] = true
		if d.Class == "" {
			bad("devices[%d] (%s).class: required", i, d.ID)
		}
		if !conns[d.Connection] {
			bad("devices[%d] (%s).connection %q: no connection has that name", i, d.ID, d.Connection)
		}
		if d.Unit != nil && *d.Unit > 247 {
			bad("devices[%d] (%s).unit %d: want 0 to 247", i, d.ID, *d.Unit)
		}
		if d.MaxRegistersPerRead < 0 || d.MaxRegistersPerRead > devices.MaxReadRegisters {
			bad("devices[%d] (%s).max_registers_per_read %d: want 1 to 125, or 0 for 125", i, d.ID, d.MaxRegistersPerRead)
		}
		if err := d.Schedule.Validate(); err != nil {
			bad("devices[%d] (%s): %v", i, d.ID, err)
		}
		if d.ReportByException != nil {
			errs = append(errs, d.ReportByException.validate(fmt.Sprintf("devices[%d] (%s).report_by_exception", i, d.ID), nil)...)
		}
		errs = append(errs, validateTags(fmt.Sprintf("devices[%d] (%s).tags", i, d.ID), d.Tags)...)
		if n := len(c.tags(d)); n > devices.MaxTags && len(c.Tags) <= devices.MaxTags {
			if len(d.Tags) < n {
				bad("devices[%d] (%s).tags: %d tags with the top-level tags, at most %d", i, d.ID, n, devices.MaxTags)
			} else {
				bad("devices[%d] (%s).tags: %d tags, at most %d", i, d.ID, n, devices.MaxTags)
			}
		}
	}
	for _, class := range sortedKeys(c.ReportByException) {
		errs = append(errs, c.ReportByException[class].validate("report_by_exception."+class, nil)...)
	}
	return errors.Join(errs...)
}

// ProbeDevice returns device id as the gateway polls it, for `gateway
// probe`: its connection's config (defaults applied), and a modbus.Device
// with its class, unit, read plan (max_registers_per_read) and schedule,
// whose Conn the caller opens from that config. It validates c and loads
// the register maps, but reads no kafka file and opens no spool. An
// unknown id is an error listing the ids c has.
func (c Config) ProbeDevice(id string) (modbus.Device, modbus.ConnConfig, error) {
	if err := c.Validate(); err != nil {
		return modbus.Device{}, modbus.ConnConfig{}, err
	}
	i := slices.IndexFunc(c.Devices, func(d DeviceConfig) bool { return d.ID == id })
	if i < 0 {
		ids := make([]string, len(c.Devices))
		for j, d := range c.Devices {
			ids[j] = d.ID
		}
		slices.Sort(ids)
		return modbus.Device{}, modbus.ConnConfig{}, fmt.Errorf("device %q: no device has that id (have %s)", id, strings.Join(ids, ", "))
	}
	d := c.Devices[i]
	classes, err := devices.LoadDir(c.ClassesDir)
	if err != nil {
		return modbus.Device{}, modbus.ConnConfig{}, err
	}
	class := classes[d.Class]
	if class == nil {
		return modbus.Device{}, modbus.ConnConfig{}, fmt.Errorf("devices[%d] (%s).class %q: no register map in %s has that class (have %s)",
			i, d.ID, d.Class, c.ClassesDir, strings.Join(sortedKeys(classes), ", "))
	}
	dev := modbus.Device{ID: d.ID, Factory: c.Factory, Class: class, Tags: c.tags(d), Unit: 1, Schedule: d.Schedule}
	if d.Unit != nil {
		dev.Unit = *d.Unit
	}
	if d.MaxRegistersPerRead > 0 {
		if dev.Plan, err = class.Compile(devices.PlanOptions{MaxRegisters: d.MaxRegistersPerRead}); err != nil {
			return modbus.Device{}, modbus.ConnConfig{}, fmt.Errorf("devices[%d] (%s): %w", i, d.ID, err)
		}
	}
	for _, cc := range c.Connections {
		if cc = cc.WithDefaults(); cc.Name == d.Connection {
			return dev, cc, nil
		}
	}
	// Validate checked that the connection exists.
	return modbus.Device{}, modbus.ConnConfig{}, fmt.Errorf("devices[%d] (%s).connection %q: no connection has that name", i, d.ID, d.Connection)
}
