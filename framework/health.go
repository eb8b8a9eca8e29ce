package framework

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/millrace/millrace/transports"
)

// server is the App's observability listener.
type server struct {
	srv  *http.Server
	done chan struct{}
	addr net.Addr
}

// serve opens observability.addr and serves /metrics, /healthz and /readyz
// on it until closeObservability.
func (a *App) serve() (*server, error) {
	l, err := net.Listen("tcp", a.cfg.Observability.Addr)
	if err != nil {
		return nil, fmt.Errorf("config key observability.addr: listen on %q: %w", a.cfg.Observability.Addr, err)
	}
	mux := http.NewServeMux()
	if a.metrics != nil {
		mux.Handle("/metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{}))
	} else {
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "metrics are off (observability.metrics: false)", http.StatusNotFound)
		})
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", a.serveReady)
	s := &server{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		done: make(chan struct{}),
		addr: l.Addr(),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("observability listener failed", slog.Any("error", err))
		}
	}()
	a.logger.Info("observability listening", slog.String("addr", l.Addr().String()))
	return s, nil
}

// ObservabilityAddr returns the address the observability listener listens
// on (useful with observability.addr port 0), or "" without one.
func (a *App) ObservabilityAddr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.server == nil {
		return ""
	}
	return a.server.addr.String()
}

// closeObservability stops the listener and flushes the spans.
func (a *App) closeObservability() error {
	var errs []error
	a.mu.Lock()
	s := a.server
	a.server = nil
	a.mu.Unlock()
	if s != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := s.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("observability listener: %w", err))
			_ = s.srv.Close()
		}
		cancel()
		<-s.done
	}
	if a.tracing.shutdown != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := a.tracing.shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush traces: %w", err))
		}
		cancel()
	}
	return errors.Join(errs...)
}

// Readiness is what /readyz reports.
type Readiness struct {
	// Status is "ready", "degraded" (it works, but something needs a look)
	// or "not_ready".
	Status string `json:"status"`
	// Transport is "ok" or why the transport's connection does not work.
	Transport string `json:"transport"`
	// Handlers maps each handler to "ok" or why it does not consume.
	Handlers map[string]string `json:"handlers"`
	// NotReady lists why the service is not ready.
	NotReady []string `json:"not_ready,omitempty"`
	// Degraded lists why the service is degraded: an open breaker, a
	// dedup store that does not answer, a backlog or poison topic past its
	// threshold.
	Degraded []string `json:"degraded,omitempty"`
}

// Ready reports whether the App is ready to consume, as /readyz does:
// started and not stopping, the transport connected (where it can tell,
// [transports.HealthChecker]) and every handler's subscriptions running;
// degraded when a breaker is not closed, a dedup store runs degraded, or a
// backlog or poison topic passed its threshold (observability.readiness).
func (a *App) Ready(ctx context.Context) Readiness {
	r := Readiness{Status: "ready", Transport: "ok", Handlers: map[string]string{}}
	a.mu.Lock()
	st := a.state
	a.mu.Unlock()
	switch st {
	case stateNew:
		r.NotReady = append(r.NotReady, "not started")
	case stateStopping, stateStopped:
		r.NotReady = append(r.NotReady, "shutting down")
	}
	if hc, ok := a.transport.(transports.HealthChecker); ok {
		if err := hc.CheckHealth(ctx); err != nil {
			r.Transport = err.Error()
			r.NotReady = append(r.NotReady, "transport: "+err.Error())
		}
	}
	for _, h := range a.handlers {
		switch {
		case st != stateRunning:
			r.Handlers[h.name] = "not running"
		case h.running.Load() == 0:
			r.Handlers[h.name] = "subscription ended"
			r.NotReady = append(r.NotReady, fmt.Sprintf("handler %s: subscription to %s ended", h.name, h.topic))
		default:
			r.Handlers[h.name] = "ok"
		}
	}
	a.mu.Lock()
	for name, cb := range a.breakers {
		if s := cb.State().String(); s != "closed" {
			r.Degraded = append(r.Degraded, fmt.Sprintf("breaker %s is %s", name, s))
		}
	}
	for _, why := range a.degraded {
		r.Degraded = append(r.Degraded, why)
	}
	a.mu.Unlock()
	limits := a.cfg.Observability.Readiness
	if b, ok := a.transport.(transports.Backlogger); ok && (limits.MaxBacklog > 0 || limits.MaxPoison > 0) && st == stateRunning {
		for _, s := range a.sizes(ctx, b) {
			switch {
			case s.err != nil:
			case s.poison && limits.MaxPoison > 0 && s.n > limits.MaxPoison:
				r.Degraded = append(r.Degraded, fmt.Sprintf("poison topic %s holds %d messages (readiness.max_poison %d)", s.topic, s.n, limits.MaxPoison))
			case !s.poison && limits.MaxBacklog > 0 && s.n > limits.MaxBacklog:
				r.Degraded = append(r.Degraded, fmt.Sprintf("handler %s has a backlog of %d (readiness.max_backlog %d)", s.handler, s.n, limits.MaxBacklog))
			}
		}
	}
	slices.Sort(r.Degraded)
	switch {
	case len(r.NotReady) > 0:
		r.Status = "not_ready"
	case len(r.Degraded) > 0:
		r.Status = "degraded"
	}
	return r
}

// serveReady answers /readyz: 200 when ready or degraded, 503 when not,
// with the Readiness as JSON.
func (a *App) serveReady(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), scrapeTimeout)
	defer cancel()
	r := a.Ready(ctx)
	w.Header().Set("Content-Type", "application/json")
	if r.Status == "not_ready" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(r)
}
