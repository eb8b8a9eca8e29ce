package framework

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/go-sql-driver/mysql" // dedup.store: mysql
	_ "github.com/jackc/pgx/v5/stdlib" // dedup.store: postgres
	goredis "github.com/redis/go-redis/v9"

	"github.com/millrace/millrace/middleware"
	redisstore "github.com/millrace/millrace/middleware/dedupstore/redis"
	sqlstore "github.com/millrace/millrace/middleware/dedupstore/sql"
	"github.com/millrace/millrace/transports"
)

// WithMiddleware lets a handler change its own copy of the middleware
// config (config section middleware:): switch a part off, or give it its own
// retry policy.
//
//	framework.Handle(app, "charge", "payments", charge, framework.WithMiddleware(func(m *framework.MiddlewareConfig) {
//		m.Dedup.Enabled = false
//		m.Retry.MaxAttempts = 5
//	}))
func WithMiddleware(change func(*MiddlewareConfig)) HandlerOption {
	return func(h *handler) { change(&h.mw) }
}

// stack builds the handler's default middleware, outermost first, in the
// order MiddlewareConfig documents.
func (a *App) stack(h *handler) ([]message.HandlerMiddleware, error) {
	m := h.mw
	prefix := fmt.Sprintf("handler %q: middleware", h.name)
	if errs := m.validate("middleware"); len(errs) > 0 {
		return nil, fmt.Errorf("%s: %w", prefix, errors.Join(errs...))
	}
	logger := a.logger // the middleware name the handler on their own lines
	out := []message.HandlerMiddleware{middleware.Correlation}
	if m.Poison.Enabled {
		out = append(out, middleware.PoisonQueue{Publisher: a.publisher, Topic: a.poisonTopic(m.Poison), Logger: logger}.Middleware)
	}
	if m.DelayedRetry.Enabled {
		delayer, ok := a.transport.(middleware.Delayer)
		if !ok {
			return nil, fmt.Errorf("%s: transport %q has no native delayed delivery; set middleware.delayed_retry.enabled: false", prefix, a.cfg.Transport.Kind)
		}
		out = append(out, middleware.DelayedRetry{Delayer: delayer, Delays: m.DelayedRetry.Delays, Logger: logger}.Middleware)
	}
	if m.Breaker.Enabled {
		cb, err := a.breaker(h.name, m.Breaker)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prefix, err)
		}
		out = append(out, cb.Middleware)
	}
	if m.Throttle.Rate > 0 {
		t, err := a.throttle(h.name, m.Throttle)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prefix, err)
		}
		out = append(out, t.Middleware)
	}
	if m.Dedup.Enabled {
		store, err := a.dedupStore(m.Dedup)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prefix, err)
		}
		d := middleware.Dedup{Store: store, Lease: m.Dedup.Lease, TTL: m.Dedup.TTL, FailOpen: m.Dedup.FailOpen, Logger: transports.WatermillLogger(logger)}
		switch k := m.Dedup.Key; {
		case strings.HasPrefix(k, "metadata:"):
			d.Key = middleware.KeyFromMetadata(strings.TrimPrefix(k, "metadata:"))
		case strings.HasPrefix(k, "json:"):
			d.Key = middleware.KeyFromJSONField(strings.TrimPrefix(k, "json:"))
		}
		out = append(out, d.Middleware)
	}
	if m.Retry.MaxAttempts > 1 {
		r := m.Retry
		out = append(out, middleware.Retry{
			MaxAttempts: r.MaxAttempts, InitialInterval: r.InitialInterval, Multiplier: r.Multiplier,
			MaxInterval: r.MaxInterval, Jitter: r.Jitter, Logger: logger,
		}.Middleware)
	}
	out = append(out, middleware.Timeout(m.Timeout), middleware.Recoverer)
	return out, nil
}

// breaker returns the handler's circuit breaker: its own, or the one shared
// under cfg.Name.
func (a *App) breaker(handler string, cfg BreakerConfig) (*middleware.CircuitBreaker, error) {
	name := cfg.Name
	if name == "" {
		name = handler
	}
	if cb, ok := a.breakers[name]; ok && cfg.Name != "" {
		return cb, nil
	}
	bc := middleware.Breaker{
		Name:                name,
		ConsecutiveFailures: uint32(cfg.ConsecutiveFailures),
		OpenTimeout:         cfg.OpenTimeout,
		HalfOpenRequests:    uint32(cfg.HalfOpenRequests),
		Logger:              a.logger,
	}
	if cfg.FailureRatio > 0 {
		bc.FailureRatio, bc.MinRequests, bc.Interval = cfg.FailureRatio, uint32(cfg.MinRequests), cfg.Interval
	}
	cb, err := middleware.NewBreaker(bc)
	if err != nil {
		return nil, err
	}
	if a.breakers == nil {
		a.breakers = map[string]*middleware.CircuitBreaker{}
	}
	a.breakers[name] = cb
	return cb, nil
}

// BreakerState returns the state of the circuit breaker named name (a
// handler's name, or a shared breaker.name) once the App has started:
// "closed", "open" or "half-open".
func (a *App) BreakerState(name string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cb, ok := a.breakers[name]
	if !ok {
		return "", false
	}
	return cb.State().String(), true
}

// throttle returns the handler's token bucket: its own, or the one shared
// under cfg.Name.
func (a *App) throttle(handler string, cfg ThrottleConfig) (*middleware.Throttler, error) {
	if t, ok := a.throttles[cfg.Name]; ok && cfg.Name != "" {
		return t, nil
	}
	t, err := middleware.NewThrottle(middleware.Throttle{Rate: cfg.Rate, Burst: cfg.Burst})
	if err != nil {
		return nil, err
	}
	if cfg.Name != "" {
		if a.throttles == nil {
			a.throttles = map[string]*middleware.Throttler{}
		}
		a.throttles[cfg.Name] = t
	}
	return t, nil
}

// dedupStore returns the App's store for cfg, opening it on first use. All
// handlers with the same store settings share one.
func (a *App) dedupStore(cfg DedupConfig) (middleware.DedupStore, error) {
	id := cfg.Store + "|" + cfg.DSN + "|" + cfg.Table
	if cfg.Store == "memory" {
		id = fmt.Sprintf("memory|%d", cfg.MaxKeys)
	}
	if s, ok := a.stores[id]; ok {
		return s, nil
	}
	var store middleware.DedupStore
	switch cfg.Store {
	case "memory":
		store = middleware.NewMemoryStore(cfg.MaxKeys)
	case "postgres", "mysql":
		driver, dialect := "pgx", sqlstore.Postgres
		if cfg.Store == "mysql" {
			driver, dialect = "mysql", sqlstore.MySQL
		}
		db, err := sql.Open(driver, cfg.DSN)
		if err != nil {
			return nil, fmt.Errorf("dedup store %s (%s): %w", cfg.Store, transports.RedactDSN(cfg.DSN), err)
		}
		a.closers = append(a.closers, db.Close)
		s, err := sqlstore.New(db, dialect, cfg.Table)
		if err != nil {
			return nil, fmt.Errorf("dedup store %s: %w", cfg.Store, err)
		}
		if err := s.CreateSchema(context.Background()); err != nil {
			return nil, fmt.Errorf("dedup store %s (%s): create schema: %w", cfg.Store, transports.RedactDSN(cfg.DSN), err)
		}
		store = s
	case "redis":
		opts, err := goredis.ParseURL(cfg.DSN)
		if err != nil {
			return nil, fmt.Errorf("dedup store redis (%s): %w", transports.RedactDSN(cfg.DSN), err)
		}
		client := goredis.NewClient(opts)
		a.closers = append(a.closers, client.Close)
		store = redisstore.New(client, cfg.Table+":")
	default:
		return nil, fmt.Errorf("unknown dedup store %q", cfg.Store)
	}
	if a.stores == nil {
		a.stores = map[string]middleware.DedupStore{}
	}
	a.stores[id] = store
	return store, nil
}

// poisonTopic is the poison topic that p names, or the service's default.
func (a *App) poisonTopic(p PoisonConfig) string {
	if p.Topic != "" {
		return p.Topic
	}
	return middleware.TopicFor(a.cfg.Service.Name)
}
