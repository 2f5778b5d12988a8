package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/factorywire/factorywire/internal/peers"
)

// Install is where java and Apache Kafka's jars are.
type Install struct {
	Java string // the java program
	Libs string // the folder of the jars: the classpath is Libs/*
}

// FindInstall locates java and Apache Kafka's jars where peers.KafkaLibs
// looks ($FACTORYWIRE_KAFKA_LIBS, or .peers/kafka/libs at the root of the
// module holding the working directory), for a program that is not a test:
// where KafkaLibs skips, it returns an error naming what to install or the
// command that fetches the jars.
func FindInstall() (Install, error) {
	libs, java, err := peers.FindKafka()
	if err != nil {
		return Install{}, fmt.Errorf("kafkatest: %w", err)
	}
	return Install{Java: java, Libs: libs}, nil
}

// Version is the version of the Kafka broker jar in Libs ("4.1.1"), or ""
// when there is none.
func (in Install) Version() string {
	matches, _ := filepath.Glob(filepath.Join(in.Libs, "kafka_2.13-*.jar"))
	if len(matches) == 0 {
		return ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(filepath.Base(matches[0]), "kafka_2.13-"), ".jar")
}

// Run formats and starts a cluster as Start does, for a program that is
// not a test (a benchmark): with inst's java and jars, the nodes' folders
// under dir (which must exist), and errors returned. It returns once every
// node is listed as a broker; ctx or three minutes end the wait. Close
// stops the cluster. Kill, Stop and Restart report through testing.TB and
// so are only for a cluster from Start.
func Run(ctx context.Context, inst Install, dir string, opts Options) (*Cluster, error) {
	c, err := launchCluster(ctx, inst, dir, opts)
	if err != nil {
		if c != nil {
			c.close(false)
		}
		return nil, err
	}
	return c, nil
}

// Pid is the process id of node id's java process (0 before it first
// started): the process a benchmark reads memory and CPU time of in /proc.
func (c *Cluster) Pid(id int32) int {
	n := c.node(id)
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// LogDir is node id's log.dirs folder, which holds its partitions'
// segments and indexes, unless Options.Props sets log.dirs.
func (c *Cluster) LogDir(id int32) string { return c.node(id).logDir() }

// Close kills every node of a cluster from Run (SIGKILL, as a test's
// cleanup does: the data is thrown away) and waits for them to exit. It
// returns an error for each node that had exited before Close, with its
// exit status and the tail of its log: a node that died while in use.
// Close is idempotent; a second call returns nil.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	var errs []error
	for _, n := range c.nodes {
		if n.cmd != nil && !c.Running(n.id) {
			errs = append(errs, fmt.Errorf("kafkatest: node %d exited while in use (%v)\n%s", n.id, n.exitError, c.logTail(n, 20)))
		}
	}
	c.close(false)
	return errors.Join(errs...)
}
