package gateway

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/factorywire/factorywire/devices"
	"github.com/factorywire/factorywire/storage/commitlog"
)

// syncFS is the operating system's file system that keeps, per spool
// segment file (*.log), the bytes written and the bytes fsynced (what a
// file held when opened counts as fsynced), counts the fsyncs, and notes
// every read that returns bytes not yet fsynced.
type syncFS struct {
	commitlog.FS
	mu       sync.Mutex
	written  map[string]int64
	synced   map[string]int64
	syncs    int
	unsynced []string // reads of bytes not fsynced
}

func newSyncFS() *syncFS {
	return &syncFS{FS: commitlog.OSFS, written: map[string]int64{}, synced: map[string]int64{}}
}

func (f *syncFS) OpenFile(name string, flag int, perm os.FileMode) (commitlog.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return file, err
	}
	if fi, err := os.Stat(name); err == nil {
		f.mu.Lock()
		if _, ok := f.written[name]; !ok || flag&os.O_TRUNC != 0 {
			f.written[name], f.synced[name] = fi.Size(), fi.Size()
		}
		f.mu.Unlock()
	}
	return &syncFile{File: file, fs: f, name: name}, nil
}

// pending returns the files holding bytes not fsynced, with how many.
func (f *syncFS) pending() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int64{}
	for name, w := range f.written {
		if n := w - f.synced[name]; n != 0 {
			out[name] = n
		}
	}
	return out
}

func (f *syncFS) counts() (syncs int, unsynced []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs, append([]string(nil), f.unsynced...)
}

type syncFile struct {
	commitlog.File
	fs   *syncFS
	name string
}

func (s *syncFile) Write(b []byte) (int, error) {
	n, err := s.File.Write(b)
	s.fs.mu.Lock()
	s.fs.written[s.name] += int64(n)
	s.fs.mu.Unlock()
	return n, err
}

func (s *syncFile) Sync() error {
	s.fs.mu.Lock()
	w := s.fs.written[s.name] // what the fsync covers: written before it started
	s.fs.mu.Unlock()
	if err := s.File.Sync(); err != nil {
		return err
	}
	s.fs.mu.Lock()
	s.fs.synced[s.name] = max(s.fs.synced[s.name], w)
	s.fs.syncs++
	s.fs.mu.Unlock()
	return nil
}

func (s *syncFile) ReadAt(b []byte, off int64) (int, error) {
	n, err := s.File.ReadAt(b, off)
	s.fs.mu.Lock()
	if synced := s.fs.synced[s.name]; off+int64(n) > synced {
		s.fs.unsynced = append(s.fs.unsynced, fmt.Sprintf("%s: bytes %d to %d read, %d fsynced", s.name, off, off+int64(n), synced))
	}
	s.fs.mu.Unlock()
	return n, err
}

// TestSpoolSyncsEachScanByDefault: with the default spool.sync
// ("always"), an append (a connection's scan, here of two topics)
// returns only once its samples are fsynced, with one fsync per topic,
// and wakes the forwarder, which can send them all: no timer is waited
// for (sync_interval is an hour here, and unused).
func TestSpoolSyncsEachScanByDefault(t *testing.T) {
	fsys := newSyncFS()
	cfg := DefaultConfig().Spool
	cfg.FS, cfg.SyncInterval = fsys, time.Hour
	if cfg.Sync != SyncAlways {
		t.Fatalf("default spool.sync %q, want %q", cfg.Sync, SyncAlways)
	}
	s, err := OpenSpool(t.TempDir(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	topicOf := func(smp *devices.Sample) string { return "plant-t." + smp.Class }
	const rounds = 5
	for round := range uint64(rounds) {
		var scan []devices.Sample
		for d := range 4 {
			smp := testSample(fmt.Sprintf("dev-%d", d), round)
			if d%2 == 1 {
				smp.Class = "power-meter"
			}
			scan = append(scan, smp)
		}
		before, _ := fsys.counts()
		woken := s.appended()
		if err := s.AppendEach(context.Background(), scan, topicOf); err != nil {
			t.Fatal(err)
		}
		if p := fsys.pending(); len(p) > 0 {
			t.Fatalf("round %d: the append returned with bytes not fsynced: %v", round, p)
		}
		if after, _ := fsys.counts(); after-before != 2 {
			t.Errorf("round %d: %d fsyncs, want 2 (one per topic)", round, after-before)
		}
		select {
		case <-woken:
		default:
			t.Fatalf("round %d: the forwarder was not woken", round)
		}
		for _, topic := range []string{"plant-t.press", "plant-t.power-meter"} {
			tp, err := s.topic(topic)
			if err != nil {
				t.Fatal(err)
			}
			if d, e := tp.log().DurableOffset(), tp.log().EndOffset(); d != e || e != int64(2*(round+1)) {
				t.Fatalf("round %d, %s: durable offset %d, end %d; want both %d", round, topic, d, e, 2*(round+1))
			}
		}
	}
}

// TestGatewayForwardsOnlyFsynced: a gateway with the default spool.sync
// forwards every sample it polls, as soon as its scan is fsynced (no
// timer: sync_interval is an hour here, and unused), and never reads a
// spooled byte the disk has not fsynced: every sample the broker gets
// was durable in the spool first.
func TestGatewayForwardsOnlyFsynced(t *testing.T) {
	b := startBroker(t, t.TempDir(), "127.0.0.1:0")
	addr := b.Addr().String()
	plant := newTestPlant(t, addr, 100*time.Millisecond, 2)
	createTopics(t, addr, plant.topics)
	fsys := newSyncFS()
	plant.cfg.Spool.FS, plant.cfg.Spool.SyncInterval = fsys, time.Hour
	g, stop := runGateway(t, plant.cfg)
	defer stop()
	plant.delivered(t, addr, 80)
	stop()
	last, _ := polled(g)
	checkSeqs(t, plant.delivered(t, addr, 0), plant.devices, last, false)
	syncs, unsynced := fsys.counts()
	if len(unsynced) > 0 {
		t.Fatalf("%d reads of spooled bytes not fsynced, such as %s", len(unsynced), unsynced[0])
	}
	if syncs == 0 {
		t.Fatal("no fsync of the spool")
	}
	t.Logf("%d fsyncs of spool segments", syncs)
}
