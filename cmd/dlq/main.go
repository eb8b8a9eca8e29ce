package main

import (
	"context"
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

	"github.com/millrace/millrace/framework"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/middleware/dlq"
	"github.com/millrace/millrace/transports"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args (without the program name) with
// environment env and returns the exit status.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	return command{transports: framework.Transports, open: openTransport}.run(ctx, args, env, stdout, stderr)
}

// command is dlq with the two things a test replaces: the transport
// registry, and how the configured transport is opened (an in-memory broker
// is empty when opened anew, so tests hand in one they seeded).
type command struct {
	transports func() (*transports.Registry, error)
	open       func(ctx context.Context, cfg *framework.Config, reg *transports.Registry, logger *slog.Logger) (transports.Transport, func(), error)
}

// openTransport is framework.OpenTransport, with a note that a memory
// broker opened here cannot hold the service's messages.
func openTransport(ctx context.Context, cfg *framework.Config, reg *transports.Registry, logger *slog.Logger) (transports.Transport, func(), error) {
	if cfg.Transport.Kind == "memory" {
		logger.Warn("transport memory keeps messages inside the service's process; dlq opened an empty broker of its own")
	}
	return framework.OpenTransport(ctx, cfg, reg, logger)
}

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// options are the command line flags.
type options struct {
	config      string
	poisonTopic string
	all         bool
	filter      dlq.Filter
}

const usage = `usage: dlq [-config FILE] [-poison-topic TOPIC] list|replay [filters]

Lists or replays the messages of a millrace service's poison queue.

  list     print the entries that match the filters
  replay   publish them back to their original topics (no filter: needs -all)

Run "dlq list -h" or "dlq replay -h" for the filters.
`

func (c command) run(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	var o options
	global := flag.NewFlagSet("dlq", flag.ContinueOnError)
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
	if sub != "list" && sub != "replay" {
		fmt.Fprintf(stderr, "dlq: unknown command %q; commands: list, replay\n", sub)
		return exitUsage
	}

	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o.commonFlags(fs)
	o.filterFlags(fs)
	if sub == "replay" {
		fs.BoolVar(&o.all, "all", false, "replay every entry of the poison topic (needed when no filter is given)")
	}
	if err := fs.Parse(rest); err != nil {
		return exitCode(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dlq %s: unexpected argument %q (flags come before it)\n", sub, fs.Arg(0))
		return exitUsage
	}
	if sub == "replay" && o.filter.IsZero() && !o.all {
		fmt.Fprintln(stderr, "dlq replay: no filter given; pass -all to replay every entry of the poison topic")
		return exitUsage
	}

	tr, browser, poisonTopic, cleanup, err := c.connect(ctx, o, env, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "dlq:", err)
		return exitFail
	}
	defer cleanup()

	switch sub {
	case "list":
		err = list(ctx, stdout, browser, poisonTopic, o.filter)
	default:
		err = replay(ctx, stdout, browser, tr, poisonTopic, o.filter)
	}
	if err != nil {
		fmt.Fprintf(stderr, "dlq %s: %v\n", sub, err)
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

// commonFlags are accepted before and after the command name.
func (o *options) commonFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.config, "config", o.config, "service config `file` (default: $"+framework.EnvConfigPath+", else none)")
	fs.StringVar(&o.poisonTopic, "poison-topic", o.poisonTopic, "poison `topic` (default: middleware.poison.topic from the config, else <service.name>.poison)")
}

func (o *options) filterFlags(fs *flag.FlagSet) {
	f := &o.filter
	fs.StringVar(&f.Handler, "handler", "", "only entries of this handler `name`")
	fs.StringVar(&f.Topic, "topic", "", "only entries whose original topic is `name`")
	fs.StringVar(&f.ErrorContains, "error", "", "only entries whose reason contains `text` (ignoring case)")
	fs.Func("since", "only entries that last failed at or after `time` (RFC 3339)", timeFlag(&f.Since))
	fs.Func("until", "only entries that last failed before `time` (RFC 3339)", timeFlag(&f.Until))
	fs.Func("id", "only the message with this `id` (repeatable)", listFlag(&f.IDs))
	fs.Func("exclude-id", "never the message with this `id` (repeatable)", listFlag(&f.ExcludeIDs))
}

func timeFlag(dst *time.Time) func(string) error {
	return func(s string) error {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return fmt.Errorf("%q is not an RFC 3339 time such as 2026-11-23T10:00:00Z", s)
		}
		*dst = t
		return nil
	}
}

func listFlag(dst *[]string) func(string) error {
	return func(s string) error {
		*dst = append(*dst, s)
		return nil
	}
}

// connect loads the config, opens the transport and checks that it can be
// browsed.
func (c command) connect(ctx context.Context, o options, env []string, stderr io.Writer) (transports.Transport, dlq.Browser, string, func(), error) {
	path := o.config
	if path == "" {
		path = lookup(env, framework.EnvConfigPath)
	}
	reg, err := c.transports()
	if err != nil {
		return nil, nil, "", nil, err
	}
	cfg, err := framework.Load(path, env, reg)
	if err != nil {
		return nil, nil, "", nil, err
	}
	poisonTopic := o.poisonTopic
	if poisonTopic == "" {
		poisonTopic = cfg.Middleware.Poison.Topic
	}
	if poisonTopic == "" {
		poisonTopic = middleware.TopicFor(cfg.Service.Name)
	}
	tr, cleanup, err := c.open(ctx, cfg, reg, framework.NewLogger(cfg, stderr))
	if err != nil {
		return nil, nil, "", nil, err
	}
	browser, ok := tr.(dlq.Browser)
	if !ok {
		cleanup()
		return nil, nil, "", nil, fmt.Errorf("transport %q cannot read the poison topic without consuming it (it does not implement dlq.Browser), so dlq cannot list or replay on it", cfg.Transport.Kind)
	}
	return tr, browser, poisonTopic, cleanup, nil
}

// lookup returns the value of variable name in env ("" if unset).
func lookup(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val // the last one wins, as in os.Getenv on a duplicated variable
		}
	}
	return v
}

func list(ctx context.Context, w io.Writer, b dlq.Browser, poisonTopic string, f dlq.Filter) error {
	entries, err := dlq.List(ctx, b, poisonTopic, f)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		fmt.Fprintf(w, "no matching entries in poison topic %s\n", poisonTopic)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tHANDLER\tTOPIC\tATTEMPTS\tREPLAYS\tLAST FAILURE\tREASON")
	for _, e := range entries {
		last := "-"
		if !e.LastFailedAt.IsZero() {
			last = e.LastFailedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n",
			cell(e.Message.UUID), cell(e.Handler), cell(e.Topic), e.Attempts, e.ReplayCount, last, cell(e.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d entries in poison topic %s\n", len(entries), poisonTopic)
	return nil
}

// cell makes s fit one table cell: "-" if empty, whitespace runs (newlines
// and tabs of multi-line errors) as one space.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Join(strings.Fields(s), " ")
}

func replay(ctx context.Context, w io.Writer, b dlq.Browser, tr transports.Transport, poisonTopic string, f dlq.Filter) error {
	report, err := dlq.Replay(ctx, b, tr.Publisher(), poisonTopic, f)
	for _, r := range report.Replayed {
		fmt.Fprintf(w, "replayed %s to %s (replay %d)\n", r.ID, r.Topic, r.ReplayCount)
	}
	for _, s := range report.Skipped {
		fmt.Fprintf(w, "skipped  %s: %s\n", s.ID, s.Reason)
	}
	fmt.Fprintf(w, "%d replayed, %d skipped from poison topic %s\n", len(report.Replayed), len(report.Skipped), poisonTopic)
	return err
}
