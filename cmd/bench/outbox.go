package main

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/transports/amqp"
)

// Database the outbox rows measure, by -outbox value.
var outboxDatabases = map[string]struct {
	dialect outbox.Dialect
	driver  string
	dsnKey  string
	dsn     string
}{
	"postgres": {outbox.Postgres, "pgx", "MILLRACE_OUTBOX_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"},
	"mysql":    {outbox.MySQL, "mysql", "MILLRACE_OUTBOX_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test?parseTime=true&interpolateParams=true"},
}

// outboxRow is one line of the outbox table.
type outboxRow struct {
	what              string
	committed, rate   float64 // msg/s; 0: not measured
	p50, p99          time.Duration
	handled, baseline float64
}

// benchEvent is what the outbox rows publish.
type benchEvent struct {
	ID string `json:"id"`
	N  int    `json:"n"`
}

// runOutbox measures the transactional outbox of database db (postgres or
// mysql), in one run: messages/s committed in transactions of o.batch from
// o.publishers writers and relayed to the in-process Kafka broker and to
// RabbitMQ, next to RabbitMQ's own ceiling; the latency from commit to the
// broker's consumer; and a handler with the inbox and outbox against the
// same handler with plain dedup.
func runOutbox(ctx context.Context, db string, o options, env []string, out io.Writer) error {
	d, ok := outboxDatabases[db]
	if !ok {
		return fmt.Errorf("-outbox %q: postgres or mysql", db)
	}
	dsn := d.dsn
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == d.dsnKey {
			dsn = v
		}
	}
	sqlDB, err := stdsql.Open(d.driver, dsn)
	if err != nil {
		return err
	}
	defer sqlDB.Close()
	sqlDB.SetMaxOpenConns(o.publishers + 8)
	sqlDB.SetMaxIdleConns(o.publishers + 8)

	var rows []outboxRow
	var errs []error
	for _, broker := range []string{"kafka", "amqp"} {
		r, err := relayRow(ctx, broker, d.dialect, sqlDB, o, env)
		if err != nil {
			errs = append(errs, fmt.Errorf("outbox to %s: %w", broker, err))
			continue
		}
		r.what = db + " outbox to " + broker
		rows = append(rows, r)
		if broker == "amqp" {
			t, err := newTarget(ctx, "amqp", o, env)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			pub, con, err := amqpCeiling(ctx, t.cfg.Transport.Section().(*amqp.Config), o, o.batch)
			t.close()
			if err != nil {
				errs = append(errs, fmt.Errorf("amqp ceiling: %w", err))
				continue
			}
			rows = append(rows, outboxRow{what: "amqp091-go alone: the broker's ceiling, 100/publish", committed: pub, rate: con})
		}
	}
	h, err := handlerRow(ctx, d.dialect, db, dsn, sqlDB, o)
	if err != nil {
		errs = append(errs, fmt.Errorf("handler: %w", err))
	} else {
		rows = append(rows, h)
	}
	printOutbox(out, rows)
	return errors.Join(errs...)
}

func printOutbox(out io.Writer, rows []outboxRow) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "outbox\tcommitted msg/s\trelayed msg/s\tcommit to broker p50\tp99\thandled msg/s\tplain dedup msg/s\t")
	ms := func(d time.Duration) string {
		if d == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.what, rate(r.committed), rate(r.rate), ms(r.p50), ms(r.p99), rate(r.handled), rate(r.baseline))
	}
	_ = tw.Flush()
}

// outboxApp is an App on broker with a bus and an outbox in db.
type outboxApp struct {
	app    *framework.App
	bus    *cqrs.Bus
	ob     *outbox.Outbox
	prefix string
	close  func()
}

func newOutboxApp(ctx context.Context, broker string, dialect outbox.Dialect, db *stdsql.DB, o options, env []string, relay bool) (*outboxApp, *target, error) {
	t, err := newTarget(ctx, broker, o, env)
	if err != nil {
		return nil, nil, err
	}
	tr, closeTr, err := framework.OpenTransport(ctx, t.cfg, t.reg, t.logger)
	if err != nil {
		t.close()
		return nil, nil, err
	}
	app, err := framework.New(t.cfg, t.logger, tr)
	if err != nil {
		closeTr()
		t.close()
		return nil, nil, err
	}
	bus := cqrs.New(app)
	prefix := strings.ReplaceAll(fresh("bench_ob"), "-", "_") + "_"
	oc := outbox.DefaultConfig(dialect)
	oc.TablePrefix = prefix
	oc.Relay = relay
	oc.PollInterval = 20 * time.Millisecond
	ob, err := outbox.New(ctx, bus, db, oc)
	if err != nil {
		closeTr()
		t.close()
		return nil, nil, err
	}
	a := &outboxApp{app: app, bus: bus, ob: ob, prefix: prefix}
	a.close = func() {
		_ = app.Stop(context.Background())
		closeTr()
		dropOutbox(db, dialect, prefix)
		t.close()
	}
	return a, t, nil
}

func dropOutbox(db *stdsql.DB, d outbox.Dialect, prefix string) {
	ctx := context.Background()
	if d == outbox.Postgres {
		_, _ = db.ExecContext(ctx, `DROP TABLE IF EXISTS "`+prefix+`outbox" CASCADE`)
		_, _ = db.ExecContext(ctx, `DROP FUNCTION IF EXISTS "`+prefix+`outbox_notify"()`)
		return
	}
	_, _ = db.ExecContext(ctx, "DROP TABLE IF EXISTS `"+prefix+"outbox`, `"+prefix+"outbox_relay`")
}

// relayRow writes o.n messages through the outbox to broker and measures
// the commits, the relay, and the latency of single-message commits.
func relayRow(ctx context.Context, broker string, dialect outbox.Dialect, db *stdsql.DB, o options, env []string) (outboxRow, error) {
	a, t, err := newOutboxApp(ctx, broker, dialect, db, o, env, true)
	if err != nil {
		return outboxRow{}, err
	}
	defer a.close()
	topic := fresh("bench.outbox")
	group := "bench.outbox.reader"
	defer t.drop(topic, group, false)
	sub, err := a.app.Transport().Subscriber(group)
	if err != nil {
		return outboxRow{}, err
	}
	defer sub.Close()
	if err := t.initGroup(sub, topic); err != nil {
		return outboxRow{}, err
	}
	if err := a.app.Start(ctx); err != nil {
		return outboxRow{}, err
	}

	// Receive: count, and note when each latency-probe arrived.
	var (
		mu      sync.Mutex
		arrived = map[string]time.Time{}
	)
	total := o.n + latencyProbes
	c := newCounter(o.n)
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := sub.Subscribe(subCtx, topic)
	if err != nil {
		return outboxRow{}, err
	}
	var got atomic.Int64
	go func() {
		for m := range ch {
			if strings.HasPrefix(m.UUID, "probe-") {
				mu.Lock()
				arrived[m.UUID] = time.Now()
				mu.Unlock()
			} else {
				c.hit()
			}
			got.Add(1)
			m.Ack()
		}
	}()

	committed, err := publishAll(o, o.batch, func(first, count int) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		msgs := make([]*message.Message, count)
		for i := range msgs {
			msgs[i] = message.NewMessage(fmt.Sprintf("m-%d", first+i), []byte(fmt.Sprintf(`{"id":"o-%d","n":%d}`, first+i, first+i)))
		}
		if err := a.ob.PublishMessage(ctx, tx, topic, msgs...); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	})
	if err != nil {
		return outboxRow{}, err
	}
	if err := c.wait(o.timeout); err != nil {
		return outboxRow{}, err
	}
	relayed := c.rate()

	// Latency: one message per transaction, one every 4ms, each timed from
	// its commit to its arrival at the broker's consumer.
	sent := make(map[string]time.Time, latencyProbes)
	for i := range latencyProbes {
		id := fmt.Sprintf("probe-%d", i)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return outboxRow{}, err
		}
		if err := a.ob.PublishMessage(ctx, tx, topic, message.NewMessage(id, []byte(`{}`))); err != nil {
			_ = tx.Rollback()
			return outboxRow{}, err
		}
		if err := tx.Commit(); err != nil {
			return outboxRow{}, err
		}
		sent[id] = time.Now()
		time.Sleep(4 * time.Millisecond)
	}
	deadline := time.Now().Add(o.timeout)
	for got.Load() < int64(total) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	var lat []time.Duration
	for id, at := range sent {
		if arr, ok := arrived[id]; ok {
			lat = append(lat, arr.Sub(at))
		}
	}
	mu.Unlock()
	if len(lat) < latencyProbes {
		return outboxRow{}, fmt.Errorf("%d of %d latency probes arrived", len(lat), latencyProbes)
	}
	slices.Sort(lat)
	return outboxRow{committed: committed, rate: relayed, p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}, nil
}

// latencyProbes is how many single-message commits the latency is taken
// from.
const latencyProbes = 500

// handlerRow consumes o.n commands on the in-memory transport, twice: a
// handler that writes a row, its dedup mark and an event in one
// transaction (inbox and outbox), and the same handler with plain dedup
// (the row written alone, the event published to the transport).
func handlerRow(ctx context.Context, dialect outbox.Dialect, db, dsn string, sqlDB *stdsql.DB, o options) (outboxRow, error) {
	inbox, err := handlerRate(ctx, dialect, db, dsn, sqlDB, o, true)
	if err != nil {
		return outboxRow{}, err
	}
	plain, err := handlerRate(ctx, dialect, db, dsn, sqlDB, o, false)
	if err != nil {
		return outboxRow{}, err
	}
	return outboxRow{what: db + " handler: inbox and outbox, against plain dedup", handled: inbox, baseline: plain}, nil
}

type benchCommand struct {
	ID string `json:"id"`
}

func handlerRate(ctx context.Context, dialect outbox.Dialect, db, dsn string, sqlDB *stdsql.DB, o options, inbox bool) (float64, error) {
	prefix := strings.ReplaceAll(fresh("bench_h"), "-", "_") + "_"
	env := []string{
		"MILLRACE_MIDDLEWARE_DEDUP_STORE=" + db,
		"MILLRACE_MIDDLEWARE_DEDUP_DSN=" + dsn,
		"MILLRACE_MIDDLEWARE_DEDUP_TABLE=" + prefix + "dedup",
		fmt.Sprintf("MILLRACE_HANDLERS_CONCURRENCY=%d", min(o.publishers, 8)),
	}
	a, _, err := newOutboxApp(ctx, "memory", dialect, sqlDB, o, env, inbox)
	if err != nil {
		return 0, err
	}
	defer a.close()
	table := prefix + "effects"
	if _, err := sqlDB.ExecContext(ctx, `CREATE TABLE `+table+` (id VARCHAR(64) NOT NULL)`); err != nil {
		return 0, err
	}
	defer func() {
		_, _ = sqlDB.ExecContext(context.Background(), `DROP TABLE IF EXISTS `+table)
		_, _ = sqlDB.ExecContext(context.Background(), `DROP TABLE IF EXISTS `+prefix+`dedup`)
	}()
	insert := `INSERT INTO ` + table + ` (id) VALUES (?)`
	if dialect == outbox.Postgres {
		insert = `INSERT INTO ` + table + ` (id) VALUES ($1)`
	}
	c := newCounter(o.n)
	cqrs.HandleCommand(a.bus, func(ctx context.Context, cmd benchCommand) error {
		var err error
		if inbox {
			err = a.ob.InTx(ctx, func(ctx context.Context, tx *stdsql.Tx) error {
				if _, err := tx.ExecContext(ctx, insert, cmd.ID); err != nil {
					return err
				}
				return outbox.Publish(ctx, tx, a.ob, benchEvent{ID: cmd.ID})
			})
		} else {
			if _, err = sqlDB.ExecContext(ctx, insert, cmd.ID); err == nil {
				err = cqrs.Publish(ctx, a.bus, benchEvent{ID: cmd.ID})
			}
		}
		if err == nil {
			c.hit()
		}
		return err
	})
	// The commands wait in the group before the App starts.
	if err := a.app.Prepare(ctx, cqrs.Topic[benchCommand](a.bus), cqrs.Name[benchCommand]()); err != nil {
		return 0, err
	}
	for i := 0; i < o.n; i++ {
		if err := cqrs.Send(ctx, a.bus, benchCommand{ID: fmt.Sprint("c-", i)}); err != nil {
			return 0, err
		}
	}
	if err := a.app.Start(ctx); err != nil {
		return 0, err
	}
	if err := c.wait(o.timeout); err != nil {
		return 0, err
	}
	return c.rate(), nil
}
