package projection_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/millrace/millrace/cqrs/eventstore"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
	"github.com/millrace/millrace/cqrs/internal/sqltest"
	"github.com/millrace/millrace/cqrs/projection"
)

// The rebuilding process of TestKill_RebuildResumesAfterSIGKILL: this test
// binary, run by TestMain.
const (
	envKillChild  = "PROJECTION_KILL_CHILD"  // the backend's name: run as the rebuilder
	envKillPrefix = "PROJECTION_KILL_PREFIX" // the tables' prefix
	envKills      = "PROJECTION_KILLS"       // kills per backend; default 5
	envKillEvents = "PROJECTION_KILL_EVENTS" // moves in the store; default 3000
)

// killBatch is the rebuilder's batch size: small, so that a rebuild is
// many transactions to be killed in between.
const killBatch = 20

func isKillChild() bool { return os.Getenv(envKillChild) != "" }

// runKillChild rebuilds the projection of the tables of envKillPrefix and
// exits 0 once the new generation is live.
func runKillChild() {
	if err := rebuildChild(os.Getenv(envKillChild), os.Getenv(envKillPrefix)); err != nil {
		fmt.Fprintln(os.Stderr, "rebuild:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func rebuildChild(backend, prefix string) error {
	var b sqltest.Backend
	for _, c := range sqltest.Backends {
		if c.Name == backend {
			b = c
		}
	}
	db, err := sql.Open(b.Driver, b.DataSource())
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	store, err := sqlstore.New(db, b.Dialect, sqlstore.TablePrefix(prefix))
	if err != nil {
		return err
	}
	cfg := projection.DefaultConfig(b.Dialect)
	cfg.TablePrefix, cfg.BatchSize = prefix, killBatch
	ctx := context.Background()
	p, err := projection.New(ctx, db, store, balances(b.Dialect, prefix+"p"), cfg)
	if err != nil {
		return err
	}
	return p.Rebuild(ctx)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// TestKill_RebuildResumesAfterSIGKILL: a rebuild in a child process is
// killed with SIGKILL at random points, again and again, and restarted;
// it goes on from its checkpoint each time (never from the start, never
// applying a batch twice: the ledger's key would refuse it, the balances
// would show it), and its output, once live, equals the live output
// before it.
func TestKill_RebuildResumesAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	kills, events := envInt(envKills, 5), envInt(envKillEvents, 3000)
	sqltest.ForEach(t, func(t *testing.T, b sqltest.Backend) {
		ctx := context.Background()
		e := newEnv(t, b, b.Open(t), nil)
		var x expected
		appendMoves(t, e.store, &x, "", 50, 8, events)
		cfg := e.config()
		cfg.BatchSize = killBatch
		p := e.projector(t, cfg)
		if err := p.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		live := e.view(t)
		if want := x.model(); live.String() != want.String() {
			t.Fatalf("live\n got %s\nwant %s", live, want)
		}

		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
		var last int64
		killed := 0
		for killed < kills {
			child, done, out := startChild(t, b, e.prefix)
			// Kill it once it has made progress beyond the last kill's,
			// a few milliseconds later, at a random point.
			progressed := false
			deadline := time.Now().Add(time.Minute)
			for !progressed && time.Now().Before(deadline) {
				if s := building(t, p); s != nil && s.Applied > last {
					progressed = true
					break
				}
				if exited(done) {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			if !progressed {
				// It finished (or failed) before it could be killed.
				<-done
				if child.ProcessState.ExitCode() != 0 {
					t.Fatalf("rebuilder failed: %s", out)
				}
				break
			}
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
			if err := child.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-done
			killed++
			s := building(t, p)
			if s == nil {
				break // it switched just before the kill
			}
			if s.Generation.Number() != 2 || s.Applied < last {
				t.Fatalf("after kill %d: building %+v, previously at %d applied: want generation 2, never going back", killed, s, last)
			}
			// The checkpoint and the rows written agree: no batch half there.
			got := read(t, e.db, e.b.Quote(s.Generation.Table(e.prefix+"p_balances")), e.b.Quote(s.Generation.Table(e.prefix+"p_ledger")))
			if want := movesUpTo(t, e.store, s.Position); got.Ledger != want {
				t.Fatalf("after kill %d: %d ledger rows, but %d moves up to the checkpoint %s", killed, got.Ledger, want, s.Position)
			}
			last = s.Applied
		}
		// The last run, to the end.
		child, done, out := startChild(t, b, e.prefix)
		<-done
		if code := child.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("rebuilder exited %d: %s", code, out)
		}
		t.Logf("killed %d times; rebuilt %d events", killed, events)
		g, err := p.Live(ctx)
		if err != nil || g.Number() != 2 {
			t.Fatalf("live generation %v, %v; want the rebuilt 2", g, err)
		}
		if got := e.view(t); got.String() != live.String() {
			t.Errorf("rebuilt\n got %s\nwant the live output %s", got, live)
		}
	})
}

// startChild starts the rebuilder; done is closed once it has ended.
func startChild(t *testing.T, b sqltest.Backend, prefix string) (cmd *exec.Cmd, done chan struct{}, out *bytes.Buffer) {
	t.Helper()
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envKillChild+"="+b.Name, envKillPrefix+"="+prefix)
	out = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return cmd, done, out
}

func exited(done chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// movesUpTo counts the deposits and withdrawals in store up to pos.
func movesUpTo(t *testing.T, store eventstore.Store, pos eventstore.Position) int {
	t.Helper()
	n := 0
	for after := eventstore.Start; after.Less(pos); {
		events, err := store.ReadAll(context.Background(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 0 {
			t.Fatalf("the store ends at %s, before the checkpoint %s", after, pos)
		}
		for _, e := range events {
			if pos.Less(e.Position) {
				return n
			}
			if e.Type == "Deposited" || e.Type == "Withdrawn" {
				n++
			}
			after = e.Position
		}
	}
	return n
}

// building returns the generation being built, or nil.
func building(t *testing.T, p *projection.Projector) *projection.GenerationStatus {
	t.Helper()
	gens, err := p.Generations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gens {
		if g.State == "building" {
			return &g
		}
	}
	return nil
}
