package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/millrace/millrace/transports/amqp"
)

// ceilingPrefetch and ceilingAckEvery are the consumer settings of the
// RabbitMQ ceiling row: a large prefetch, and one basic.ack (multiple) per
// ceilingAckEvery messages.
const (
	ceilingPrefetch = 250
	ceilingAckEvery = 60
)

// amqpCeiling measures what the broker itself takes and gives on this
// machine, with amqp091-go and no framework: o.publishers goroutines
// publish persistent messages, batch per round, over 4 confirm-mode
// channels to a durable version 2 queue and wait for the confirms; then
// one consumer drains the queue with prefetch 250, acking 60 messages at a
// time. The messages carry the same headers as millrace's. Whatever a
// client does per message, RabbitMQ cannot go faster than this. It dials
// cfg.URL without the transport's TLS settings (client certificates, own
// CA).
func amqpCeiling(ctx context.Context, cfg *amqp.Config, o options, batch int) (pubRate, conRate float64, err error) {
	conn, err := amqp091.Dial(cfg.URL)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	admin, err := conn.Channel()
	if err != nil {
		return 0, 0, err
	}
	name := fresh("bench.ceiling")
	if err := admin.ExchangeDeclare(name, amqp091.ExchangeFanout, true, false, false, false, nil); err != nil {
		return 0, 0, err
	}
	defer func() { _ = admin.ExchangeDelete(name, false, false) }()
	if _, err := admin.QueueDeclare(name, true, false, false, false, amqp091.Table{"x-queue-version": int32(2)}); err != nil {
		return 0, 0, err
	}
	defer func() { _, _ = admin.QueueDelete(name, false, false, false) }()
	if err := admin.QueueBind(name, "", name, false, nil); err != nil {
		return 0, 0, err
	}

	chans := make([]*amqp091.Channel, 4)
	for i := range chans {
		if chans[i], err = conn.Channel(); err != nil {
			return 0, 0, err
		}
		if err := chans[i].Confirm(false); err != nil {
			return 0, 0, err
		}
	}
	var next atomic.Uint32
	payload := []byte(`{"order_id":"order-00000000","customer":"customer-0042","cents":1000,"note":"leave at the door"}`)
	pubRate, err = publishAll(o, batch, func(_, count int) error {
		ch := chans[int(next.Add(1))%len(chans)]
		confirms := make([]*amqp091.DeferredConfirmation, 0, count)
		for range count {
			id := watermill.NewUUID()
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, name, "", false, false, amqp091.Publishing{
				DeliveryMode: amqp091.Persistent, MessageId: id, Body: payload,
				Headers: amqp091.Table{
					"_watermill_message_uuid": id, "message_type": "main.order", "content_type": "application/json",
					"correlation_id": id, "published_by": "bench", "published_at": time.Now().UTC().Format(time.RFC3339Nano),
				},
			})
			if err != nil {
				return err
			}
			confirms = append(confirms, dc)
		}
		for _, dc := range confirms {
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return errors.Join(err, errors.New("message not confirmed"))
			}
		}
		return nil
	})
	if err != nil {
		return pubRate, 0, err
	}

	ch, err := conn.Channel()
	if err != nil {
		return pubRate, 0, err
	}
	if err := ch.Qos(ceilingPrefetch, 0, false); err != nil {
		return pubRate, 0, err
	}
	deliveries, err := ch.Consume(name, "", false, false, false, false, nil)
	if err != nil {
		return pubRate, 0, err
	}
	c := newCounter(o.n)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; i <= o.n; i++ {
			d, ok := <-deliveries
			if !ok {
				return
			}
			c.hit()
			if i%ceilingAckEvery == 0 || i == o.n {
				_ = d.Ack(true)
			}
		}
	})
	err = c.wait(o.timeout)
	_ = ch.Close() // ends the consumer if it timed out
	wg.Wait()
	if err != nil {
		return pubRate, 0, fmt.Errorf("broker ceiling: %w", err)
	}
	return pubRate, c.rate(), nil
}
