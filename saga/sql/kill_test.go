package sql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/saga"
	"github.com/millrace/millrace/saga/sagatest"
	sagasql "github.com/millrace/millrace/saga/sql"
)

// TestKill runs the order saga's coordinator in a child process (this test
// binary, see runKillChild) with its state in PostgreSQL, kills it with
// SIGKILL several times while it runs, and starts it again each time. The
// participants run in this process, on RabbitMQ, and keep their own
// records. Every saga must end (complete or compensate), and no step or
// compensation may be applied from two messages.
const (
	envKillChild  = "SAGA_KILL_CHILD"  // set: run as the coordinator
	envKillPrefix = "SAGA_KILL_PREFIX" // tables, topics, service names of the run
	envKillSagas  = "SAGA_KILL_SAGAS"  // sagas per run; default 200
	envKills      = "SAGA_KILLS"       // kills per run; default 3
)

const killDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func TestMain(m *testing.M) {
	if os.Getenv(envKillChild) != "" {
		os.Exit(runKillChild())
	}
	os.Exit(m.Run())
}

// killEnv is the config of both sides: RabbitMQ carries the messages.
func killEnv() []string {
	return []string{
		"MILLRACE_TRANSPORT_KIND=amqp",
		"MILLRACE_TRANSPORT_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/",
		"MILLRACE_LOG_LEVEL=error",
		"MILLRACE_HANDLERS_CONCURRENCY=4",
		"MILLRACE_MIDDLEWARE_RETRY_INITIAL_INTERVAL=5ms",
		"MILLRACE_MIDDLEWARE_RETRY_MAX_INTERVAL=20ms",
		"MILLRACE_MIDDLEWARE_DELAYED_RETRY_DELAYS=200ms",
	}
}

// killApp builds an App for service name from env, as a service does.
func killApp(name string, logTo io.Writer) (*framework.App, func(), error) {
	reg, err := framework.Transports()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := framework.Parse(nil, append(killEnv(), "MILLRACE_SERVICE_NAME="+name), reg)
	if err != nil {
		return nil, nil, err
	}
	logger := framework.NewLogger(cfg, logTo)
	tr, cleanup, err := framework.OpenTransport(context.Background(), cfg, reg, logger)
	if err != nil {
		return nil, nil, err
	}
	app, err := framework.New(cfg, logger, tr)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return app, cleanup, nil
}

// killWorld is the run's world: which sagas fail where.
func killWorld(prefix string, n int) *sagatest.World {
	w := sagatest.NewWorld(prefix)
	w.SetTimeout(time.Minute)
	for i := range n {
		id := killID(i)
		switch {
		case i%5 == 0:
			w.Behave("reserve", sagatest.Decline, id)
		case i%7 == 0:
			w.Behave("ship", sagatest.Decline, id)
		}
	}
	return w
}

func killID(i int) string { return fmt.Sprintf("k-%05d", i) }

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// runKillChild is the coordinator: it starts the sagas that do not exist
// yet and runs them until it is killed.
func runKillChild() int {
	prefix := os.Getenv(envKillPrefix)
	n := envInt(envKillSagas, 200)
	app, cleanup, err := killApp(prefix+"coordinator", os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	ctx := context.Background()
	db, err := sql.Open("pgx", killDSN)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w := killWorld(prefix, n)
	bus := cqrs.New(app, w.BusOptions()...)
	ocfg := outbox.DefaultConfig(outbox.Postgres)
	ocfg.TablePrefix = prefix
	ob, err := outbox.New(ctx, bus, db, ocfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	scfg := sagasql.DefaultConfig(outbox.Postgres)
	scfg.TablePrefix = prefix
	store, err := sagasql.New(ctx, db, scfg, ob)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m, err := saga.Register(bus, w.Definition(), store, w.Options()...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := app.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < n; i += 8 {
				for {
					err := m.Start(ctx, killID(i), sagatest.Order{ID: killID(i), Amount: i, Items: 1})
					if err == nil || errors.Is(err, saga.ErrExists) {
						break
					}
					fmt.Fprintln(os.Stderr, "start:", err)
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	select {} // until killed
}

func TestKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	n, kills := envInt(envKillSagas, 200), envInt(envKills, 3)
	prefix := prefix()
	db, err := sql.Open("pgx", killDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, tbl := range []string{prefix + "saga", prefix + "outbox", prefix + "outbox_relay"} {
			_, _ = db.Exec("DROP TABLE IF EXISTS " + tbl)
		}
		_ = db.Close()
	})
	// The participants: this process, never killed.
	w := killWorld(prefix, n)
	app, cleanup, err := killApp(prefix+"participants", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	w.Register(cqrs.New(app, w.BusOptions()...))
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Stop(context.Background()) })

	readCfg := sagasql.DefaultConfig(outbox.Postgres)
	readCfg.TablePrefix = prefix
	var reader *sagasql.Store
	ended := func() (done int, byStatus map[saga.Status]int) {
		if reader == nil {
			if reader, err = sagasql.New(ctx, db, readCfg, nil); err != nil {
				return 0, nil
			}
		}
		ins, err := reader.List(ctx, "order", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		byStatus = map[saga.Status]int{}
		for _, in := range ins {
			byStatus[in.Status]++
			if in.Status.Final() {
				done++
			}
		}
		return done, byStatus
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), envKillChild+"=1", envKillPrefix+"="+prefix, envKillSagas+"="+strconv.Itoa(n))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	began := time.Now()
	child := start()
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	killed := 0
	for killed < kills {
		time.Sleep(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
		done, _ := ended()
		if done == n && killed > 0 {
			break // it finished before every kill came
		}
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = child.Wait()
		killed++
		t.Logf("kill %d after %s: %d of %d sagas ended", killed, time.Since(began).Round(time.Millisecond), done, n)
		child = start()
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		done, byStatus := ended()
		if done == n {
			t.Logf("%d sagas ended in %s with %d kills: %v", n, time.Since(began).Round(time.Millisecond), killed, byStatus)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d kills, %d of %d sagas ended: %v", killed, done, n, byStatus)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ins, err := reader.List(ctx, "order", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		i, _ := strconv.Atoi(in.ID[2:])
		want := saga.Completed
		if i%5 == 0 || i%7 == 0 {
			want = saga.Compensated
		}
		if in.Status != want {
			t.Errorf("saga %s ended %s (%s), want %s", in.ID, in.Status, in.Reason, want)
		}
		undone := w.Undone(in.ID)
		switch {
		case i%5 == 0 && (len(undone) != 2 || undone[0] != "charge" || undone[1] != "create"):
			t.Errorf("saga %s: compensations %v, want charge, create", in.ID, undone)
		case i%5 != 0 && i%7 == 0 && (len(undone) != 3 || undone[2] != "create"):
			t.Errorf("saga %s: compensations %v, want charge and reserve, then create", in.ID, undone)
		case i%5 != 0 && i%7 != 0 && len(undone) != 0:
			t.Errorf("saga %s completed but compensated %v", in.ID, undone)
		}
	}
	if tw := w.Twice(); len(tw) > 0 {
		t.Errorf("%d steps or compensations applied from two messages: %v", len(tw), tw)
	}
}
