package sql

import (
	"context"
	"errors"
	"fmt"
	"sync"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/transports"
)

// groupTopic is the private topic of one consumer group of topic: Delay
// publishes there, and only that group's subscriptions read it.
func groupTopic(topic, group string) string {
	return topic + ".__group." + group
}

// groupSubscriber subscribes as one consumer group. Each Subscribe reads two
// topics with watermill-sql subscriptions, the topic itself and the
// group's private topic, and merges them into one channel. Acks and nacks
// go straight to the message's own subscription. Order holds within each of
// the two topics, not between them.
//
// Each Subscribe call gets watermill-sql subscribers of its own, with a
// schema bound to the topic (decodeRow needs it for ids of foreign rows).
// Their statements run through beginner: bounded by query_timeout,
// interrupted by Close while they read, never while they settle acks.
type groupSubscriber struct {
	t     *Transport
	group string

	stop       context.Context // done once Close starts
	cancelStop context.CancelFunc

	// subs are closed concurrently, for the reason the transport's are.
	subs transports.Subscribers[*subscription]
	wg   sync.WaitGroup
}

func newGroupSubscriber(t *Transport, group string) *groupSubscriber {
	stop, cancel := context.WithCancel(context.Background())
	s := &groupSubscriber{t: t, group: group, stop: stop, cancelStop: cancel}
	s.subs.ErrClosed, s.subs.Concurrent = errClosed, true
	return s
}

// subscription is what one Subscribe call reads: the watermill-sql
// subscribers of the topic and of the group's private topic, merged into
// out.
type subscription struct {
	main, private *wsql.Subscriber
	out           chan *message.Message
}

// Close closes both watermill-sql subscribers at once.
func (s *subscription) Close() error {
	var privateErr error
	var wg sync.WaitGroup
	wg.Go(func() { privateErr = s.private.Close() })
	err := s.main.Close()
	wg.Wait()
	return errors.Join(err, privateErr)
}

// newSub returns a watermill-sql subscriber of the group to table topic
// tableTopic (topic itself or the group's private topic), for the
// subscription that ctx runs.
func (s *groupSubscriber) newSub(ctx context.Context, topic, tableTopic string) (*wsql.Subscriber, error) {
	ack := s.t.cfg.AckDeadline
	logger := &subscriptionLogger{
		log:     s.t.log,
		topic:   topic,
		group:   s.group,
		delayed: tableTopic != topic,
		ending:  func() bool { return ctx.Err() != nil || s.stop.Err() != nil },
	}
	return wsql.NewSubscriber(beginner{t: s.t, stop: s.stop}, wsql.SubscriberConfig{
		ConsumerGroup:  s.group,
		AckDeadline:    &ack,
		PollInterval:   s.t.cfg.PollInterval,
		ResendInterval: s.t.cfg.ResendInterval,
		RetryInterval:  s.t.cfg.PollInterval,
		SchemaAdapter:  s.t.schema.forTopic(tableTopic),
		OffsetsAdapter: s.t.schema.offsets(),
	}, logger)
}

// Subscribe consumes topic and the group's private topic as consumer group
// group. The returned channel closes when ctx is done or the subscriber is
// closed; the offset of the messages acked until then is committed, and
// unacked messages are delivered again later. Database errors, a statement
// that timed out (query_timeout) included, do not end the subscription: it
// logs them and queries again after poll_interval.
func (s *groupSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := checkTopic(topic); err != nil {
		return nil, fmt.Errorf("%s: subscribe: %w", s.t.dialect, err)
	}
	sub, err := s.subs.Add(func() (*subscription, error) { return s.subscribe(ctx, topic) })
	if err != nil {
		return nil, err
	}
	return sub.out, nil
}

// subscribe starts the subscription of Subscribe; s.subs is locked.
func (s *groupSubscriber) subscribe(ctx context.Context, topic string) (*subscription, error) {
	private := groupTopic(topic, s.group)
	if err := s.prepare(ctx, topic); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	mainSub, err := s.newSub(ctx, topic, topic)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s: subscriber: %w", s.t.dialect, err)
	}
	privateSub, err := s.newSub(ctx, topic, private)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s: subscriber: %w", s.t.dialect, err)
	}

	mainCh, err := mainSub.Subscribe(ctx, topic)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s: subscribe to %s: %w", s.t.dialect, topic, err)
	}
	privateCh, err := privateSub.Subscribe(ctx, private)
	if err != nil {
		cancel() // ends the first subscription
		_ = mainSub.Close()
		return nil, fmt.Errorf("%s: subscribe to %s: %w", s.t.dialect, private, err)
	}

	out := make(chan *message.Message)
	var both sync.WaitGroup
	both.Add(2)
	s.wg.Add(3)
	forward := func(in <-chan *message.Message) {
		defer s.wg.Done()
		defer both.Done()
		for msg := range in {
			select {
			case out <- msg:
			case <-ctx.Done():
				// Dropped unacked: the SQL subscription rolls back and
				// the message is delivered again.
			case <-s.stop.Done():
				// Close: the SQL subscription ends too, committing
				// what was acked.
			}
		}
	}
	go forward(mainCh)
	go forward(privateCh)
	go func() {
		defer s.wg.Done()
		both.Wait()
		cancel()
		close(out)
	}()
	return &subscription{main: mainSub, private: privateSub, out: out}, nil
}

// prepare creates the tables of topic and of the group's private topic,
// and the group's offsets rows where they must exist before it reads (see
// ensureGroupRow), within query_timeout. A group new to topic is recorded
// here at the position initial_offset names.
func (s *groupSubscriber) prepare(ctx context.Context, topic string) error {
	ctx, cancel := s.t.query.start(ctx)
	defer cancel()
	private := groupTopic(topic, s.group)
	if err := errors.Join(s.t.ensureTables(ctx, topic), s.t.ensureTables(ctx, private)); err != nil {
		return err
	}
	// initial_offset applies to the topic; the group's delayed messages
	// are all its own.
	newest := s.t.cfg.InitialOffset == Newest
	for _, tp := range []string{topic, private} {
		if err := s.t.schema.ensureGroupRow(ctx, s.t.db, tp, s.group, newest && tp == topic); err != nil {
			return fmt.Errorf("%s: subscribe to %s: offsets of group %q: %w", s.t.dialect, tp, s.group, s.t.query.check(ctx, "insert", err))
		}
	}
	return nil
}

// SubscribeInitialize creates the tables of topic and of the group's
// private topic, within query_timeout, and records a group new to topic,
// so that with initial_offset newest it receives what is published from
// now on, before it first subscribes (App.Prepare).
func (s *groupSubscriber) SubscribeInitialize(topic string) error {
	if err := checkTopic(topic); err != nil {
		return fmt.Errorf("%s: subscribe: %w", s.t.dialect, err)
	}
	return s.prepare(context.Background(), topic)
}

// Close ends every subscription and waits until their channels are closed.
// Messages acked before Close are committed; unacked ones are delivered
// again later. Safe to call more than once.
func (s *groupSubscriber) Close() error {
	// Before the subscriptions close: it interrupts those waiting for
	// their group's offsets row (see stopBeginner).
	s.cancelStop()
	_, err := s.subs.CloseAll()
	s.wg.Wait()
	return err
}
