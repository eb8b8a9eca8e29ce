// Command rabbitclean deletes what test runs left on the local RabbitMQ:
// every queue without consumers and every exchange but the broker's own, in
// vhost "/". CI runs it before and after the tests, so that a machine's
// broker does not grow by the thousand queues each run's tests declare
// (and rabbitmqctl, which the tests call, does not slow down with them).
// It is for a CI machine only: it deletes queues a stopped service would
// want back.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "rabbitclean:", err)
		os.Exit(1)
	}
}

func list(ctx context.Context, what string, columns ...string) ([][]string, error) {
	args := append([]string{"-q", "--no-table-headers", "list_" + what}, columns...)
	out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("rabbitmqctl list_%s: %w", what, err)
	}
	var rows [][]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == len(columns) {
			rows = append(rows, f)
		}
	}
	return rows, sc.Err()
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	queues, err := list(ctx, "queues", "name", "consumers")
	if err != nil {
		return err
	}
	exchanges, err := list(ctx, "exchanges", "name")
	if err != nil {
		return err
	}
	conn, err := amqp091.DialConfig("amqp://guest:guest@127.0.0.1:5672/", amqp091.Config{Dial: amqp091.DefaultDial(10 * time.Second)})
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	// ifUnused: a queue that gained a consumer, or an exchange that gained
	// a binding, since the listing is kept. The broker closes the channel on
	// such a refusal: open another and go on.
	refused := func(err error) error {
		var e *amqp091.Error
		if errors.As(err, &e) && e.Code == amqp091.PreconditionFailed {
			ch, err = conn.Channel()
			return err
		}
		return err
	}
	var nq, nx int
	for _, q := range queues {
		if q[1] != "0" {
			continue
		}
		if _, err := ch.QueueDelete(q[0], true, false, false); err != nil {
			if err := refused(err); err != nil {
				return fmt.Errorf("delete queue %s: %w", q[0], err)
			}
			continue
		}
		nq++
	}
	for _, x := range exchanges {
		if strings.HasPrefix(x[0], "amq.") {
			continue
		}
		if err := ch.ExchangeDelete(x[0], true, false); err != nil {
			if err := refused(err); err != nil {
				return fmt.Errorf("delete exchange %s: %w", x[0], err)
			}
			continue
		}
		nx++
	}
	fmt.Printf("deleted %d idle queues and %d exchanges left by earlier runs\n", nq, nx)
	return nil
}
