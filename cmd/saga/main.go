package main

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/millrace/millrace/cqrs/outbox"
	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/saga"
	sagasql "github.com/millrace/millrace/saga/sql"
	"github.com/millrace/millrace/transports"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

const usage = `usage: saga -dsn DSN [-dialect postgres|mysql] [-table-prefix P] list|show|resume [flags] [id]

Lists, shows and resumes saga instances kept in PostgreSQL or MySQL.

  list     the instances of every saga, or of -saga, in -status
  show     one instance (-saga NAME ID): its state, steps and history
  resume   ask the running service to resume an instance that needs attention
           (-saga NAME ID; the transport from -config / $MILLRACE_CONFIG)
`

// options are the command line flags.
type options struct {
	dsn, dialect, prefix, config string
	saga, status, topic          string
	limit                        int
}

func (o *options) commonFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.dsn, "dsn", o.dsn, "the saga store's database `DSN` (default: $SAGA_DSN)")
	fs.StringVar(&o.dialect, "dialect", o.dialect, "`postgres or mysql` (default: from the DSN)")
	fs.StringVar(&o.prefix, "table-prefix", o.prefix, "the store's table `prefix`")
	fs.StringVar(&o.config, "config", o.config, "service config `file`, for resume (default: $"+framework.EnvConfigPath+")")
}

// command is saga with what a test replaces: the transport registry and
// how the configured transport is opened.
type command struct {
	transports func() (*transports.Registry, error)
	open       func(ctx context.Context, cfg *framework.Config, reg *transports.Registry, logger *slog.Logger) (transports.Transport, func(), error)
}

func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	return command{transports: framework.Transports, open: framework.OpenTransport}.run(ctx, args, env, stdout, stderr)
}

func (c command) run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	o := options{prefix: "millrace_", dsn: lookup(env, "SAGA_DSN")}
	global := flag.NewFlagSet("saga", flag.ContinueOnError)
	global.SetOutput(stderr)
	global.Usage = func() { fmt.Fprint(stderr, usage); global.PrintDefaults() }
	o.commonFlags(global)
	if err := global.Parse(args); err != nil {
		return exitCode(err)
	}
	if global.NArg() == 0 {
		global.Usage()
		return exitUsage
	}
	sub, rest := global.Arg(0), global.Args()[1:]
	fs := flag.NewFlagSet("saga "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.commonFlags(fs)
	fs.StringVar(&o.saga, "saga", "", "the saga's `name`")
	switch sub {
	case "list":
		fs.StringVar(&o.status, "status", "", "only instances in this `status`: running, compensating, needs_attention, completed, compensated, failed")
		fs.IntVar(&o.limit, "limit", 100, "at most `n` instances per saga (0: all)")
	case "show":
	case "resume":
		fs.StringVar(&o.topic, "topic", "", "the saga's control `topic` (default: saga.<name>)")
	default:
		fmt.Fprintf(stderr, "saga: unknown command %q; commands: list, show, resume\n", sub)
		return exitUsage
	}
	if err := fs.Parse(rest); err != nil {
		return exitCode(err)
	}
	var id string
	switch {
	case sub == "list" && fs.NArg() > 0:
		fmt.Fprintf(stderr, "saga list: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	case sub != "list" && (fs.NArg() != 1 || o.saga == ""):
		fmt.Fprintf(stderr, "saga %s: give -saga NAME and one instance id\n", sub)
		return exitUsage
	case sub != "list":
		id = fs.Arg(0)
	}
	if o.status != "" && !knownStatus(saga.Status(o.status)) {
		fmt.Fprintf(stderr, "saga list: -status %q: must be one of running, compensating, needs_attention, completed, compensated, failed\n", o.status)
		return exitUsage
	}
	store, closeDB, err := openStore(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "saga:", err)
		if errors.As(err, new(usageError)) {
			return exitUsage
		}
		return exitFail // the database's
	}
	defer closeDB()
	switch sub {
	case "list":
		err = list(ctx, stdout, store, o)
	case "show":
		err = show(ctx, stdout, store, o.saga, id)
	default:
		err = c.resume(ctx, stdout, stderr, env, store, o, id)
	}
	if err != nil {
		fmt.Fprintf(stderr, "saga %s: %v\n", sub, err)
		return exitFail
	}
	return exitOK
}

func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

func knownStatus(s saga.Status) bool {
	switch s {
	case saga.Running, saga.Compensating, saga.NeedsAttention, saga.Completed, saga.Compensated, saga.Failed:
		return true
	}
	return false
}

// usageError is an error in the command line, not the database's.
type usageError struct{ error }

// openStore opens the store the options name, read-only: it creates no
// table, and a missing one is an error naming it.
func openStore(ctx context.Context, o options) (*sagasql.Store, func(), error) {
	if o.dsn == "" {
		return nil, nil, usageError{errors.New("-dsn: no DSN given (nor $SAGA_DSN)")}
	}
	dialect, driver := outbox.Postgres, "pgx"
	switch {
	case o.dialect == "mysql", o.dialect == "" && !strings.HasPrefix(o.dsn, "postgres://") && !strings.HasPrefix(o.dsn, "postgresql://") && strings.Contains(o.dsn, "@tcp("):
		dialect, driver = outbox.MySQL, "mysql"
	case o.dialect == "", o.dialect == "postgres":
	default:
		return nil, nil, usageError{fmt.Errorf("-dialect %q: must be postgres or mysql", o.dialect)}
	}
	db, err := sql.Open(driver, o.dsn)
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("-dsn: %w", err)}
	}
	cfg := sagasql.DefaultConfig(dialect)
	cfg.TablePrefix = o.prefix
	if err := cfg.Validate(); err != nil {
		_ = db.Close()
		return nil, nil, usageError{err}
	}
	store, err := sagasql.New(ctx, db, cfg, nil)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return store, func() { _ = db.Close() }, nil
}

// list prints the instances, a line each.
func list(ctx context.Context, w io.Writer, store *sagasql.Store, o options) error {
	names := []string{o.saga}
	if o.saga == "" {
		var err error
		if names, err = store.Sagas(ctx); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SAGA\tID\tSTATUS\tVERSION\tUPDATED\tREASON")
	for _, name := range names {
		ins, err := store.List(ctx, name, saga.Status(o.status), o.limit)
		if err != nil {
			return err
		}
		for _, in := range ins {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", in.Saga, in.ID, in.Status, in.Version, in.Updated.Format(time.RFC3339), cmp.Or(in.Attention, in.Reason))
		}
	}
	return tw.Flush()
}

// show prints one instance: state, steps, history.
func show(ctx context.Context, w io.Writer, store *sagasql.Store, name, id string) error {
	in, err := store.Load(ctx, name, id)
	if err != nil {
		return fmt.Errorf("%s %s: %w", name, id, err)
	}
	fmt.Fprintf(w, "saga     %s\nid       %s\nstatus   %s\nversion  %d\ncreated  %s\nupdated  %s\n",
		in.Saga, in.ID, in.Status, in.Version, in.Created.Format(time.RFC3339Nano), in.Updated.Format(time.RFC3339Nano))
	if in.Attention != "" {
		fmt.Fprintf(w, "attention %s\n", in.Attention)
	}
	if in.Reason != "" {
		fmt.Fprintf(w, "reason   %s\n", in.Reason)
	}
	fmt.Fprintf(w, "state    %s\n\nsteps\n", in.State)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range in.Steps {
		status := string(r.Status)
		if status == "" {
			status = "waiting"
		}
		fmt.Fprintf(tw, "  %s\t%s\t", r.Name, status)
		if r.Attempt > 0 {
			fmt.Fprintf(tw, "compensation attempts %d", r.Attempt)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nhistory")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range in.History {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339Nano), e.Step, e.What, e.MessageType, e.MessageID, e.Detail)
	}
	return tw.Flush()
}

// resume publishes a resume request for the instance, which must need
// attention.
func (c command) resume(ctx context.Context, stdout, stderr io.Writer, env []string, store *sagasql.Store, o options, id string) error {
	in, err := store.Load(ctx, o.saga, id)
	if err != nil {
		return fmt.Errorf("%s %s: %w", o.saga, id, err)
	}
	if in.Status != saga.NeedsAttention {
		return fmt.Errorf("%s %s is %s: only an instance that needs attention can be resumed", o.saga, id, in.Status)
	}
	path := o.config
	if path == "" {
		path = lookup(env, framework.EnvConfigPath)
	}
	reg, err := c.transports()
	if err != nil {
		return err
	}
	cfg, err := framework.Load(path, env, reg)
	if err != nil {
		return err
	}
	tr, cleanup, err := c.open(ctx, cfg, reg, framework.NewLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer cleanup()
	topic := o.topic
	if topic == "" {
		topic = saga.DefaultControlTopic(o.saga)
	}
	msg := saga.ResumeMessage(o.saga, id)
	if err := tr.Publisher().Publish(topic, msg); err != nil {
		return fmt.Errorf("publish the resume request to %s: %w", topic, err)
	}
	fmt.Fprintf(stdout, "resume of %s %s requested on %s (message %s)\n", o.saga, id, topic, msg.UUID)
	return nil
}

// lookup returns the value of key in env ("KEY=value" entries), or "".
func lookup(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}
