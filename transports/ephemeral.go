package transports

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// EphemeralSubscriber is implemented by transports that can subscribe for
// one process alone: a subscription in no consumer group that receives what
// is published to topic after it opened, and for which the broker keeps
// nothing once it ends (RabbitMQ: an exclusive queue deleted with its
// channel; Kafka: a consumer without group reading from the newest offset).
// Request and reply reads each instance's replies this way, so that an
// instance that is gone leaves no queue, group or backlog behind. The
// subscription ends when ctx ends or the transport closes. Ack and Nack
// work as usual while it runs.
type EphemeralSubscriber interface {
	SubscribeEphemeral(ctx context.Context, topic string) (<-chan *message.Message, error)
}
