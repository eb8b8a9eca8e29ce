package outbox_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/millrace/millrace/cqrs"
	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/framework"
)

// The consumer process of TestKill: this test binary, run as a service
// (see runKillChild) by TestMain.
const (
	envChild     = "OUTBOX_KILL_CHILD"    // the backend's name: run as the consumer
	envPrefix    = "OUTBOX_KILL_PREFIX"   // table prefix, topics
	envSelfKill  = "OUTBOX_KILL_PERMILLE" // chance per message, in 1/1000, of dying between commit and ack
	envKills     = "OUTBOX_KILLS"         // kills per run; default 10
	envKillTotal = "OUTBOX_KILL_MESSAGES" // messages per run; default 1000
)

func TestMain(m *testing.M) {
	if name := os.Getenv(envChild); name != "" {
		os.Exit(runKillChild(name))
	}
	os.Exit(m.Run())
}

// killEnv is the config both sides of TestKill run on: RabbitMQ carries the
// commands and events, the backend's database holds the effects, the dedup
// marks and the outbox.
func killEnv(b backend, p string) []string {
	return []string{
		"MILLRACE_TRANSPORT_KIND=amqp",
		"MILLRACE_TRANSPORT_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/",
		"MILLRACE_LOG_LEVEL=error",
		"MILLRACE_HANDLERS_CONCURRENCY=4",
		"MILLRACE_MIDDLEWARE_RETRY_INITIAL_INTERVAL=5ms",
		"MILLRACE_MIDDLEWARE_RETRY_MAX_INTERVAL=20ms",
		"MILLRACE_MIDDLEWARE_DELAYED_RETRY_DELAYS=200ms",
		"MILLRACE_MIDDLEWARE_DEDUP_STORE=" + b.name,
		"MILLRACE_MIDDLEWARE_DEDUP_DSN=" + b.dsn,
		"MILLRACE_MIDDLEWARE_DEDUP_TABLE=" + p + "dedup",
		"MILLRACE_MIDDLEWARE_DEDUP_LEASE=2s",
	}
}

// killRoutes give the run its own topics.
func killRoutes(p string) []cqrs.Option {
	return []cqrs.Option{cqrs.Route[PlaceOrder](p + "place"), cqrs.Route[OrderPlaced](p + "placed")}
}

// killApp builds an App from env as a service does.
func killApp(env []string, name string, logTo io.Writer) (*framework.App, func(), error) {
	reg, err := framework.Transports()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := framework.Parse(nil, append(env, "MILLRACE_SERVICE_NAME="+name), reg)
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

// runKillChild is the consumer: each PlaceOrder inserts its effect, marks
// itself done and writes OrderPlaced to the outbox, in one transaction; the
// relay runs here too. It dies now and then between the commit and the
// ack, and is killed from outside at random.
func runKillChild(name string) int {
	var b backend
	for _, x := range backends {
		if x.name == name {
			b = x
		}
	}
	p := os.Getenv(envPrefix)
	permille, _ := strconv.Atoi(os.Getenv(envSelfKill))
	app, cleanup, err := killApp(killEnv(b, p), "orders-"+p, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kill child:", err)
		return 2
	}
	defer cleanup()
	bus := cqrs.New(app, killRoutes(p)...)
	db, err := sql.Open(b.driver, b.dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kill child:", err)
		return 2
	}
	defer db.Close()
	oc := outbox.DefaultConfig(b.dialect)
	oc.TablePrefix = p
	oc.PollInterval = 20 * time.Millisecond
	oc.BatchSize = 50
	ob, err := outbox.New(context.Background(), bus, db, oc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kill child:", err)
		return 2
	}
	insert := rebind(b, `INSERT INTO `+p+`effects (id) VALUES (?)`)
	cqrs.HandleCommand(bus, func(ctx context.Context, c PlaceOrder) error {
		err := ob.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, insert, c.ID); err != nil {
				return err
			}
			return outbox.Publish(ctx, tx, ob, OrderPlaced{ID: c.ID})
		})
		if err == nil && rand.IntN(1000) < permille {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL) // committed, not acked
		}
		return err
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-app.Started()
		fmt.Println("started")
	}()
	if err := app.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kill child:", err)
		return 1
	}
	return 0
}

func rebind(b backend, q string) string { return (&svc{}).rebind(b, q) }

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// TestKill handles a stream of commands with the inbox and outbox in a
// consumer process that is killed with SIGKILL at random (OUTBOX_KILLS
// times, default 10, over OUTBOX_KILL_MESSAGES commands, default 1000;
// also between its commit and its ack) and started again each time. Afterwards every command's effect is in the database
// exactly once, and every event it published reached the broker: at least
// once on the wire, exactly once after a downstream consumer's own dedup.
func TestKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills consumer processes for a minute")
	}
	kills, n := envInt(envKills, 10), envInt(envKillTotal, 1000)
	forEachBackend(t, func(t *testing.T, b backend) {
		p := "kill_" + randomHex() + "_"
		db := openDB(t, b)
		for _, q := range []string{
			`CREATE TABLE ` + p + `effects (id VARCHAR(64) NOT NULL)`,
			`CREATE TABLE ` + p + `downstream (id VARCHAR(64) NOT NULL)`,
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() {
			for _, tbl := range []string{"effects", "downstream", "dedup", "dedup_down"} {
				_, _ = db.Exec(`DROP TABLE IF EXISTS ` + p + tbl)
			}
		})
		dropLater(t, b, db, p)
		t.Cleanup(func() { deleteQueues(t, p) })

		// The test's side: it sends the commands, and a downstream service
		// consumes the events with its own dedup, recording each once.
		env := killEnv(b, p)
		down, cleanup, err := killApp(append(env[:len(env):len(env)], "MILLRACE_MIDDLEWARE_DEDUP_TABLE="+p+"dedup_down"), "downstream-"+p, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cleanup)
		t.Cleanup(func() { _ = down.Stop(context.Background()) })
		downBus := cqrs.New(down, killRoutes(p)...)
		downDB := openDB(t, b)
		dob, err := outbox.New(context.Background(), downBus, downDB, func() outbox.Config {
			c := outbox.DefaultConfig(b.dialect)
			c.TablePrefix = p + "down_"
			c.Relay = false
			return c
		}())
		if err != nil {
			t.Fatal(err)
		}
		dropLater(t, b, downDB, p+"down_")
		var onWire atomic.Int64
		record := rebind(b, `INSERT INTO `+p+`downstream (id) VALUES (?)`)
		cqrs.HandleEvent(downBus, "record", func(ctx context.Context, e OrderPlaced) error {
			onWire.Add(1)
			return dob.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, record, e.ID)
				return err
			})
		})
		if err := down.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := cqrs.Send(context.Background(), downBus, PlaceOrder{ID: fmt.Sprint("o-", i)}, framework.WithID(fmt.Sprint("cmd-", i))); err != nil {
				t.Fatal(err)
			}
		}

		count := func(table string) (all, distinct int) {
			t.Helper()
			if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT id) FROM `+p+table).Scan(&all, &distinct); err != nil {
				t.Fatal(err)
			}
			return all, distinct
		}
		childEnv := append(env, envChild+"="+b.name, envPrefix+"="+p, envSelfKill+"=3")
		done := func() bool {
			_, effects := count("effects")
			_, downstream := count("downstream")
			return effects == n && downstream == n
		}
		// Kill the consumer from outside every 20-170ms until kills ran
		// out; start it again whenever it is gone (killed, or dead by its
		// own hand between a commit and an ack), until everything arrived.
		killed, died := 0, 0
		deadline := time.Now().Add(4 * time.Minute)
		for !done() {
			if time.Now().After(deadline) {
				_, effects := count("effects")
				_, downstream := count("downstream")
				t.Fatalf("after %d kills and %d deaths: %d of %d effects, %d of %d events downstream", killed, died, effects, n, downstream, n)
			}
			child := startChild(t, childEnv)
			exited := make(chan struct{})
			go func() { _ = child.Wait(); close(exited) }()
			if killed < kills {
				select {
				case <-exited:
					died++
					continue
				case <-time.After(time.Duration(20+rand.IntN(150)) * time.Millisecond):
				}
				_ = child.Process.Signal(syscall.SIGKILL)
				<-exited
				killed++
				continue
			}
			for !done() {
				select {
				case <-exited:
					died++
				case <-time.After(50 * time.Millisecond):
					continue
				}
				break
			}
			select {
			case <-exited:
			default:
				time.Sleep(300 * time.Millisecond) // a late duplicate would land now
				_ = child.Process.Signal(syscall.SIGTERM)
				<-exited
			}
		}
		if all, distinct := count("effects"); all != n || distinct != n {
			t.Errorf("effects: %d rows for %d commands (%d distinct), want each exactly once", all, n, distinct)
		}
		if all, distinct := count("downstream"); all != n || distinct != n {
			t.Errorf("downstream: %d rows for %d events (%d distinct), want each exactly once after dedup", all, n, distinct)
		}
		t.Logf("%s: %d kills from outside, %d deaths between commit and ack; %d events on the wire for %d commands", b.name, killed, died, onWire.Load(), n)
	})
}

// startChild runs this binary as the consumer and returns once it started.
func startChild(t *testing.T, env []string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started, gone := make(chan struct{}), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "started" {
				close(started)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		close(gone)
	}()
	select {
	case <-started:
	case <-gone: // it died before it said so: between a commit and an ack
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the consumer did not start: %s", strings.TrimSpace(stderr.String()))
	}
	return cmd
}

// deleteQueues deletes the run's RabbitMQ queues and exchanges (their names
// contain p), where rabbitmqctl is at hand.
func deleteQueues(t *testing.T, p string) {
	for _, kind := range []string{"queues", "exchanges"} {
		out, err := exec.Command("rabbitmqctl", "-q", "list_"+kind, "name").Output()
		if err != nil {
			return
		}
		for _, name := range strings.Fields(string(out)) {
			if !strings.Contains(name, p) {
				continue
			}
			if kind == "queues" {
				_ = exec.Command("rabbitmqctl", "-q", "delete_queue", name).Run()
			} else {
				_ = exec.Command("rabbitmqctl", "-q", "eval", `rabbit_exchange:delete(rabbit_misc:r(<<"/">>, exchange, <<"`+name+`">>), false, <<"test">>).`).Run()
			}
		}
	}
}
