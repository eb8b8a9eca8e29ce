package projection

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
)

// notifier listens to the event store's PostgreSQL channel.
type notifier struct {
	db      *sql.DB
	channel string
}

// listen sends to wake on every notification until ctx ends, connecting
// again after a lost connection. A missed notification costs a poll
// interval.
func (n *notifier) listen(ctx context.Context, timeout time.Duration, logger *slog.Logger, wake chan<- struct{}) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := n.listenOnce(ctx, timeout, wake)
		if ctx.Err() != nil {
			return
		}
		logger.Debug("projection: listening for notifications failed; polling meanwhile", slog.String("channel", n.channel), slog.Any("error", err))
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (n *notifier) listenOnce(ctx context.Context, timeout time.Duration, wake chan<- struct{}) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	conn, err := n.db.Conn(cctx)
	cancel()
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("LISTEN needs the pgx driver, not %T", dc)
		}
		pc := sc.Conn()
		lctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := pc.Exec(lctx, `LISTEN "`+n.channel+`"`)
		cancel()
		if err != nil {
			return driver.ErrBadConn
		}
		signal(wake) // what committed before LISTEN took effect woke nobody
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				// Lost, or interrupted mid-wait: not to go back to the pool.
				return driver.ErrBadConn
			}
			signal(wake)
		}
	})
}

func signal(wake chan<- struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}
