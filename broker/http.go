package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Bounds of the HTTP endpoints (Config.HTTPListen): a scraper or prober
// that sends its request slowly, or stops reading, holds a connection no
// longer than these.
const (
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 10 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 2 * time.Minute
	httpMaxHeaderBytes    = 16 << 10
	// httpScrapesInFlight bounds concurrent /metrics requests; more are
	// answered 503 at once.
	httpScrapesInFlight = 4
	// httpStopTimeout bounds how long Shutdown waits for requests in
	// progress on the HTTP endpoints.
	httpStopTimeout = 5 * time.Second
)

// listenHTTP opens Config.HTTPListen, if set. serveHTTP serves it once the
// broker runs.
func (b *Broker) listenHTTP() error {
	if b.cfg.HTTPListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", b.cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("http_listen %s: %w", b.cfg.HTTPListen, err)
	}
	b.httpLn = ln
	return nil
}

// serveHTTP serves /metrics, /healthz and /readyz on the listener
// listenHTTP opened, until stopHTTP.
func (b *Broker) serveHTTP() {
	if b.httpLn == nil {
		return
	}
	b.http = &http.Server{
		Handler:           b.httpHandler(),
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
	}
	b.httpDone = make(chan struct{})
	go func() {
		defer close(b.httpDone)
		if err := b.http.Serve(b.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("http endpoints stopped", "addr", b.httpLn.Addr().String(), "err", err)
		}
	}()
	b.log.Info("http endpoints listening", "addr", b.httpLn.Addr().String(), "paths", "/metrics /healthz /readyz")
}

// stopHTTP stops the HTTP endpoints, letting requests in progress finish
// for up to httpStopTimeout (less if ctx ends first), and waits for the
// server's goroutine.
func (b *Broker) stopHTTP(ctx context.Context) {
	if b.http == nil {
		if b.httpLn != nil {
			b.httpLn.Close()
		}
		return
	}
	ctx, cancel := context.WithTimeout(ctx, httpStopTimeout)
	defer cancel()
	if err := b.http.Shutdown(ctx); err != nil {
		b.http.Close()
	}
	<-b.httpDone
}

// HTTPAddr returns the address of the HTTP endpoints, nil when
// Config.HTTPListen is empty.
func (b *Broker) HTTPAddr() net.Addr {
	if b.httpLn == nil {
		return nil
	}
	return b.httpLn.Addr()
}

// httpHandler serves:
//
//   - /metrics: the broker's metrics (Registry) and the Go runtime's and
//     the process's (go_*, process_*), in Prometheus's exposition format.
//   - /healthz: 200 "ok" while the process serves HTTP at all (liveness).
//   - /readyz: 200 once the data dir is open and the Kafka listener
//     accepts, which New guarantees before it returns; 503 from the start
//     of Shutdown. The body lists what is offline (partitions whose log
//     could not be opened, the consumer groups when the committed offsets'
//     log could not): they do not make the broker unready, because every
//     other partition serves and restarting does not repair them (see
//     docs/OPERATIONS.md).
func (b *Broker) httpHandler() http.Handler {
	runtime := prometheus.NewRegistry()
	runtime.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(prometheus.Gatherers{b.reg, runtime}, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: httpScrapesInFlight,
		Timeout:             httpWriteTimeout - time.Second,
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if b.ctx.Err() != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "shutting down")
			return
		}
		fmt.Fprintln(w, "ok")
		for _, line := range b.offlineReport() {
			fmt.Fprintln(w, line)
		}
	})
	return mux
}

// offlineReport lists, one line each, the consumer groups if they are
// offline and every offline partition, sorted by topic and partition.
func (b *Broker) offlineReport() []string {
	var lines []string
	if b.groupsOffline != nil {
		lines = append(lines, fmt.Sprintf("consumer groups offline (every partition serves; FindCoordinator answers COORDINATOR_NOT_AVAILABLE): %s; repair: broker repair --data-dir %s --topic %s --partition 0",
			oneLine(b.groupsOffline.Error()), b.cfg.DataDir, offsetsDir))
	}
	for _, t := range b.sortedTopics() {
		for _, p := range t.partitions {
			if p.offline != nil {
				lines = append(lines, fmt.Sprintf("partition %s-%d offline (the others serve): %s; repair: broker repair --data-dir %s --topic %s --partition %d",
					p.topic, p.index, oneLine(p.offline.Error()), b.cfg.DataDir, p.topic, p.index))
			}
		}
	}
	return lines
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
