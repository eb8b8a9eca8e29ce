package framework

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/go-sql-driver/mysql" // dedup.store: mysql
	_ "github.com/jackc/pgx/v5/stdlib" // dedup.store: postgres
	goredis "github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

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
	log := middleware.WithLogger(a.logger) // the middleware name the handler on their own lines
	out := []message.HandlerMiddleware{middleware.Correlation}
	if m.Poison.Enabled {
		pc := m.Poison.PoisonConfig
		pc.Topic = a.poisonTopic(m.Poison)
		pq, err := middleware.NewPoisonQueue(pc, appPublisher{a}, log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prefix, err)
		}
		out = append(out, pq.Middleware)
	}
	if m.DelayedRetry.Enabled {
		delayer, ok := a.transport.(middleware.Delayer)
		if !ok {
			return nil, fmt.Errorf("%s: transport %q has no native delayed delivery; set middleware.delayed_retry.enabled: false", prefix, a.cfg.Transport.Kind)
		}
		dr, err := middleware.NewDelayedRetry(m.DelayedRetry.DelayedRetryConfig, delayer, log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prefix, err)
		}
		out = append(out, dr.Middleware)
	}
	if m.Breaker.Enabled {
		cb, err := a.breaker(h.name, m.Breaker.BreakerConfig)
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
		d, err := middleware.NewDedup(m.Dedup.DedupConfig, store, log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prefix, err)
		}
		out = append(out, d.Middleware)
	}
	if m.Retry.MaxAttempts > 1 {
		r, err := middleware.NewRetry(m.Retry, log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prefix, err)
		}
		out = append(out, r.Middleware)
	}
	out = append(out, middleware.Timeout(m.Timeout), middleware.Recoverer)
	return out, nil
}

// breaker returns the handler's circuit breaker: its own, or the one shared
// under cfg.Name.
func (a *App) breaker(handler string, cfg middleware.BreakerConfig) (*middleware.Breaker, error) {
	if cb, ok := a.breakers[cfg.Name]; ok && cfg.Name != "" {
		return cb, nil
	}
	if cfg.Name == "" {
		cfg.Name = handler
	}
	opts := []middleware.Option{middleware.WithLogger(a.logger)}
	if a.metrics != nil {
		opts = append(opts, middleware.OnBreakerStateChange(func(name string, _, to gobreaker.State) {
			a.metrics.breakerState(name, to)
		}))
	}
	cb, err := middleware.NewBreaker(cfg, opts...)
	if err != nil {
		return nil, err
	}
	a.metrics.breakerState(cfg.Name, gobreaker.StateClosed)
	if a.breakers == nil {
		a.breakers = map[string]*middleware.Breaker{}
	}
	a.breakers[cfg.Name] = cb
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
func (a *App) throttle(handler string, cfg middleware.ThrottleConfig) (*middleware.Throttle, error) {
	if t, ok := a.throttles[cfg.Name]; ok && cfg.Name != "" {
		return t, nil
	}
	name := cfg.Name
	if name == "" {
		name = handler
	}
	var opts []middleware.Option
	if a.metrics != nil {
		opts = append(opts, middleware.OnThrottleWait(a.metrics.throttleWait(name)))
	}
	t, err := middleware.NewThrottle(cfg, opts...)
	if err != nil {
		return nil, err
	}
	if cfg.Name != "" {
		if a.throttles == nil {
			a.throttles = map[string]*middleware.Throttle{}
		}
		a.throttles[cfg.Name] = t
	}
	return t, nil
}

// dedupStore returns the App's store for cfg, opening it on first use. All
// handlers with the same store settings share one. A network store is
// checked at once (connect and first query, bounded by
// dedup.connect_timeout): one that does not answer fails the start, unless
// dedup.fail_open chose availability, in which case the App says so once,
// loudly, reports it in [App.Degraded], and checks again in the background
// until the store answers.
func (a *App) dedupStore(cfg DedupConfig) (middleware.DedupStore, error) {
	id := cfg.Store + "|" + cfg.DSN + "|" + cfg.Table
	if cfg.Store == "memory" {
		id = fmt.Sprintf("memory|%d", cfg.MaxKeys)
	}
	if s, ok := a.stores[id]; ok {
		return s, nil
	}
	var (
		store middleware.DedupStore
		check func(context.Context) error // the connect and first query
	)
	where := fmt.Sprintf("dedup store %s at %s", cfg.Store, transports.RedactDSN(cfg.DSN))
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
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		a.closers = append(a.closers, db.Close)
		s, err := sqlstore.New(db, dialect, cfg.Table, sqlstore.CallTimeout(cfg.ConnectTimeout))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		store = s
		check = func(ctx context.Context) error {
			if err := db.PingContext(ctx); err != nil {
				return fmt.Errorf("connect: %w", err)
			}
			if err := s.CreateSchema(ctx); err != nil {
				return fmt.Errorf("create table %s: %w", cfg.Table, err)
			}
			return nil
		}
	case "redis":
		opts, err := goredis.ParseURL(cfg.DSN)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		opts.DialTimeout = cfg.ConnectTimeout
		opts.ContextTimeoutEnabled = true // a silent server: the check's deadline ends the handshake
		client := goredis.NewClient(opts)
		a.closers = append(a.closers, client.Close)
		store = redisstore.New(client, cfg.Table+":")
		check = func(ctx context.Context) error {
			if err := client.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("connect: %w", err)
			}
			return nil
		}
	default:
		return nil, fmt.Errorf("unknown dedup store %q", cfg.Store)
	}
	if check != nil {
		if err := a.checkStore(cfg, check); err != nil {
			err = fmt.Errorf("%s: %w", where, err)
			if !cfg.FailOpen {
				return nil, err
			}
			a.degrade(id, err, cfg, check)
		}
	}
	if a.stores == nil {
		a.stores = map[string]middleware.DedupStore{}
	}
	a.stores[id] = store
	return store, nil
}

// checkStore runs check within cfg.ConnectTimeout and names the key when it
// times out.
func (a *App) checkStore(cfg DedupConfig, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(a.subCtx, cfg.ConnectTimeout)
	defer cancel()
	err := check(ctx)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s (config key middleware.dedup.connect_timeout): %w", cfg.ConnectTimeout, err)
	}
	return err
}

// degrade records a dedup store that failed its check at start while
// dedup.fail_open is set: it is logged once, loudly, reported by
// [App.Degraded], and checked again in the background until it answers.
func (a *App) degrade(id string, err error, cfg DedupConfig, check func(context.Context) error) {
	a.logger.Error("dedup store unreachable at start: handlers run WITHOUT deduplication until it answers (middleware.dedup.fail_open is true)",
		slog.Any("error", err))
	if a.degraded == nil {
		a.degraded = map[string]string{}
	}
	a.degraded[id] = err.Error()
	a.background.Go(func() {
		t := time.NewTicker(cfg.ConnectTimeout)
		defer t.Stop()
		for {
			select {
			case <-a.subCtx.Done():
				return
			case <-t.C:
			}
			if a.checkStore(cfg, check) == nil {
				a.mu.Lock()
				delete(a.degraded, id)
				a.mu.Unlock()
				a.logger.Info("dedup store answers again: deduplication is back on", slog.String("store", cfg.Store))
				return
			}
		}
	})
}

// Degraded returns what the App runs without, and why: a dedup store that
// did not answer at start while dedup.fail_open let the App start anyway
// (until it answers). Empty when nothing is degraded.
func (a *App) Degraded() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.degraded))
	for _, why := range a.degraded {
		out = append(out, why)
	}
	slices.Sort(out)
	return out
}

// poisonTopic is the poison topic that p names, or the service's default.
func (a *App) poisonTopic(p PoisonConfig) string {
	if p.Topic != "" {
		return p.Topic
	}
	return middleware.TopicFor(a.cfg.Service.Name)
}
