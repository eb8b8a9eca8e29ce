package projection

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/millrace/millrace/cqrs/eventstore"
	sqlstore "github.com/millrace/millrace/cqrs/eventstore/sql"
)

// GenerationStatus is one generation of a projection, as
// [Projector.Generations] reads it.
type GenerationStatus struct {
	Generation Generation
	// State is "live", "building", "creating" (its tables are being
	// created) or "retired" (replaced, its tables about to be dropped).
	State string
	// Position is that of the last event applied to it.
	Position eventstore.Position
	// Applied counts the events applied to it.
	Applied int64
}

// Generations returns the projection's generations, in order.
func (p *Projector) Generations(ctx context.Context) ([]GenerationStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	rows, err := p.db.QueryContext(ctx, p.st.generations, p.def.Name)
	if err != nil {
		return nil, p.fail(ctx, "read the generations", err)
	}
	defer func() { _ = rows.Close() }()
	var out []GenerationStatus
	for rows.Next() {
		var s GenerationStatus
		var ptx int64
		if err := rows.Scan(&s.Generation.n, &s.State, &ptx, &s.Position.Seq, &s.Applied); err != nil {
			return nil, p.fail(ctx, "read the generations", err)
		}
		s.Position.Tx = uint64(ptx)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, p.fail(ctx, "read the generations", err)
	}
	return out, nil
}

// Live returns the live generation: its tables are the ones readers' views
// show.
func (p *Projector) Live(ctx context.Context) (Generation, error) {
	gens, err := p.Generations(ctx)
	if err != nil {
		return Generation{}, err
	}
	for _, g := range gens {
		if g.State == stateLive {
			return g.Generation, nil
		}
	}
	return Generation{}, fmt.Errorf("projection %s: no live generation", p.def.Name)
}

// Rebuild builds the read model again from the first event, into the
// tables of a new generation, while the live generation keeps serving
// readers and following the store; once the new generation has caught up,
// one transaction applies the last events to it and makes it live (the
// views readers query show it from then on), and the old generation's
// tables are dropped. It returns when the new generation is live, or with
// ctx's error.
//
// A rebuild is resumable: each batch commits with the new generation's
// checkpoint, so a Rebuild after the process was killed (or ctx ended)
// goes on from where the last one stopped, with the generation it had
// begun, its tables as the Schema of then created them.
func (p *Projector) Rebuild(ctx context.Context) error {
	if p.store == nil {
		return errNoStore
	}
	gen, err := p.beginRebuild(ctx)
	if err != nil {
		return err
	}
	for {
		for {
			_, caughtUp, err := p.batch(ctx, gen)
			if errors.Is(err, errSwitched) {
				return p.cleanup(ctx)
			}
			if err != nil {
				return err
			}
			if caughtUp {
				break
			}
		}
		switched, err := p.switchTo(ctx, gen)
		if err != nil {
			return err
		}
		if switched {
			return p.cleanup(ctx)
		}
	}
}

// beginRebuild returns the generation a rebuild fills: the one being built,
// or a new one, created.
func (p *Projector) beginRebuild(ctx context.Context) (int, error) {
	var gen int
	err := p.admin(ctx, func(ctx context.Context, c *sql.Conn) error {
		gens, err := p.Generations(ctx)
		if err != nil {
			return err
		}
		next := 1
		for _, g := range gens {
			switch g.State {
			case stateBuilding:
				gen = g.Generation.n
				return nil
			case stateCreating:
				gen = g.Generation.n
				return p.createGeneration(ctx, c, gen, stateBuilding)
			}
			next = max(next, g.Generation.n+1)
		}
		gen = next
		return p.createGeneration(ctx, c, gen, stateBuilding)
	})
	return gen, err
}

// switchTo makes generation gen live if it is at most maxSwitchBatches
// batches behind the store: it applies those in the same transaction. It
// reports false if gen is further behind.
func (p *Projector) switchTo(ctx context.Context, gen int) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	tx, err := p.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return false, p.fail(ctx, "begin", err)
	}
	defer func() { _ = tx.Rollback() }()
	// The live lock first, as live batches take it: they wait for the
	// switch, then apply to the generation it made live.
	if _, err := p.lockHead(ctx, tx); err != nil {
		return false, err
	}
	if err := p.lockGeneration(ctx, tx, gen); err != nil {
		return false, err
	}
	state, pos, err := p.checkpoint(ctx, tx, gen)
	if err != nil {
		return false, err
	}
	if state != stateBuilding {
		return state == stateLive, nil
	}
	g := Generation{n: gen}
	var applied []eventstore.Event
	for i := 0; ; i++ {
		if i == maxSwitchBatches {
			return false, nil
		}
		events, err := p.store.ReadAll(ctx, pos, p.cfg.BatchSize)
		if err != nil {
			return false, fmt.Errorf("projection %s: %w", p.def.Name, err)
		}
		if len(events) == 0 {
			break
		}
		if err := p.apply(ctx, tx, g, events); err != nil {
			return false, err
		}
		pos = events[len(events)-1].Position
		applied = append(applied, events...)
	}
	if len(applied) > 0 {
		if err := p.advance(ctx, tx, gen, applied); err != nil {
			return false, err
		}
	}
	for _, q := range []struct {
		stmt string
		args []any
	}{
		{p.st.retire, []any{p.def.Name}},
		{p.st.setState, []any{stateLive, p.def.Name, gen}},
		{p.st.setHead, []any{gen, p.def.Name}},
	} {
		if _, err := tx.ExecContext(ctx, q.stmt, q.args...); err != nil {
			return false, p.fail(ctx, "switch to generation "+fmt.Sprint(gen), err)
		}
	}
	if p.cfg.Dialect == sqlstore.Postgres {
		// The views switch with the head, in the same transaction.
		if err := execAll(ctx, tx, p.st.views(p.def.Tables, g)); err != nil {
			return false, p.fail(ctx, "switch the views", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, p.fail(ctx, "commit the switch", err)
	}
	return true, nil
}

// init creates the tables, the first generation of a new projection, and
// the views of the live one, and drops retired generations.
func (p *Projector) init(ctx context.Context) error {
	if err := p.adminLock(ctx, "schema", func(ctx context.Context, c *sql.Conn) error {
		return execAll(ctx, c, p.st.schema)
	}); err != nil {
		return err
	}
	return p.admin(ctx, func(ctx context.Context, c *sql.Conn) error {
		var live int
		err := c.QueryRowContext(ctx, p.st.bind("SELECT generation FROM "+p.st.heads+" WHERE projection = ?"), p.def.Name).Scan(&live)
		if errors.Is(err, sql.ErrNoRows) {
			if err := p.createGeneration(ctx, c, 1, stateLive); err != nil {
				return err
			}
			if _, err := c.ExecContext(ctx, p.st.insertHead, p.def.Name, 1); err != nil {
				return p.fail(ctx, "create the head", err)
			}
			live = 1
		} else if err != nil {
			return p.fail(ctx, "read the live generation", err)
		}
		// On MySQL a switch points the views after its commit; a process
		// killed in between left them on the old generation.
		if err := execAll(ctx, c, p.st.views(p.def.Tables, Generation{n: live})); err != nil {
			return p.fail(ctx, "create the views", err)
		}
		return p.dropRetired(ctx, c)
	})
}

// createGeneration creates generation gen's tables (again, if an earlier
// attempt was cut short) and leaves it in state.
func (p *Projector) createGeneration(ctx context.Context, c *sql.Conn, gen int, state string) error {
	g := Generation{n: gen}
	if _, err := c.ExecContext(ctx, p.st.insertGen, p.def.Name, gen, stateCreating); err != nil {
		return p.fail(ctx, fmt.Sprintf("create generation %d", gen), err)
	}
	if err := p.dropTables(ctx, c, g); err != nil {
		return err
	}
	var schema []string
	if p.def.Schema != nil {
		schema = p.def.Schema(g)
	}
	if err := execAll(ctx, c, schema); err != nil {
		return p.fail(ctx, fmt.Sprintf("create the tables of generation %d (Schema)", gen), err)
	}
	if _, err := c.ExecContext(ctx, p.st.setState, state, p.def.Name, gen); err != nil {
		return p.fail(ctx, fmt.Sprintf("create generation %d", gen), err)
	}
	return nil
}

func (p *Projector) dropTables(ctx context.Context, c *sql.Conn, g Generation) error {
	for _, t := range slices.Backward(p.def.Tables) {
		if _, err := c.ExecContext(ctx, fmt.Sprintf(p.st.dropTable, p.st.quote(g.Table(t)))); err != nil {
			return p.fail(ctx, "drop "+g.Table(t), err)
		}
	}
	return nil
}

// cleanup points the views at the live generation and drops retired ones.
func (p *Projector) cleanup(ctx context.Context) error {
	return p.admin(ctx, func(ctx context.Context, c *sql.Conn) error {
		if p.cfg.Dialect == sqlstore.MySQL {
			var live int
			if err := c.QueryRowContext(ctx, "SELECT generation FROM "+p.st.heads+" WHERE projection = ?", p.def.Name).Scan(&live); err != nil {
				return p.fail(ctx, "read the live generation", err)
			}
			if err := execAll(ctx, c, p.st.views(p.def.Tables, Generation{n: live})); err != nil {
				return p.fail(ctx, "switch the views", err)
			}
		}
		return p.dropRetired(ctx, c)
	})
}

func (p *Projector) dropRetired(ctx context.Context, c *sql.Conn) error {
	gens, err := p.Generations(ctx)
	if err != nil {
		return err
	}
	for _, g := range gens {
		if g.State != stateRetired {
			continue
		}
		if err := p.dropTables(ctx, c, g.Generation); err != nil {
			return err
		}
		if _, err := c.ExecContext(ctx, p.st.deleteGen, p.def.Name, g.Generation.n); err != nil {
			return p.fail(ctx, "forget a retired generation", err)
		}
	}
	return nil
}

// admin runs fn on a connection holding the projection's administrative
// lock (a session lock, as MySQL commits at every DDL statement): table
// creation, rebuild start, view switches and drops are serialised across
// processes.
func (p *Projector) admin(ctx context.Context, fn func(ctx context.Context, c *sql.Conn) error) error {
	return p.adminLock(ctx, p.def.Name, fn)
}

func (p *Projector) adminLock(ctx context.Context, what string, fn func(ctx context.Context, c *sql.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.CallTimeout)
	defer cancel()
	c, err := p.db.Conn(ctx)
	if err != nil {
		return p.fail(ctx, "connect", err)
	}
	defer func() { _ = c.Close() }()
	if p.cfg.Dialect == sqlstore.MySQL {
		name := p.adminName() + "_" + fmt.Sprintf("%x", lockKey(what))[:8]
		var got sql.NullInt64
		if err := c.QueryRowContext(ctx, p.st.lockAdmin, name, int(p.cfg.CallTimeout.Seconds())+1).Scan(&got); err != nil {
			return p.fail(ctx, "lock", err)
		}
		if got.Int64 != 1 {
			return p.fail(ctx, "lock", fmt.Errorf("GET_LOCK(%q) timed out", name))
		}
		defer func() { _, _ = c.ExecContext(context.WithoutCancel(ctx), p.st.unlockAdmin, name) }()
	} else {
		key := lockKey("millrace projection admin " + p.cfg.TablePrefix + " " + what)
		if _, err := c.ExecContext(ctx, p.st.lockAdmin, key); err != nil {
			return p.fail(ctx, "lock", err)
		}
		defer func() { _, _ = c.ExecContext(context.WithoutCancel(ctx), p.st.unlockAdmin, key) }()
	}
	return fn(ctx, c)
}
