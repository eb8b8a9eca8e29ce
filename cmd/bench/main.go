package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

func main() {
	os.Exit(command(context.Background(), os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// command runs bench with args (without the program name) and returns its
// exit status: 0 when every measurement succeeded and for -help or -h
// (which print the usage), 1 otherwise, with the error on stderr.
func command(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, env, stdout)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "bench:", err)
	return 1
}

// options are the command's flags.
type options struct {
	transports   []string
	n            int
	publishers   int
	batch        int
	kafkaBrokers string
	timeout      time.Duration
	cpuProfile   string
	outbox       string // measure the outbox in this database instead
}

// allTransports are the transports -transport all measures, in order.
var allTransports = []string{"memory", "kafka", "amqp", "postgres", "mysql"}

const usage = `usage: go run ./cmd/bench [flags]

Measures publish and consume throughput of millrace's transports against raw
Watermill on the same broker (see "go doc ./cmd/bench").

`

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	var o options
	which := fs.String("transport", "all", "transport to measure: "+strings.Join(allTransports, ", ")+", or all")
	fs.IntVar(&o.n, "n", 20000, "messages per measurement")
	fs.IntVar(&o.publishers, "publishers", 16, "goroutines publishing at once")
	fs.IntVar(&o.batch, "batch", 100, "messages per Publish call in the batched row (1: no batched row)")
	fs.StringVar(&o.kafkaBrokers, "kafka-brokers", "", "comma-separated Kafka brokers (default: an in-process kfake broker)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up on one measurement after this long")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&o.outbox, "outbox", "", "measure the transactional outbox in this database (postgres or mysql) instead: relayed to Kafka and RabbitMQ, commit-to-broker latency, a handler with inbox and outbox")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.n < 1:
		return o, fmt.Errorf("-n %d: must be at least 1", o.n)
	case o.publishers < 1:
		return o, fmt.Errorf("-publishers %d: must be at least 1", o.publishers)
	case o.batch < 1:
		return o, fmt.Errorf("-batch %d: must be at least 1", o.batch)
	}
	if *which == "all" {
		o.transports = allTransports
	} else {
		for _, t := range strings.Split(*which, ",") {
			if !slices.Contains(allTransports, t) {
				return o, fmt.Errorf("-transport %q: known transports are %s, or all", t, strings.Join(allTransports, ", "))
			}
			o.transports = append(o.transports, t)
		}
	}
	return o, nil
}

// row is one line of the result table.
type row struct {
	transport, side string
	publish         float64 // msg/s, 0: not measured
	consume         float64
}

func run(ctx context.Context, args, env []string, out io.Writer) error {
	o, err := parseFlags(args, out)
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintf(out, "millrace bench: %d messages, %d publishers, %s, %d CPUs, %s\n", o.n, o.publishers, cpuModel(), runtime.NumCPU(), runtime.Version())
	if o.outbox != "" {
		return runOutbox(ctx, o.outbox, o, env, out)
	}
	var rows []row
	var errs []error
	for _, name := range o.transports {
		t, err := newTarget(ctx, name, o, env)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		got, err := t.measure(ctx, o)
		t.close()
		rows = append(rows, got...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	printTable(out, rows)
	return errors.Join(errs...)
}

func printTable(out io.Writer, rows []row) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "transport\tside\tpublish msg/s\tconsume msg/s\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", r.transport, r.side, rate(r.publish), rate(r.consume))
	}
	_ = tw.Flush()
}

func rate(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

// cpuModel returns the CPU's model name from /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
