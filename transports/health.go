package transports

import "context"

// HealthChecker is implemented by transports that can tell whether their
// connection to the broker works: CheckHealth returns nil when it does, and
// otherwise what is wrong ("connection to 127.0.0.1:5672 lost: ..."),
// without waiting longer than ctx allows. The App's /readyz reports it.
type HealthChecker interface {
	CheckHealth(ctx context.Context) error
}

// Backlogger is implemented by transports that can tell how many messages
// wait: Backlog returns how many messages of topic consumer group group has
// not yet acked (Kafka: the group's lag; RabbitMQ: the depth of the group's
// queue; SQL: the rows behind the group's offset; memory: the group's
// pending messages), or, with group "", how many messages topic keeps (the
// size of a poison topic). Metrics export it so that an autoscaler can scale
// on queue depth. It must not wait longer than ctx allows.
type Backlogger interface {
	Backlog(ctx context.Context, topic, group string) (int64, error)
}
