package kafkatest

import (
	"os"
	"sync"
	"testing"
)

// shared is the single-node cluster the tests of one test binary share.
var shared struct {
	sync.Mutex
	main    bool // Main runs this binary's tests
	cluster *Cluster
	dir     string
	err     error
}

// Main runs m's tests, then stops the cluster Shared started, if any, and
// exits. A package whose tests call Shared calls it from TestMain.
func Main(m *testing.M) {
	shared.Lock()
	shared.main = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	if shared.cluster != nil {
		shared.cluster.close(false)
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	shared.Unlock()
	os.Exit(code)
}

// Shared returns the single-node cluster (default Options) that every test
// of this test binary shares, starting it on first use. Tests sharing it
// use topic and group names of their own. If it could not start, every
// caller fails with that error. Its nodes are not to be killed, stopped or
// restarted: a test that does so starts a cluster of its own.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.main {
		t.Fatal("kafkatest: Shared needs the package's TestMain to call kafkatest.Main(m)")
	}
	if shared.cluster == nil && shared.err == nil {
		dir, err := os.MkdirTemp("", "kafkatest-")
		if err != nil {
			t.Fatal(err)
		}
		shared.dir = dir
		c, err := start(t, dir, Options{})
		if err != nil && c != nil {
			c.close(true)
		}
		shared.cluster, shared.err = c, err
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.cluster
}
