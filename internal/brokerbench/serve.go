package brokerbench

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/factorywire/factorywire/broker"
	"github.com/factorywire/factorywire/internal/benchkit"
)

// ChildEnv marks a child process: with it set to 1 the binary serves one
// broker (ServeChild) instead of running the benchmark. Run starts its
// brokers by re-executing the running binary (os.Executable), so every
// binary that calls Run must check ChildEnv first: cmd/brokerbench's main,
// and this package's test binary (see TestMain). An environment variable
// rather than a subcommand, so a test binary can play the child too.
const ChildEnv = "BROKERBENCH_CHILD"

// addrPrefix starts the line on which a child announces its address.
const addrPrefix = benchkit.AddrPrefix

// ServeChild is the child process: `serve -kind
// ours|ours-sasl-ssl|kfake|blackhole -dir D [-secure S] [-cpuprofile F]`,
// S being the directory of the secure kind's certificate, key and password
// (secureFiles). It starts one broker on 127.0.0.1 with an ephemeral
// port, prints "ADDR host:port" on stdout, and serves until SIGTERM, SIGINT
// or the end of stdin (the parent closing its end or dying), then closes the
// broker and ends the profile. It returns the exit status.
func ServeChild(args []string) int {
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("brokerbench serve", flag.ContinueOnError)
	kind := fs.String("kind", kindOurs, "ours, ours-sasl-ssl, kfake or blackhole")
	dir := fs.String("dir", "", "data directory")
	secureDir := fs.String("secure", "", "directory of ours-sasl-ssl's certificate, key and password")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the broker's life to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "brokerbench serve: -dir is required")
		return 2
	}
	if *kind == kindOursSASLSSL && *secureDir == "" {
		fmt.Fprintln(os.Stderr, "brokerbench serve: -secure is required for -kind", kindOursSASLSSL)
		return 2
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "brokerbench serve:", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "brokerbench serve:", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	addr, closeBroker, err := startBroker(*kind, *dir, secureFilesIn(*secureDir))
	if err != nil {
		fmt.Fprintf(os.Stderr, "brokerbench serve: start %s broker: %v\n", *kind, err)
		return 1
	}
	fmt.Printf("%s%s\n", addrPrefix, addr)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-sig:
	case <-eof:
	}
	if err := closeBroker(); err != nil {
		fmt.Fprintf(os.Stderr, "brokerbench serve: close %s broker: %v\n", *kind, err)
		return 1
	}
	return 0
}

// startBroker starts a broker of the given kind on 127.0.0.1 with an
// ephemeral port and data in dir; ours (plain or secure) and kfake fsync
// every produce before its ack, blackhole stores nothing. The secure kind
// reads its certificate, key and user's password from sec.
func startBroker(kind, dir string, sec secureFiles) (addr string, closeFn func() error, err error) {
	switch kind {
	case kindOurs, kindOursSASLSSL:
		cfg := broker.DefaultConfig() // flush "always": ack after fsync
		cfg.Listen = "127.0.0.1:0"
		cfg.DataDir = dir
		if kind == kindOursSASLSSL {
			cfg = secureConfig(dir, sec)
		}
		b, err := broker.New(cfg)
		if err != nil {
			return "", nil, err
		}
		if kind == kindOursSASLSSL {
			if err := grantBench(b.Addr().String(), sec); err != nil {
				b.Close()
				return "", nil, fmt.Errorf("grant the %s user its ACLs: %w", benchUser, err)
			}
		}
		return b.Addr().String(), b.Close, nil
	case kindKfake:
		c, err := kfake.NewCluster(
			kfake.NumBrokers(1),
			kfake.DataDir(dir),
			kfake.SyncWrites(),
			kfake.ListenFn(func(network, _ string) (net.Listener, error) {
				return net.Listen(network, "127.0.0.1:0")
			}),
		)
		if err != nil {
			return "", nil, err
		}
		addrs := c.ListenAddrs()
		if len(addrs) != 1 {
			c.Close()
			return "", nil, fmt.Errorf("kfake listens on %d addresses, want 1", len(addrs))
		}
		return addrs[0], func() error { c.Close(); return nil }, nil
	case kindBlackhole:
		c, err := kfake.NewCluster(
			kfake.NumBrokers(1),
			kfake.BlackholeProduce(),
			kfake.ListenFn(func(network, _ string) (net.Listener, error) {
				return net.Listen(network, "127.0.0.1:0")
			}),
		)
		if err != nil {
			return "", nil, err
		}
		return c.ListenAddrs()[0], func() error { c.Close(); return nil }, nil
	}
	return "", nil, fmt.Errorf("unknown broker kind %q", kind)
}
